"""Checks of prepared samples on simulated data: the labels' score against the true phases
(the registration checks are in ``data_prep.registration.gate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_prep.errors import ImageReadError
from data_prep.readers.images import read_grey
from data_prep.samples.files import SampleFiles
from socseg_jax.core.phases import NUM_CLASSES
from socseg_jax.core.scores import confusion_matrix, segmentation_scores


def truth_confusions(
    sample: Path | SampleFiles, label_maps: list[np.ndarray | None]
) -> list[np.ndarray | None] | None:
    """Confusion matrices of label maps against the sample's `truth.tif` (simulated data),
    None when it has none (or one that does not fit); None entries stay None."""
    folder = sample if isinstance(sample, Path) else sample.folder
    truth_path = folder / "truth.tif" if folder is not None else None
    if truth_path is None or not truth_path.is_file() or label_maps[0] is None:
        return None
    shape = label_maps[0].shape
    try:
        truth = read_grey(truth_path).astype(np.uint8)[: shape[0]]
    except ImageReadError:
        return None
    if truth.shape != shape or truth.max() >= NUM_CLASSES:
        return None
    return [None if m is None else confusion_matrix(truth, m) for m in label_maps]


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes present in truth or prediction of a confusion matrix."""
    return segmentation_scores(confusion)["mean_iou"]
