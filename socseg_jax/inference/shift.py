"""Shift detection: how far an archive image lies from the images the model was trained on.

Each image is summarised by a few features (``FEATURES``) of its model input (after the same
normalisation as training) and of the model's prediction: intensity quantiles, fine-scale
noise and edge strength, the mean predictive entropy and the low-confidence area. Training
stores their mean and spread over its own images (``shift_reference.json`` in the train
workdir, beside the checkpoints); ``segment`` scores every image as the largest
|feature - mean| / spread and warns above ``config.shift_threshold``.

The spread is a small-sample *prediction* spread: a reference of n images estimates mean and
standard deviation with error, so a new in-domain image lies t-distributed (n - 1 degrees of
freedom) around the mean, not normally. The standard deviation is widened by
sqrt(1 + 1/n) and by the ratio of the t to the normal quantile at ``SIGMA_SCALE`` normal
sigmas, so that a score means the same ("as rare as that many sigmas") for a reference of 5
images as for one of 500, and the threshold does not depend on the reference's size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from socseg_jax.core.atomic import write_json_atomic
from socseg_jax.training.checkpoints import companion_file

REFERENCE_FILE = "shift_reference.json"
LOW_CONFIDENCE = 0.6  # max-probability below this counts as a low-confidence pixel
# Smallest spread per feature, so that a reference of near-identical images is not too strict.
SPREAD_FLOOR = {"q05": 0.03, "q25": 0.03, "q50": 0.03, "q75": 0.03, "q95": 0.03,
                "noise": 0.004, "edges": 0.006, "mean_entropy": 0.03, "low_confidence": 0.03}
FEATURES = tuple(SPREAD_FLOOR)
SIGMA_SCALE = 3.0  # normal sigmas at which the t quantile is matched (the default threshold)
_SAMPLE = 1 << 20  # pixels used for the quantiles of large images


def grey_channel(image: np.ndarray) -> np.ndarray:
    """The grey (first) channel of a model input (H, W[, C]) as float32."""
    grey = np.asarray(image, np.float32)
    return grey[..., 0] if grey.ndim == 3 else grey


def sample_step(num_pixels: int, budget: int) -> int:
    """Stride in both axes that leaves about ``budget`` of ``num_pixels`` (1 for small images),
    so that statistics of huge images cost bounded work."""
    return max(1, math.isqrt(max(1, num_pixels // budget)))


def image_features(image: np.ndarray, entropy: np.ndarray, max_prob: np.ndarray) -> dict:
    """The features of one image: ``image`` the model input (H, W[, C]) in [0, 1], ``entropy``
    and ``max_prob`` the predictor's uncertainty maps."""
    grey = grey_channel(image)
    step = sample_step(grey.size, _SAMPLE)
    sample = grey[::step, ::step]
    quantiles = np.percentile(sample, [5, 25, 50, 75, 95])
    rows = grey[: 2048 * step : step]  # bounded work on huge images
    diff = np.abs(np.diff(rows, axis=1))
    features = {f"q{q:02d}": float(v) for q, v in zip((5, 25, 50, 75, 95), quantiles,
                                                      strict=True)}
    features["noise"] = float(np.median(diff))  # neighbour differences inside phases
    features["edges"] = float(np.percentile(diff, 95))  # across phase boundaries
    features["mean_entropy"] = float(np.mean(entropy, dtype=np.float64))
    features["low_confidence"] = float(np.mean(max_prob < LOW_CONFIDENCE))
    return features


def prediction_spread_factor(num_images: int) -> float:
    """Factor from the sample standard deviation of ``num_images`` reference images to the
    spread of a new image's feature (see the module docstring); 0 for a single image (its
    spread is the floor)."""
    if num_images < 2:
        return 0.0
    tail = stats.norm.cdf(SIGMA_SCALE)
    t_over_z = stats.t.ppf(tail, num_images - 1) / SIGMA_SCALE
    return float(math.sqrt(1.0 + 1.0 / num_images) * t_over_z)


def build_reference(features: Iterable[dict], tta: str = "none") -> dict[str, Any]:
    """Mean and prediction spread (small-sample widened, floored) of each feature over the
    training images, predicted with test-time augmentation ``tta``."""
    rows = list(features)
    if not rows:
        raise ValueError("a shift reference needs at least one image")
    values = {f: np.array([r[f] for r in rows], np.float64) for f in FEATURES}
    factor = prediction_spread_factor(len(rows))
    ddof = 1 if len(rows) > 1 else 0
    return {
        "num_images": len(rows),
        "tta": tta,
        "mean": {f: float(v.mean()) for f, v in values.items()},
        "spread": {f: max(factor * float(v.std(ddof=ddof)), SPREAD_FLOOR[f])
                   for f, v in values.items()},
    }


def write_reference(workdir: str | Path, reference: dict[str, Any]) -> None:
    """Stores the reference beside the checkpoints of a train workdir."""
    write_json_atomic(Path(workdir) / REFERENCE_FILE, reference)


def read_reference(checkpoint: str | Path) -> dict[str, Any] | None:
    """The reference of a train workdir or of one of its checkpoint steps; None when absent."""
    found = companion_file(checkpoint, REFERENCE_FILE)
    return json.loads(found.read_text()) if found else None


def shift_score(features: dict[str, float], reference: dict[str, Any]) -> tuple[float, str]:
    """(score, feature): the largest |feature - mean| / spread and the feature it comes from."""
    scores = {
        f: abs(features[f] - reference["mean"][f]) / reference["spread"][f] for f in FEATURES
    }
    worst = max(scores, key=scores.get)
    return scores[worst], worst
