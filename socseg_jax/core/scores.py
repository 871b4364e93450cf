"""Segmentation scores from confusion matrices (NumPy, no JAX): IoU, Dice, pixel accuracy.

Everything is derived from a (K, K) confusion matrix (rows = truth, columns = prediction), so
evaluation accumulates matrices over batches/images and scores once at the end. The on-device
counterpart is ``socseg_jax.evaluation.device_confusion.confusion_matrix_jax``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from socseg_jax.core.phases import CLASS_NAMES, NUM_CLASSES


def confusion_matrix(
    truth: np.ndarray,
    pred: np.ndarray,
    num_classes: int = NUM_CLASSES,
    ignore_index: int | None = None,
) -> np.ndarray:
    """(K, K) int64 confusion matrix on the host; rows are truth, columns prediction.

    Pixels whose truth equals ``ignore_index`` are skipped. Any other label outside
    ``[0, num_classes)`` raises ValueError (a silent drop would hide label-encoding bugs).
    """
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"truth and pred shapes differ: {truth.shape} vs {pred.shape}")
    truth = truth.reshape(-1).astype(np.int64)
    pred = pred.reshape(-1).astype(np.int64)
    if ignore_index is not None:
        keep = truth != ignore_index
        truth, pred = truth[keep], pred[keep]
    for name, values in (("truth", truth), ("pred", pred)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{name} labels must be in [0, {num_classes}), found range "
                f"[{values.min()}, {values.max()}]"
            )
    counts = np.bincount(truth * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _nan_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def segmentation_scores(cm: np.ndarray) -> dict[str, Any]:
    """IoU, Dice, pixel accuracy and support from a (K, K) confusion matrix.

    Per-class values are NaN for classes absent from both truth and prediction, and the means
    (``mean_iou``, ``mean_dice``) skip them. Values are plain Python floats/ints (JSON-friendly).
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square (K, K), got shape {cm.shape}")
    tp = np.diag(cm)
    support = cm.sum(axis=1)  # truth pixels per class
    predicted = cm.sum(axis=0)
    fp = predicted - tp
    fn = support - tp
    iou = _nan_ratio(tp, tp + fp + fn)
    dice = _nan_ratio(2.0 * tp, 2.0 * tp + fp + fn)
    total = cm.sum()
    return {
        "per_class_iou": iou.tolist(),
        "mean_iou": _nanmean(iou),
        "per_class_dice": dice.tolist(),
        "mean_dice": _nanmean(dice),
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else math.nan,
        "per_class_support": [int(s) for s in support],
    }


def format_scores(
    scores: Mapping[str, Any],
    class_names: Sequence[str] = CLASS_NAMES,
) -> str:
    """Small aligned text table of :func:`segmentation_scores` output, for logs and reports."""
    iou = scores["per_class_iou"]
    dice = scores["per_class_dice"]
    support = scores["per_class_support"]
    if len(class_names) != len(iou):
        raise ValueError(f"{len(class_names)} class names for {len(iou)} classes")
    width = max(len("class"), len("mean"), *(len(n) for n in class_names))

    def num(value: float) -> str:
        return f"{value:8.4f}" if not math.isnan(value) else f"{'n/a':>8}"

    lines = [f"{'class':<{width}}  {'IoU':>8}  {'Dice':>8}  {'support':>12}"]
    for name, i, d, s in zip(class_names, iou, dice, support, strict=True):
        lines.append(f"{name:<{width}}  {num(i)}  {num(d)}  {s:>12d}")
    lines.append(
        f"{'mean':<{width}}  {num(scores['mean_iou'])}  {num(scores['mean_dice'])}  "
        f"{sum(support):>12d}"
    )
    lines.append(f"pixel accuracy: {num(scores['pixel_accuracy']).strip()}")
    return "\n".join(lines)
