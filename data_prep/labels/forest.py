"""Stage (b) alternative: an ilastik-like random forest on multiscale SEM features, taught by
the confident pixels of stage (a)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from data_prep.labels.eds_rules import EDGE_WINDOW, PORE, Evidence
from socseg_jax.core.phases import NUM_CLASSES

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestClassifier


# Refinement (stage b): an ilastik-like pixel classifier at SEM resolution.
FEATURE_SIGMAS = (0.7, 1.6, 3.5)  # multiscale Gaussian scales (SEM px) of the SEM features


REFINE_TREES = 12


REFINE_DEPTH = 14


REFINE_TRAIN_PX = 24_000  # training pixels drawn from the confident ones (class-balanced)


CONFIDENT = 0.15  # stage-(a) confidence above which a pixel is a training example


def pixel_features(sem_norm: np.ndarray, evidence: Evidence, labels: np.ndarray) -> np.ndarray:
    """(H, W, F) float32 features: multiscale SEM intensity/edge/texture + EDS evidence.

    SEM: Gaussian smoothing, gradient magnitude, Laplacian of Gaussian and local standard
    deviation at ``FEATURE_SIGMAS``, plus local min/max contrast; EDS: the stage-(a) scores and
    the distance to the stage-(a) pores (NiO grows from pore surfaces); the relative pixel
    position, so that the forest can follow a brightness gradient across the field.
    """
    sem = np.asarray(sem_norm, np.float32)
    feats = [sem]
    for s in FEATURE_SIGMAS:
        g = ndi.gaussian_filter(sem, s)
        feats += [
            g,
            ndi.gaussian_gradient_magnitude(sem, s),
            ndi.gaussian_laplace(sem, s),
            np.sqrt(np.maximum(ndi.gaussian_filter(sem * sem, s) - g * g, 0.0)),
        ]
    lo = ndi.minimum_filter(evidence.sem_s, EDGE_WINDOW)
    hi = ndi.maximum_filter(evidence.sem_s, EDGE_WINDOW)
    feats += [(evidence.sem_s - lo) / np.maximum(hi - lo, 1e-3)]
    pore = labels == PORE
    d_out = ndi.distance_transform_edt(~pore)
    d_in = ndi.distance_transform_edt(pore)
    feats += [np.clip(d_out - d_in, -8, 8)]
    feats += [evidence.solid_score, evidence.ysz_score, evidence.nio_score]
    feats += [evidence.ni_n, evidence.zr_n]
    h, w = sem.shape
    feats += list(np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij"))
    return np.stack([np.asarray(f, np.float32) for f in feats], axis=-1)


def _fit_forest(
    feats: np.ndarray, targets: np.ndarray, seed: int, n_jobs: int
) -> RandomForestClassifier:
    """The ilastik-like pixel classifier, fitted to (pixels, features) and class ids."""
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(
        n_estimators=REFINE_TREES,
        max_depth=REFINE_DEPTH,
        min_samples_leaf=3,
        max_features="sqrt",
        n_jobs=n_jobs,
        random_state=seed,
    )
    return forest.fit(feats, targets)


def _forest_decisions(
    forest: RandomForestClassifier, feats: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Class ids (uint8) and probability margins (top two classes) of pixels' features."""
    prob = forest.predict_proba(feats)
    order = np.sort(prob, axis=1)
    margin = order[:, -1] - (order[:, -2] if prob.shape[1] > 1 else 0.0)
    return forest.classes_[np.argmax(prob, axis=1)].astype(np.uint8), margin


def refine_forest(
    sem_norm: np.ndarray,
    evidence: Evidence,
    labels: np.ndarray,
    confidence: np.ndarray,
    seed: int = 0,
    n_jobs: int = 2,
    confident: float = CONFIDENT,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage (b): relabel uncertain pixels with a random forest trained on the confident ones.

    Why: stage (a) decides from EDS maps blurred over several SEM pixels; a pixel classifier
    on sharp SEM features, taught by the pixels where the chemistry is unambiguous, puts the
    boundaries where the SEM shows them. Returns labels and a confidence that, for relabelled
    pixels, is the forest's class probability margin. On the simulator it changes the pooled
    mean IoU by < 0.01 either way (a larger forest on the same features, trained on the true
    phases instead, reaches 0.915: `benchmarks/label_quality.py`), so `prepare` runs it only when
    `refinement="forest"`.
    """
    feats = pixel_features(sem_norm, evidence, labels)
    flat = feats.reshape(-1, feats.shape[-1])
    lab = labels.ravel()
    conf = confidence.ravel()
    rng = np.random.default_rng(seed)
    per_class = REFINE_TRAIN_PX // NUM_CLASSES
    train_idx = []
    for cls in range(NUM_CLASSES):
        idx = np.flatnonzero((lab == cls) & (conf >= confident))
        if idx.size < 20:
            continue
        train_idx.append(rng.choice(idx, min(per_class, idx.size), replace=False))
    if len(train_idx) < 2:  # nothing to learn from: keep stage (a)
        return labels, confidence
    train_idx = np.concatenate(train_idx)
    forest = _fit_forest(flat[train_idx], lab[train_idx], seed, n_jobs)
    todo = np.flatnonzero(conf < confident)
    out_lab = lab.copy()
    out_conf = conf.copy()
    if todo.size:
        out_lab[todo], out_conf[todo] = _forest_decisions(forest, flat[todo])
    return out_lab.reshape(labels.shape), out_conf.reshape(labels.shape).astype(np.float32)
