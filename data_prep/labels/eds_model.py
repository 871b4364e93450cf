"""Stage (c) of the EDS-guided labels: each pixel re-decided against a forward model of the maps.

Why: stages (a) and (b) read the chemistry off the blurred maps pixel by pixel, through fixed
physics (O in NiO relative to YSZ, thresholds), so how wrong thin NiO shells, NiO-dominated
fields and textured pores come out depends on the microscope. Here the maps are *predicted*
from a label map instead: each element's counts are a per-class rate times the class
indicator, blurred by a Gaussian (interaction volume, EDS pixel and resampling together).
Rates and blur are fitted per sample by least squares on the current labels, so no detector,
dose, background or composition is assumed. A pixel then takes the class that best explains
the maps (the change of their count-weighted squared error, counted once per EDS pixel), its
SEM grey level (``mean_field.class_log_likelihoods``) and its neighbours (Potts), over ICM
sweeps in which only the largest gain of each neighbourhood moves, so that neighbours
explaining the same residual do not all move at once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from data_prep.labels.mean_field import MF_SEM_WEIGHT
from data_prep.patches import centred_window
from socseg_jax.core.phases import NI, NIO, NUM_CLASSES, PORE

ELEMENT_GROUPS = (("Ni",), ("O",), ("Zr", "Y"))  # the modelled maps (Y joins Zr when present)


BLUR_CANDIDATES = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)  # blur sigmas tried (SEM px)


FIT_STEP = 3  # the rates are fitted on every FIT_STEP-th pixel of each axis


FIT_SIDE = 1024  # ... of a central window at most this many px a side


EDS_WEIGHT = 3.0  # weight of the maps' log-likelihood (tuning seeds 5000-5079 and 3000-3003)


POTTS_WEIGHT = 0.75  # per disagreeing 8-neighbour


MOVE_SPACING = 0.5  # a move needs the largest gain within this many blur sigmas


# (class, beside): fitted apart. A (NiO, Ni) band as well scored lower on the tuning seeds
# (default preset Ni IoU -0.008: it let NiO grow into the metal).
INTERFACE_BANDS = ((NI, PORE), (NI, NIO))


INTERFACE_PX = 3  # width of those bands (px; tuning seeds 5000-5079: 1-3 alike, 0 worse)


MIN_BASIS_PX = 200  # a band is split off when it and its class's core keep this many px


MIN_CLASS_SHARE = 0.002  # a class on fewer pixels is not brought in


BLUR_TRUNCATE = 3.0  # the blur kernel's reach, in sigmas


BANDS = 4  # row bands of a sweep (two run at once)


@dataclass(frozen=True)
class EdsModel:
    """Per-sample forward model: ``rates[e, k]`` counts of map ``e`` in class ``k``, and the
    Gaussian ``blur`` (SEM px) between a class map and the registered EDS maps."""

    rates: np.ndarray
    blur: float


def eds_stack(aligned_eds: dict[str, np.ndarray]) -> np.ndarray:
    """(E, H, W) float32 maps of ``ELEMENT_GROUPS`` from the registered element maps."""
    return np.stack(
        [sum(np.asarray(aligned_eds[el], np.float32) for el in group if el in aligned_eds)
         for group in ELEMENT_GROUPS]
    )


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.stack([(labels == k).astype(np.float32) for k in range(NUM_CLASSES)])


def _fit_bases(labels: np.ndarray) -> np.ndarray:
    """The class indicators, then the interface bands of ``INTERFACE_BANDS`` as bases of
    their own (each taken out of its class when both parts keep ``MIN_BASIS_PX`` px).

    Why: a missed or too thin NiO shell is Ni-labelled oxygen next to a pore or to NiO;
    fitted with the Ni class, that band gives metallic Ni an O rate and so shrinks the NiO/Ni
    contrast that stage (c) moves pixels by (its labels then stay as they are). With the
    band as a basis of its own, the Ni rates are those of the metal's core; the bands' rates
    are not used.
    """
    one_hot = _one_hot(labels)
    bands = []
    for cls, beside in INTERFACE_BANDS:
        band = one_hot[cls] * ndi.binary_dilation(labels == beside, iterations=INTERFACE_PX)
        if min(band.sum(), (one_hot[cls] - band).sum()) >= MIN_BASIS_PX:
            one_hot[cls] -= band
            bands.append(band)
    return np.concatenate([one_hot, np.stack(bands)]) if bands else one_hot


def fit_eds_model(maps: np.ndarray, labels: np.ndarray) -> EdsModel:
    """The rates and blur that best predict ``maps`` (E, H, W) from ``labels``.

    For each candidate blur, least squares of every map on the blurred class indicators
    (they sum to 1, so the pore rate holds the background), with the Ni/NiO interface bands
    as extra bases (``_fit_bases``); the blur with the smallest count-weighted error wins.
    Fitted on the central FIT_SIDE² window, every FIT_STEP-th px.
    """
    crop = centred_window(labels.shape, FIT_SIDE)  # rates and blur are the sample's
    sub = (slice(None), slice(None, None, FIT_STEP), slice(None, None, FIT_STEP))
    bases = _fit_bases(labels[crop])
    y = maps[(slice(None), *crop)][sub].reshape(len(maps), -1).T
    weight = 1.0 / np.maximum(y.mean(axis=0), 1e-3)
    best: tuple[float, EdsModel] | None = None
    for blur in BLUR_CANDIDATES:
        x = np.stack([ndi.gaussian_filter(o, blur) for o in bases])[sub]
        x = x.reshape(len(bases), -1).T
        rates, *_ = np.linalg.lstsq(x, y, rcond=None)
        error = float((((x @ rates - y) ** 2) * weight).sum())
        if best is None or error < best[0]:
            best = (error, EdsModel(rates[:NUM_CLASSES].T.astype(np.float32), blur))
    return best[1]


def _neighbour_counts(labels: np.ndarray) -> np.ndarray:
    """(4, H-2, W) counts of each class among the 8 neighbours of rows 1..H-2 (columns edge-
    replicated; the caller passes one extra row above and below)."""
    padded = np.pad(labels, ((0, 0), (1, 1)), mode="edge")
    h, w = labels.shape[0] - 2, labels.shape[1]
    counts = np.zeros((NUM_CLASSES, h, w), np.uint8)
    for dy in range(3):
        for dx in range(3):
            if dy == dx == 1:
                continue
            shifted = padded[dy : dy + h, dx : dx + w]
            for k in range(NUM_CLASSES):
                counts[k] += shifted == k
    return counts


@dataclass(frozen=True)
class _Terms:
    """What one sweep needs besides the labels: the model, its weights and the SEM terms."""

    blurred_maps: np.ndarray  # the maps through the model's blur (constant over sweeps)
    model: EdsModel
    weighted_rates: np.ndarray  # (E, 4) rates over each map's variance
    quadratic: np.ndarray  # (4, 4) self-overlap term of a move j -> k, in [k, j]
    eds_weight: float
    likelihoods: np.ndarray
    candidates: tuple[int, ...]


def _band_gains(terms: _Terms, labels: np.ndarray, rows: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """For rows [r0, r1): each pixel's best class (its own when no move gains) and the
    largest gain of any other class (its margin when negative)."""
    (r0, r1), h = rows, labels.shape[0]
    # back = G(maps - G(rates[labels])) = G(maps) - G_sqrt2(rates[labels]): one filter each.
    blur = terms.model.blur * np.sqrt(2.0)
    halo = int(np.ceil(BLUR_TRUNCATE * blur)) + 1
    e0, e1 = max(0, r0 - halo), min(h, r1 + halo)
    inner = slice(r0 - e0, r1 - e0)
    band = labels[e0:e1]
    back = [m[r0:r1] - ndi.gaussian_filter(rate[band], blur, truncate=BLUR_TRUNCATE)[inner]
            for m, rate in zip(terms.blurred_maps, terms.model.rates, strict=True)]
    own = labels[r0:r1]
    explained = np.zeros((NUM_CLASSES, *own.shape), np.float32)
    for k in range(NUM_CLASSES):
        for e, b in enumerate(back):
            explained[k] += terms.weighted_rates[e, k] * b
    with_margin = labels[max(0, r0 - 1) : min(h, r1 + 1)]
    with_margin = np.pad(with_margin, ((int(r0 == 0), int(r1 == h)), (0, 0)), mode="edge")
    neighbours = _neighbour_counts(with_margin)
    own_explained = np.take_along_axis(explained, own[None], 0)[0]
    likelihoods = terms.likelihoods[:, r0:r1]
    own_like = np.take_along_axis(likelihoods, own[None], 0)[0]
    own_neighbours = np.take_along_axis(neighbours, own[None], 0)[0].astype(np.float32)
    best = own.copy()
    margin = np.full(own.shape, -np.inf, np.float32)
    for k in terms.candidates:
        gain = terms.eds_weight * (explained[k] - own_explained - terms.quadratic[k][own])
        gain += MF_SEM_WEIGHT * (likelihoods[k] - own_like)
        gain += POTTS_WEIGHT * (neighbours[k] - own_neighbours)
        gain[own == k] = -np.inf
        best[gain > np.maximum(margin, 0.0)] = k  # the largest positive gain so far
        np.maximum(margin, gain, out=margin)
    return best, margin


def refine_with_eds_model(
    aligned_eds: dict[str, np.ndarray],
    labels: np.ndarray,
    confidence: np.ndarray,
    likelihoods: np.ndarray,
    eds_pitch: float,
    sweeps: int,
) -> tuple[np.ndarray, np.ndarray, EdsModel]:
    """Stage (c): ``labels`` re-decided over ``sweeps`` ICM sweeps (see the module docstring).

    ``likelihoods``: the (4, H, W) SEM class log-likelihoods; ``eds_pitch``: SEM px per EDS
    pixel (the maps' likelihood counts once per EDS pixel). Returns the labels, a confidence
    (unchanged where the class stays; for a moved pixel the gain it would lose by moving on,
    in [0, 1]) and the fitted model.

    A pixel's gain from class j to k is, with the maps' residual back-projected through the
    blur: w (a_k - a_j - q_kj), where a_k = sum_e rate_ek back_e / var_e and q_kj is half the
    blur's self-overlap times sum_e (rate_ek - rate_ej)^2 / var_e; plus the SEM and Potts
    terms. Rows are processed in BANDS bands on up to two threads; the result does not depend
    on the thread count.
    """
    maps = eds_stack(aligned_eds)
    model = fit_eds_model(maps, labels)
    variance = np.maximum(maps.reshape(len(maps), -1).mean(axis=1), 1.0).astype(np.float32)
    diff = model.rates[:, :, None] - model.rates[:, None, :]  # (E, k, j)
    self_overlap = 1.0 / (4.0 * np.pi * model.blur**2)  # sum of the squared blur kernel
    terms = _Terms(
        blurred_maps=np.stack([ndi.gaussian_filter(m, model.blur, truncate=BLUR_TRUNCATE)
                               for m in maps]),
        model=model,
        weighted_rates=(model.rates / variance[:, None]).astype(np.float32),
        quadratic=(0.5 * self_overlap * (diff**2 / variance[:, None, None]).sum(0)).astype(
            np.float32),
        eds_weight=EDS_WEIGHT / max(eds_pitch, 1.0) ** 2,
        likelihoods=likelihoods,
        candidates=tuple(k for k in range(NUM_CLASSES)
                         if (labels == k).mean() >= MIN_CLASS_SHARE),
    )
    h = labels.shape[0]
    edges = np.linspace(0, h, min(BANDS, h) + 1).astype(int)
    bands = list(zip(edges[:-1], edges[1:], strict=True))
    out = labels.copy()
    window = 2 * int(np.ceil(MOVE_SPACING * model.blur)) + 1  # one move per window
    with ThreadPoolExecutor(min(2, len(bands))) as pool:
        for sweep in range(sweeps + 1):  # the last pass only measures the final margins
            results = list(pool.map(lambda rows, lab=out: _band_gains(terms, lab, rows), bands))
            best = np.concatenate([b for b, _ in results])
            margin = np.concatenate([m for _, m in results])
            if sweep == sweeps:
                break
            # Of the pixels that would gain, only each neighbourhood's largest gain moves: moves
            # that explain the same residual would otherwise all be taken at once.
            gain = np.where(best != out, margin, -np.inf).astype(np.float32)
            move = (best != out) & (gain >= ndi.maximum_filter(gain, window))
            if not move.any():
                break
            out = np.where(move, best, out)
    moved = out != labels
    confidence = np.where(moved, np.clip(-margin, 0.0, 1.0), confidence).astype(np.float32)
    return out, confidence, model
