"""Stage (b), the default: EDS prior x SEM grey-level likelihood, smoothed by mean-field
iterations."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.special import expit

from data_prep.labels.eds_rules import PORE, Evidence
from socseg_jax.core.phases import NUM_CLASSES

# Refinement (stage b, default): EDS prior x SEM likelihood with mean-field smoothing.
MF_SEM_SIGMA = 0.7  # SEM denoising (px) before the grey-level likelihood


MF_CONFIDENT = 0.3  # stage-(a) confidence of the pixels that define the class grey levels


MF_LEVEL_SIGMA = 24.0  # scale (px) of the class grey-level maps (follows brightness gradients)


MF_LEVEL_STEP = 8  # the level maps are computed on a grid this much coarser (they are smooth)


MF_RIM_BINS = 6  # distance-to-pore bins (px) of the bright-rim offset of the solid classes


MF_SEM_WEIGHT = 0.3  # weight of the SEM log-likelihood against the EDS log-prior


# The SEM weight grows as (EDS pitch / MF_REFERENCE_PITCH) ** MF_PITCH_EXPONENT beyond this
# pitch (SEM px per EDS pixel; the default preset's): see ``sem_weight``.
MF_REFERENCE_PITCH = 2.0


# Tuning seeds 5000-5079 (randomised): 1.5 raised NiO and Ni IoU, median and p10, over the
# pitch-free weight (Ni p10 0.399 -> 0.413; 1.0: 0.409); 2.0 (the maps counted once per EDS
# pixel) let the SEM add classes where it cannot tell them apart (Ni median -0.002).
MF_PITCH_EXPONENT = 1.5


MF_PAIR_WEIGHT = 4.0  # Potts weight of the mean-field smoothing


MF_PAIR_SIGMA = 1.0


MF_ITERATIONS = 5


MF_SLOPES = (3.0, 3.0, 2.0)  # turn the stage-(a) scores (solid, YSZ, NiO) into probabilities


MF_FLOOR = 0.02  # smallest prior probability of any class


ABSENT = -1e4  # log-likelihood of a class stage (a) did not find (never brought in)


FEW_EXAMPLES_PENALTY = 20.0  # log-likelihood of a class with < 200 confident interior pixels


SHELL_MIN_DISTANCE = 2  # px from a pore of the pixels a class without interior learns from


def _eds_log_prior(evidence: Evidence) -> np.ndarray:
    """(4, H, W) log class probabilities from the stage-(a) scores (sigmoids of the margins)."""
    k_solid, k_ysz, k_nio = MF_SLOPES
    solid = expit(k_solid * evidence.solid_score)
    ysz = expit(k_ysz * evidence.ysz_score)
    nio = expit(k_nio * evidence.nio_score)
    ni_bearing = solid * (1 - ysz)
    prior = np.stack([1 - solid, ni_bearing * nio, ni_bearing * (1 - nio), solid * ysz])
    return np.log(prior * (1 - NUM_CLASSES * MF_FLOOR) + MF_FLOOR).astype(np.float32)


def _local_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Gaussian-weighted mean of ``values`` over ``mask`` at scale ``MF_LEVEL_SIGMA``.

    Computed on a grid ``MF_LEVEL_STEP`` times coarser and interpolated back: the map is
    smooth, and the full-resolution filter would dominate the time on a 2856x4096 image.
    """
    step = MF_LEVEL_STEP
    h, w = values.shape
    ph, pw = -h % step, -w % step

    def coarse(x: np.ndarray) -> np.ndarray:
        x = np.pad(x.astype(np.float32), ((0, ph), (0, pw)), mode="edge")
        return x.reshape(x.shape[0] // step, step, x.shape[1] // step, step).mean(axis=(1, 3))

    sigma = MF_LEVEL_SIGMA / step
    num = ndi.gaussian_filter(coarse(np.where(mask, values, 0.0)), sigma)
    den = ndi.gaussian_filter(coarse(mask), sigma)
    fallback = float(values[mask].mean())
    level = np.where(den > 1e-4, num / np.maximum(den, 1e-4), fallback).astype(np.float32)
    zoom = ((h + ph) / level.shape[0], (w + pw) / level.shape[1])
    # Coarse cell centres sit at (step - 1) / 2: shift so that the interpolation lines up.
    full = ndi.zoom(level, zoom, order=1, mode="nearest", grid_mode=True)
    return full[:h, :w]


def _robust_sd(residuals: np.ndarray) -> float:
    """Spread of a class's grey-level residuals (scaled MAD about 0, floored)."""
    return 1.4826 * float(np.median(np.abs(residuals))) + 1e-3


def class_log_likelihoods(
    sem_norm: np.ndarray, labels: np.ndarray, confidence: np.ndarray
) -> np.ndarray:
    """(4, H, W) SEM grey-level log-likelihood of each class, learnt from the confident pixels.

    A class's grey level is a smooth map from its confident interior pixels (so it follows
    illumination gradients) plus the bright-rim offset as a function of the distance to the
    nearest pore; its spread is the robust spread of the interior residuals. A solid class
    with too few interior pixels (thin NiO shells: all within a few px of a pore) learns its
    level from its confident pixels at least ``SHELL_MIN_DISTANCE`` from a pore, after the
    rim profile of the other solids (the rim is topography, not chemistry) is taken off. A
    class absent from ``labels`` gets ``ABSENT``, one with too few confident examples a fixed
    penalty (which erased 2-min shells: they were then never labelled).
    """
    sem_s = ndi.gaussian_filter(np.asarray(sem_norm, np.float32), MF_SEM_SIGMA)
    like = np.zeros((NUM_CLASSES, *labels.shape), np.float32)
    pore = labels == PORE
    distance_bin = np.minimum(
        np.ceil(ndi.distance_transform_edt(~pore)).astype(np.int32), MF_RIM_BINS
    )
    sure = confidence >= MF_CONFIDENT
    fitted: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    shells: list[int] = []
    for cls in range(NUM_CLASSES):
        in_class = labels == cls
        if in_class.mean() < 0.002:  # absent in stage (a): not brought in here
            like[cls] = ABSENT
            continue
        sure_in_class = sure & in_class
        interior = sure_in_class & ((distance_bin >= MF_RIM_BINS) | (cls == PORE))
        if interior.sum() < 200:  # too few interior examples: maybe a shell class
            shells.append(cls)
            continue
        residual = sem_s - _local_mean(sem_s, interior)
        rim_offset = np.zeros(MF_RIM_BINS + 1, np.float32)
        if cls != PORE:
            for b in range(1, MF_RIM_BINS):
                near = sure_in_class & (distance_bin == b)
                if near.sum() > 50:
                    rim_offset[b] = np.median(residual[near])
        residual -= rim_offset[distance_bin]
        fitted[cls] = (residual, rim_offset, _robust_sd(residual[interior]))
    solids = [c for c in fitted if c != PORE]
    shared_rim = (np.median([fitted[c][1] for c in solids], axis=0) if solids
                  else np.zeros(MF_RIM_BINS + 1, np.float32))
    for cls in shells:
        near = sure & (labels == cls) & (distance_bin >= SHELL_MIN_DISTANCE)
        if cls == PORE or near.sum() < 200:
            like[cls] = -FEW_EXAMPLES_PENALTY
            continue
        flat = sem_s - shared_rim[distance_bin]
        residual = flat - _local_mean(flat, near)
        fitted[cls] = (residual, shared_rim, _robust_sd(residual[near]))
    for cls, (residual, _, sd) in fitted.items():
        like[cls] = -0.5 * (residual / sd) ** 2 - np.log(sd)
    return like


def sem_weight(eds_pitch: float) -> float:
    """Weight of the SEM log-likelihood against the EDS log-prior at ``eds_pitch`` SEM px per
    EDS pixel.

    Why: the prior is read off maps blurred over the EDS pixel, so where they are coarse it
    cannot place thin NiO shells that the SEM shows; one EDS pixel's evidence spreads over
    pitch² SEM px, so its weight per SEM pixel falls with the pitch (stage (c) counts the maps
    once per EDS pixel). Unchanged up to ``MF_REFERENCE_PITCH``.
    """
    return MF_SEM_WEIGHT * max(1.0, eds_pitch / MF_REFERENCE_PITCH) ** MF_PITCH_EXPONENT


def refine_mean_field(
    sem_norm: np.ndarray,
    evidence: Evidence,
    labels: np.ndarray,
    confidence: np.ndarray,
    likelihoods: np.ndarray | None = None,
    eds_pitch: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage (b): re-decide the solid phases by EDS prior x SEM likelihood, mean-field smoothed.

    Why: the EDS maps are blurred over several SEM pixels, the SEM is sharp but ambiguous. A
    pixel's class is the most probable under the EDS prior times the SEM grey-level likelihood
    (``class_log_likelihoods`` of the stage-(a) ``labels``; pass ``likelihoods`` to reuse
    them) weighted by ``sem_weight(eds_pitch)`` (SEM px per EDS pixel), with Potts smoothing
    between neighbours. Pores stay where stage (a) put them (its local-midpoint rule is better
    at pore edges). Returns labels and confidence (for solid pixels, the margin of the two most
    probable classes).
    """
    if likelihoods is None:
        likelihoods = class_log_likelihoods(sem_norm, labels, confidence)
    unary = _eds_log_prior(evidence) + sem_weight(eds_pitch) * likelihoods
    pore = labels == PORE

    def normalise(energy: np.ndarray) -> np.ndarray:
        """Softmax over the class axis, in place (class planes are contiguous: fast)."""
        energy -= energy.max(axis=0)
        np.exp(energy, out=energy)
        energy /= energy.sum(axis=0)
        return energy

    q = normalise(unary.copy())
    for _ in range(MF_ITERATIONS):
        for c in range(NUM_CLASSES):
            ndi.gaussian_filter(q[c], MF_PAIR_SIGMA, output=q[c])
        q = normalise(np.multiply(q, MF_PAIR_WEIGHT, out=q) + unary)
    q[PORE] = -1.0  # pores are not re-decided
    top2 = np.sort(q, axis=0)[-2:]
    out_labels = np.where(pore, PORE, q.argmax(axis=0)).astype(np.uint8)
    out_conf = np.where(pore, confidence, np.clip(top2[1] - top2[0], 0, 1))
    return out_labels, out_conf.astype(np.float32)
