"""Stages (b) and (c) of the EDS-guided labels, chosen by `config.prepare.refine_labels`: the
labels of stage (a) refined at SEM resolution (then, after ``mean_field``, re-decided against a
forward model of the EDS maps for `config.prepare.eds_model_sweeps` sweeps), or taught by the
sample's scribbles when it has them."""

from __future__ import annotations

import numpy as np

from data_prep.labels.eds_model import refine_with_eds_model
from data_prep.labels.eds_rules import Evidence
from data_prep.labels.forest import refine_forest
from data_prep.labels.mean_field import class_log_likelihoods, refine_mean_field
from data_prep.labels.scribbles import label_from_scribbles
from socseg_jax.core.errors import UserError

REFINEMENTS = ("mean_field", "forest", "none")


def refine(
    method: str,
    sem_norm: np.ndarray,
    evidence: Evidence,
    labels: np.ndarray,
    confidence: np.ndarray,
    scribbles: np.ndarray | None = None,
    seed: int = 0,
    n_jobs: int = 2,
    aligned_eds: dict[str, np.ndarray] | None = None,
    eds_pitch: float = 1.0,
    eds_model_sweeps: int = 0,
) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """(labels, confidence, label source, notes) after stages (b) and (c).

    Scribbles, when given, replace the refinement: the forest learns from them (raises
    ``ScribbleError`` for scribbles that cannot teach it). ``method`` is one of REFINEMENTS.
    Stage (c) (``eds_model.refine_with_eds_model``) follows ``mean_field`` when
    ``eds_model_sweeps`` > 0 and the registered maps ``aligned_eds`` (``eds_pitch`` SEM px
    per EDS pixel) are given.
    """
    if method not in REFINEMENTS:
        raise UserError(f"refinement must be one of {REFINEMENTS}, got {method!r}")
    if scribbles is not None:
        labels, confidence, notes = label_from_scribbles(
            sem_norm, evidence, labels, confidence, scribbles, seed=seed, n_jobs=n_jobs
        )
        return labels, confidence, "EDS + scribbles forest", notes
    if method == "none":
        return labels, confidence, "EDS", []
    if method == "mean_field":
        likelihoods = class_log_likelihoods(sem_norm, labels, confidence)
        labels, confidence = refine_mean_field(sem_norm, evidence, labels, confidence,
                                               likelihoods, eds_pitch)
        if eds_model_sweeps > 0 and aligned_eds is not None:
            labels, confidence, _ = refine_with_eds_model(
                aligned_eds, labels, confidence, likelihoods, eds_pitch, eds_model_sweeps
            )
            return labels, confidence, "EDS + mean-field + EDS-model refinement", []
    else:
        labels, confidence = refine_forest(
            sem_norm, evidence, labels, confidence, seed=seed, n_jobs=n_jobs
        )
    return labels, confidence, f"EDS + {method.replace('_', '-')} refinement", []
