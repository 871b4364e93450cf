"""Phase fractions with a model-derived uncertainty, and the training images' composition.

The interval. ``segment`` reports each phase's area fraction f_k (percent of the pixels whose
most probable class is k) with a half-width h_k (percentage points): f_k ± h_k is where the
model's own evidence puts the true fraction. Two parts, added in quadrature:

- the soft/hard gap |m_k - f_k|, m_k the mean probability of phase k over the image (the
  fraction the model expects): large when many pixels are ambiguous and their probability
  mass does not go to the class they were given;
- a floor calibrated when training ends: the root mean square of the model's fraction errors
  against the labels on the images of its shift reference (validation images first, then
  training images; ``inference.shift``) times the two-sided ``COVERAGE`` quantile of a new
  error's t distribution (n reference images: t with n degrees of freedom, times
  sqrt(1 + 1/n)), so that the interval means something on a confident image too (and with
  tta=none). Without a reference the floor is 0.

What it does not see: an error the model makes with confidence (an image unlike the
training images, where the shift check and the composition check below are the warnings),
or a bias shared by the labels (EDS-derived labels against the true phases). Coverage on
simulated oxidation series is measured by ``benchmarks/fraction_coverage.py``.

The composition range. The reference also stores each phase's smallest and largest
fraction over its images; an image outside that range by more than a margin, or missing a
phase every training image had (or showing one none had), gets a warning: the model has not
been checked on such a composition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from socseg_jax.core.phases import CLASS_NAMES, NUM_CLASSES, label_fractions

COVERAGE = 0.9  # two-sided coverage the floor is scaled for
PRESENT_PCT = 1.0  # a phase covering at least this much of an image is present in it
ABSENT_PCT = 0.2  # a phase covering less than this is absent


def fraction_parts(labels: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hard, soft) phase fractions in percent, each (K,) float64: of the argmax ``labels``
    (H, W) and the mean class probability, ``proba`` being the probabilities (H, W, K) or
    their sums over pixels (e.g. the predictor's ``class_row_sums``, (H, K))."""
    sums = np.asarray(proba).reshape(-1, NUM_CLASSES).sum(axis=0, dtype=np.float64)
    return np.array(label_fractions(labels)), 100.0 * sums / labels.size


def build_composition(
    hard: Sequence[Sequence[float]], label: Sequence[Sequence[float]]
) -> dict[str, Any]:
    """The reference's composition entry from its images' model fractions ``hard`` and label
    fractions ``label`` (percent, one (K,) row per image): per phase min, max and the
    calibrated floor of the interval (pp; see the module docstring)."""
    hard_a, label_a = np.asarray(hard, np.float64), np.asarray(label, np.float64)
    if hard_a.ndim != 2 or hard_a.shape != label_a.shape or not len(hard_a):
        raise ValueError("composition needs one model and one label fraction row per image")
    rms = np.sqrt(np.mean((hard_a - label_a) ** 2, axis=0))
    n = len(hard_a)
    factor = math.sqrt(1.0 + 1.0 / n) * float(stats.t.ppf(0.5 + COVERAGE / 2, n))
    return {
        "min_pct": [round(float(v), 3) for v in hard_a.min(axis=0)],
        "max_pct": [round(float(v), 3) for v in hard_a.max(axis=0)],
        "error_rms_pct": [round(float(v), 3) for v in rms],
        "floor_pct": [round(float(v), 3) for v in factor * rms],
    }


def half_widths(hard: np.ndarray, soft: np.ndarray,
                composition: dict[str, Any] | None) -> np.ndarray:
    """(K,) half-widths (pp) of the phase fractions: the soft/hard gap and the reference's
    calibrated floor (0 without one) in quadrature."""
    floor = np.asarray(composition["floor_pct"], np.float64) if composition else 0.0
    return np.sqrt((soft - hard) ** 2 + floor**2)


def composition_warning(
    fractions: Sequence[float], composition: dict[str, Any], margin_pct: float
) -> str:
    """'' when the image's phase fractions (percent) lie within the reference's range widened
    by ``margin_pct``; else what lies outside (a phase absent that every reference image had,
    present that none had, or outside the range)."""
    found = []
    for name, f, lo, hi in zip(CLASS_NAMES, fractions, composition["min_pct"],
                               composition["max_pct"], strict=True):
        if lo >= PRESENT_PCT and f < ABSENT_PCT:
            found.append(f"no {name} ({f:.1f} %) while every training image had it "
                         f"({lo:.1f}-{hi:.1f} %)")
        elif hi < ABSENT_PCT and f >= PRESENT_PCT:
            found.append(f"{name} {f:.1f} % while no training image had it")
        elif not lo - margin_pct <= f <= hi + margin_pct:
            found.append(f"{name} {f:.1f} % outside the training images' {lo:.1f}-{hi:.1f} %")
    return "composition unlike the training images: " + "; ".join(found) if found else ""


def joined(*warnings: str) -> str:
    """Non-empty warnings in one line."""
    return "; ".join(w for w in warnings if w)

