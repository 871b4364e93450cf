"""Grey-level calibration at segment time: undo a gamma-like intensity mapping between an image
and the training images, measured on the phases the model already recognises.

Why: the percentile normalisation removes a detector's gain and offset, not a nonlinear
mapping (another detector's response, a 16-bit export curve, a gamma set in the acquisition
software). Under such a mapping the pore and YSZ extremes stay recognisable but NiO and Ni
trade places (benchmarks/generalisation.py, 16-bit + gamma files: NiO under-counted; figures
in benchmarks/RESULTS.md). The confident pixels of every class give the image's
class grey levels; the gamma that brings them onto the training images' levels (measured the
same way, stored in the shift reference) is applied and the image predicted again.

Left alone: images within ``DEADBAND`` of the training levels (where in-domain images fit),
multi-channel inputs, and images whose noise lies outside the training images' range. Noise
widens the normalisation percentiles and compresses the class levels linearly, which a gamma
misreads: lower-dose images lost accuracy when "corrected".
A calibrated prediction is kept only when the model is surer of it (lower mean entropy).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from socseg_jax.core.phases import NUM_CLASSES
from socseg_jax.inference.shift import grey_channel, sample_step

CONFIDENT = 0.9  # max class probability of the pixels that define a class's grey level
MIN_CLASS_FRACTION = 0.005  # a class needs this share of confident pixels to give a level
DEADBAND = 0.1  # |log gamma| below which an image is left as it is
REFINE = 0.02  # |log gamma| below which a second round stops
MAX_ROUNDS = 2  # predictions after the first (a second round finishes what the first began)
GAMMA_RANGE = (0.5, 2.0)
NOISE_LIMIT = 3.0  # spreads of the reference's noise feature beyond which levels are not comparable
_SAMPLE = 1 << 22  # pixels used for the levels of large images


def class_levels(image: np.ndarray, labels: np.ndarray, max_prob: np.ndarray) -> list[float | None]:
    """Median grey level of each class over its confident interior pixels (None: too few)."""
    step = sample_step(labels.size, _SAMPLE)
    grey = grey_channel(image)[::step, ::step]
    labels, sure = labels[::step, ::step], max_prob[::step, ::step] > CONFIDENT
    out: list[float | None] = []
    for c in range(NUM_CLASSES):
        mask = ndi.binary_erosion(labels == c) & sure
        out.append(float(np.median(grey[mask])) if mask.mean() >= MIN_CLASS_FRACTION else None)
    return out


def reference_levels(per_image: Iterable[list[float | None]]) -> list[float | None]:
    """Median over the training images of each class's level (None where no image has one)."""
    rows = list(per_image)
    out: list[float | None] = []
    for c in range(NUM_CLASSES):
        values = [r[c] for r in rows if r[c] is not None]
        out.append(float(np.median(values)) if values else None)
    return out


def fit_gamma(levels: list[float | None], reference: list[float | None]) -> float:
    """The gamma g (in GAMMA_RANGE) whose levels ** g lie closest (least squares) to the
    reference levels; 1.0 with fewer than two classes in common."""
    pairs = [(t, r) for t, r in zip(levels, reference, strict=True)
             if t is not None and r is not None and t > 0]
    if len(pairs) < 2:
        return 1.0
    t, r = (np.array(v, np.float64) for v in zip(*pairs, strict=True))
    gammas = np.exp(np.linspace(math.log(GAMMA_RANGE[0]), math.log(GAMMA_RANGE[1]), 301))
    errors = ((t[None, :] ** gammas[:, None] - r[None, :]) ** 2).sum(axis=1)
    return float(gammas[int(np.argmin(errors))])


def noise_comparable(features: dict[str, float], reference: dict[str, Any]) -> bool:
    """Is the image's noise within the training images' range (so its levels compare)?"""
    z = (features["noise"] - reference["mean"]["noise"]) / reference["spread"]["noise"]
    return abs(z) <= NOISE_LIMIT


def calibrate(
    predict: Callable[[np.ndarray], dict[str, np.ndarray]],
    image: np.ndarray,
    maps: dict[str, np.ndarray],
    reference: dict[str, Any] | None,
    features: dict[str, float],
) -> tuple[dict[str, np.ndarray], float]:
    """(maps, gamma applied): the image predicted again at the gamma that brings its class
    levels onto the reference's, when that gamma leaves the dead band, the image is
    comparable (one channel, noise in range) and the model is surer of the result; else the
    given maps and 1.0. ``predict`` maps an image to its maps (labels, entropy, max_prob...)."""
    levels_ref = (reference or {}).get("class_levels")
    if (levels_ref is None or (np.ndim(image) == 3 and np.shape(image)[2] > 1)
            or not noise_comparable(features, reference)):
        return maps, 1.0
    current, current_maps, total = image, maps, 1.0
    for round_ in range(MAX_ROUNDS):
        gamma = fit_gamma(class_levels(current, current_maps["labels"],
                                       current_maps["max_prob"]), levels_ref)
        if abs(math.log(gamma)) < (DEADBAND if round_ == 0 else REFINE):
            break
        total *= gamma
        current = np.clip(image, 0.0, 1.0)  # one copy of the image, raised in place
        np.power(current, np.float32(total), out=current)
        current_maps = predict(current)
    if total == 1.0 or _mean(current_maps["entropy"]) >= _mean(maps["entropy"]):
        return maps, 1.0
    return current_maps, total


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values, dtype=np.float64))
