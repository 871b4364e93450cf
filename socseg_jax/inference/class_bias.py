"""Class calibration: one additive offset per phase on the model's log-probabilities.

Why. A network trained briefly on a few images leans towards its most frequent phase where
the SEM evidence is ambiguous: the quickstart's model called 10-20 % of the Ni pixels YSZ on
its own training images, so every image's YSZ fraction came out 1-5 percentage points high
and Ni's low (benchmarks/RESULTS.md, issue #29). The lean is the same on every image, so it
can be measured once, on the labelled images of the training run, and taken out.

How. When training ends, the model predicts its reference images (``training.shift_reference``)
and the offsets ``b`` (K,) that minimise the cross-entropy of ``softmax(log p + b)`` against
their labels are fitted on a pixel sample (a convex problem in K unknowns; the classic
"vector scaling" calibration with the scale fixed at 1). At its optimum the mean calibrated
probability of each phase equals that phase's label fraction over the sample (the gradient
in ``b_k`` is ``mean(p_k - y_k)``), so the model's expected fractions carry no lean. The
predictor multiplies the blended probabilities by ``exp(b)`` and renormalises
(``inference.windows.finish_maps``): labels, probabilities, uncertainty and the fractions all
use the calibrated values. The offsets are stored with the shift reference
(``shift_reference.json``, key ``class_bias``); ``segment`` applies them unless
``calibrate_classes`` is False.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize
from scipy.special import log_softmax

from data_prep.patches import centred_window
from socseg_jax.core.phases import NUM_CLASSES

PIXELS_PER_IMAGE = 50_000  # labelled pixels sampled per reference image for the fit
# The fit predicts at most this centred square of each reference image: a bounded cost at the
# end of training (a 2856x4096 frame would take 8x as long on a CPU for no better offsets).
FIT_WINDOW_PX = 1024
_FLOOR = 1e-6  # probabilities below this are taken as this (log of 0)


def fit_window(shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The centred region, at most ``FIT_WINDOW_PX`` square, of an image of ``shape`` (H, W,
    ...) that the fit predicts and samples."""
    return centred_window(shape, FIT_WINDOW_PX)


def sample_pixels(
    proba: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
    budget: int = PIXELS_PER_IMAGE,
) -> tuple[np.ndarray, np.ndarray]:
    """(log-probabilities (N, K) float64, labels (N,)) of at most ``budget`` random labelled
    pixels (label < K) of one image: ``proba`` (H, W, K), ``labels`` (H, W)."""
    flat_labels = np.asarray(labels).reshape(-1)
    labelled = np.flatnonzero(flat_labels < NUM_CLASSES)
    if len(labelled) > budget:
        labelled = rng.choice(labelled, budget, replace=False)
    picked = np.asarray(proba).reshape(-1, NUM_CLASSES)[labelled].astype(np.float64)
    return np.log(np.maximum(picked, _FLOOR)), flat_labels[labelled].astype(np.int64)


def fit_class_bias(log_proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Offsets (K,) float64, centred on the phases present, that minimise the mean cross-entropy of
    ``softmax(log_proba + b)`` against ``labels`` (N,). A phase absent from ``labels`` gets
    no offset (0): without evidence the model's own prior for it stands."""
    log_proba = np.asarray(log_proba, np.float64)
    labels = np.asarray(labels, np.int64)
    if log_proba.ndim != 2 or log_proba.shape != (len(labels), NUM_CLASSES) or not len(labels):
        raise ValueError("class calibration needs (N, K) log-probabilities and N labels, N > 0")
    target = np.bincount(labels, minlength=NUM_CLASSES) / len(labels)
    present = target > 0
    rows = np.arange(len(labels))

    def loss_and_grad(free: np.ndarray) -> tuple[float, np.ndarray]:
        bias = np.zeros(NUM_CLASSES)
        bias[present] = free
        logp = log_softmax(log_proba + bias, axis=1)
        grad = np.exp(logp).mean(axis=0) - target
        return float(-logp[rows, labels].mean()), grad[present]

    found = optimize.minimize(loss_and_grad, np.zeros(int(present.sum())), jac=True,
                              method="L-BFGS-B")
    bias = np.zeros(NUM_CLASSES)
    bias[present] = found.x - found.x.mean()
    return bias


def class_weights(bias: np.ndarray | None, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """The factors (K,) float32 the predictor multiplies the probabilities of ``num_classes``
    classes by: ``exp(bias)``, ones without a bias."""
    if bias is None:
        return np.ones(num_classes, np.float32)
    bias = np.asarray(bias, np.float64)
    if bias.shape != (num_classes,) or not np.all(np.isfinite(bias)):
        raise ValueError(f"class_bias must be {num_classes} finite numbers, got {bias}")
    return np.exp(bias).astype(np.float32)
