"""Labels taught by a user's scribbles (sparse hand strokes), as ilastik does."""

from __future__ import annotations

import numpy as np

from data_prep.labels.eds_rules import Evidence
from data_prep.labels.forest import (
    CONFIDENT,
    REFINE_TRAIN_PX,
    _fit_forest,
    _forest_decisions,
    pixel_features,
)
from socseg_jax.core.phases import CLASS_NAMES, NUM_CLASSES


class ScribbleError(ValueError):
    """Scribbles that cannot teach a labeller (wrong shape or values, too few phases)."""


def label_from_scribbles(
    sem_norm: np.ndarray,
    evidence: Evidence,
    labels: np.ndarray,
    confidence: np.ndarray,
    scribbles: np.ndarray,
    seed: int = 0,
    n_jobs: int = 2,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labels from a user's sparse hand labels (``scribbles``: 0 unlabelled, class id + 1),
    as ilastik does: the forest learns the SEM and EDS features of the scribbled pixels and
    labels every pixel; scribbled pixels keep their class (confidence 1).

    Why: where the EDS maps are too coarse for thin phases (e.g. 8x coarser than the SEM),
    a few strokes teach what the chemistry cannot resolve (`benchmarks/label_quality.py`).
    A phase that stage (a) finds (``labels``, ``confidence``; >= 0.5 % of the pixels) but
    nobody scribbled is taught by stage (a)'s confident pixels instead, as many as a scribbled
    phase has on average, or cannot be labelled at all when it has too few of them; the third
    value says which, in words. Raises ScribbleError for scribbles of another shape, values
    other than 0..4, none marked, or fewer than two phases to teach.
    """
    if scribbles.shape != labels.shape:
        raise ScribbleError(f"scribbles shape {scribbles.shape} differs from {labels.shape}")
    if not np.issubdtype(scribbles.dtype, np.integer):
        raise ScribbleError(f"scribbles must hold integers, not {scribbles.dtype}")
    if scribbles.min() < 0 or scribbles.max() > NUM_CLASSES or not scribbles.any():
        raise ScribbleError(f"scribbles need values 0..{NUM_CLASSES} with some pixels marked")
    marks = scribbles.ravel()
    train_idx = np.flatnonzero(marks)
    rng = np.random.default_rng(seed)
    if train_idx.size > REFINE_TRAIN_PX:
        train_idx = rng.choice(train_idx, REFINE_TRAIN_PX, replace=False)
    targets = marks[train_idx].astype(np.int64) - 1
    counts = np.bincount(targets, minlength=NUM_CLASSES)
    per_class = max(int(counts.sum() / max(np.count_nonzero(counts), 1)), 20)
    lab, conf = labels.ravel(), confidence.ravel()
    notes: list[str] = []
    for cls in np.flatnonzero(counts == 0):
        if (lab == cls).mean() < 0.005:
            continue
        name = CLASS_NAMES[cls]
        sure = np.flatnonzero((lab == cls) & (conf >= CONFIDENT))
        if sure.size < 20:
            notes.append(f"no scribbles for {name} and too few confident EDS pixels: no {name}")
            continue
        pick = rng.choice(sure, min(per_class, sure.size), replace=False)
        train_idx = np.concatenate([train_idx, pick])
        targets = np.concatenate([targets, np.full(pick.size, cls)])
        notes.append(f"no scribbles for {name}: taught by the EDS labels' confident pixels")
    if np.unique(targets).size < 2:
        taught = ", ".join(CLASS_NAMES[c] for c in np.unique(targets)) or "none"
        raise ScribbleError(f"scribbles teach fewer than two phases ({taught}): scribble each")
    flat = pixel_features(sem_norm, evidence, labels).reshape(marks.size, -1)
    forest = _fit_forest(flat[train_idx], targets, seed, n_jobs)
    out_lab, out_conf = _forest_decisions(forest, flat)
    marked = marks > 0
    out_lab[marked] = marks[marked] - 1
    out_conf[marked] = 1.0
    shape = labels.shape
    return out_lab.reshape(shape), out_conf.reshape(shape).astype(np.float32), notes
