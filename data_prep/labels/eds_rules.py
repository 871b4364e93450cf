"""Stage (a) of the EDS-guided labels: per-pixel phase decisions from the element evidence.

See the package docstring for the decisions and their order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from data_prep.labels.thresholds import (
    DEFAULT_THRESHOLDS,
    NIO_THRESHOLD,
    SEM_WEIGHT,
    YSZ_THRESHOLD,
)
from socseg_jax.core.phases import NI, NIO, NUM_CLASSES, PORE, YSZ

SEM_SIGMA = 0.5  # SEM denoising before the pore/solid decision (px)


EDGE_WINDOW = 7  # window (px) of the local-midpoint refinement of pore boundaries


O_EXTRA_SIGMA = 0.8  # extra smoothing (px) of the maps entering the NiO/Ni decision


MIN_REGION_PX = 12  # regions below ~3 EDS pixels are not resolved: merge into surroundings


def _robust_level(x: np.ndarray, mask: np.ndarray, default: float) -> float:
    """Median of ``x`` under ``mask`` (or ``default`` when the mask is too small)."""
    return float(np.median(x[mask])) if mask.sum() > 50 else default


def _otsu(x: np.ndarray) -> float:
    sub = x[::2, ::2]
    return float(threshold_otsu(sub)) if np.ptp(sub) > 0 else float(sub.mean())


@dataclass(frozen=True)
class Evidence:
    """Signed per-pixel scores of stage (a) (positive: pore-free solid, YSZ, NiO) on the SEM grid.

    Kept so that the refinement stage can use the chemistry as features next to the SEM ones.
    """

    sem_s: np.ndarray
    solid_score: np.ndarray
    ysz_score: np.ndarray
    nio_score: np.ndarray
    ni_n: np.ndarray
    zr_n: np.ndarray


def eds_evidence(
    sem_norm: np.ndarray,
    aligned_eds: dict[str, np.ndarray],
    eds_sigma: float = 0.7,
    thresholds: Mapping[str, float] | None = None,
) -> Evidence:
    """Per-pixel element evidence from aligned EDS maps and the SEM image (stage a scores).

    Reference levels come from Otsu-thresholded histograms of each map; ``thresholds`` may
    override ``nio`` (excess O per Ni, in units of YSZ's O), ``sem_weight`` (SEM share of the
    pore/solid vote) and ``ysz`` (YSZ cation share); defaults ``DEFAULT_THRESHOLDS``.
    """
    missing = [el for el in ("Ni", "O", "Zr") if el not in aligned_eds]
    if missing:
        raise ValueError(f"eds_labels: missing element map(s) {missing}")
    th = dict(thresholds or {})
    unknown = set(th) - set(DEFAULT_THRESHOLDS)
    if unknown:
        raise ValueError(f"eds_labels: unknown threshold name(s) {sorted(unknown)}")
    nio_threshold = float(th.get("nio", NIO_THRESHOLD))
    sem_weight = float(th.get("sem_weight", SEM_WEIGHT))
    ysz_threshold = float(th.get("ysz", YSZ_THRESHOLD))
    sem = np.asarray(sem_norm, dtype=np.float32)

    def smooth(name: str) -> np.ndarray:
        return ndi.gaussian_filter(np.asarray(aligned_eds[name], np.float32), eds_sigma)

    ni, ox, zr = smooth("Ni"), smooth("O"), smooth("Zr")
    # The NiO/Ni decision is a ratio of noisy counts (O is weak): smoothed more.
    ni_o = ndi.gaussian_filter(ni, O_EXTRA_SIGMA)
    ox = ndi.gaussian_filter(ox, O_EXTRA_SIGMA)
    if "Y" in aligned_eds:
        zr = zr + smooth("Y")
    # Reference levels from automatically thresholded "rich" regions of each map.
    ysz_rich = zr > _otsu(zr)
    ni_rich = ni > _otsu(ni)
    zr_ref = max(_robust_level(zr, ysz_rich, float(zr.max())), 1e-6)
    ni_ref = max(_robust_level(ni, ni_rich, float(ni.max())), 1e-6)
    zr_bg = _robust_level(zr, ~ysz_rich & ~ni_rich, 0.0)
    ni_bg = _robust_level(ni, ~ysz_rich & ~ni_rich, 0.0)
    zr_n = np.clip((zr - zr_bg) / (zr_ref - zr_bg + 1e-6), 0, None)
    ni_n = np.clip((ni - ni_bg) / (ni_ref - ni_bg + 1e-6), 0, None)
    cation = zr_n + ni_n

    # Pore vs solid: SEM (sharp) and cation signal (chemistry), as signed scores.
    sem_s = ndi.gaussian_filter(sem, SEM_SIGMA)
    # SEM levels of pore and of the darkest solid, taken where the EDS is sure of the answer
    # (a global Otsu on the SEM alone would put dark NiO with the pores).
    pore_lvl = _robust_level(sem_s, cation < 0.3, 0.0)
    eds_solid = cation > 0.7
    solid_lvl = float(np.percentile(sem_s[eds_solid], 10)) if eds_solid.sum() > 50 else 1.0
    t_sem = 0.5 * (pore_lvl + solid_lvl)
    s_sem = (sem_s - t_sem) / max(solid_lvl - pore_lvl, 1e-3) * 2.0
    s_eds = (cation - 0.5) * 2.0
    solid_score = sem_weight * np.clip(s_sem, -1.5, 1.5) + (1 - sem_weight) * np.clip(
        s_eds, -1.5, 1.5
    )

    # YSZ vs Ni-bearing.
    f_ysz = zr_n / np.maximum(cation, 1e-3)
    ysz_score = (f_ysz - ysz_threshold) * 2.0

    # NiO vs Ni: excess O per Ni, in units of the YSZ O level.
    o_ysz = _robust_level(ox, ysz_rich & ~ni_rich, float(ox.max()))
    o_bg = _robust_level(ox, (cation < 0.2), 0.0)
    ni_n_o = np.clip((ni_o - ni_bg) / (ni_ref - ni_bg + 1e-6), 0, None)
    zr_n_o = ndi.gaussian_filter(zr_n, O_EXTRA_SIGMA)
    o_excess = (ox - o_bg - (o_ysz - o_bg) * np.minimum(zr_n_o, 1.5)) / max(o_ysz - o_bg, 1e-6)
    o_per_ni = o_excess / np.maximum(ni_n_o, 0.15)
    nio_score = (o_per_ni - nio_threshold) / nio_threshold
    f32 = np.float32
    return Evidence(
        sem_s.astype(f32),
        solid_score.astype(f32),
        ysz_score.astype(f32),
        nio_score.astype(f32),
        ni_n.astype(f32),
        zr_n.astype(f32),
    )


def eds_labels(
    sem_norm: np.ndarray,
    aligned_eds: dict[str, np.ndarray],
    eds_sigma: float = 0.7,
    thresholds: Mapping[str, float] | None = None,
    evidence: Evidence | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage (a): phase labels (uint8 class ids) and confidence (float32 in [0, 1]) from EDS.

    ``sem_norm``: normalised SEM image (float in [0, 1]); ``aligned_eds``: element maps on the SEM
    grid (``align.register_eds``), needing Ni, O, Zr (Y optional). ``eds_sigma`` (SEM px) smooths
    the count noise first; ``thresholds`` see ``eds_evidence``.
    """
    ev = evidence or eds_evidence(sem_norm, aligned_eds, eds_sigma, thresholds)
    solid_score, ysz_score, nio_score = ev.solid_score, ev.ysz_score, ev.nio_score
    labels = np.where(ysz_score > 0, YSZ, np.where(nio_score > 0, NIO, NI)).astype(np.uint8)
    pore = _refine_pore_edges(ev.sem_s, solid_score <= 0)
    labels[pore] = PORE
    labels = _merge_small_regions(labels, MIN_REGION_PX)
    solid_score = np.where(pore, -np.abs(solid_score), np.abs(solid_score))
    margin = np.abs(solid_score)
    solid = labels != PORE
    margin[solid] = np.minimum(margin[solid], np.abs(ysz_score[solid]))
    nib = (labels == NI) | (labels == NIO)
    margin[nib] = np.minimum(margin[nib], np.abs(nio_score[nib]))
    confidence = np.clip(margin, 0.0, 1.0).astype(np.float32)
    return labels, confidence


def _refine_pore_edges(sem_s: np.ndarray, pore: np.ndarray) -> np.ndarray:
    """Move pore boundaries to the local grey midpoint of the sharp SEM image.

    Probe blur and the bright edge-effect rims make a global threshold put boundary pixels of
    pores into the solid. For a blurred step the edge lies where the grey value crosses the
    midpoint of the levels on both sides; we take those levels as the local min/max and
    re-decide only the pixels within one pixel of the current boundary.
    """
    band = ndi.binary_dilation(pore) & ndi.binary_dilation(~pore)
    lo = ndi.minimum_filter(sem_s, EDGE_WINDOW)
    hi = ndi.maximum_filter(sem_s, EDGE_WINDOW)
    out = pore.copy()
    out[band] = sem_s[band] < 0.5 * (lo[band] + hi[band])
    return out


def _merge_small_regions(labels: np.ndarray, min_px: int) -> np.ndarray:
    """Give connected regions smaller than ``min_px`` the class of the nearest larger region."""
    small = np.zeros(labels.shape, dtype=bool)
    for cls in range(NUM_CLASSES):
        comp, n = ndi.label(labels == cls)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel())
        tiny = sizes < min_px
        tiny[0] = False
        small |= tiny[comp]
    if not small.any() or small.all():
        return labels
    idx = ndi.distance_transform_edt(small, return_distances=False, return_indices=True)
    return labels[idx[0], idx[1]]
