"""EDS-guided training labels: per-pixel phase from registered element maps and the SEM image.

Why: the network learns SEM -> phase; the labels come once from EDS chemistry. Two stages:
(a) ``eds_evidence`` + ``eds_labels``: rule-based decisions from the element evidence, with
reference levels from the maps' histograms (Otsu) and overridable thresholds; (b) a refinement
at SEM resolution taught by the confident pixels of (a): ``refine_mean_field`` (default: EDS
prior x SEM grey-level likelihood, smoothed by mean-field iterations) or ``refine_labels``
(an ilastik-like random forest on multiscale SEM features).
Decisions of stage (a), in order:
  * pore vs solid: the sharp SEM image (dark pores) combined with the smoothed total cation
    signal (Ni + Zr + Y), so that pore boundaries follow the SEM and not the blurred EDS;
  * YSZ vs Ni-bearing: share of the (Zr + Y) signal in the cation signal, each normalised by
    its own level in that phase (a 50 % decision, independent of the phase fractions);
  * NiO vs Ni: oxygen in excess of what YSZ contributes, in units of YSZ's oxygen signal, per
    unit of Ni signal. NiO has ~0.75 of YSZ's O atom fraction (0.50 vs ~0.66), metallic Ni ~0,
    so a fixed threshold (0.3) works whether NiO is absent or dominant.
Confidence is the smallest relative margin of the decisions taken for a pixel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi
from scipy.special import expit
from skimage.filters import threshold_otsu

from data_prep.phases import CLASS_NAMES, NUM_CLASSES

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestClassifier

REFINEMENTS = ("mean_field", "forest", "none")

PORE, NIO, NI, YSZ = 0, 1, 2, 3
NIO_O_RATIO = 0.75  # O in NiO relative to O in YSZ (O atom fractions 0.50 / 0.66)
# Threshold slightly below halfway (0.4 of NiO's level): thin NiO shells are diluted by the
# EDS blur, metallic Ni stays near 0.
NIO_THRESHOLD = 0.4 * NIO_O_RATIO
SEM_WEIGHT = 0.65  # weight of the SEM vote in the pore/solid decision (EDS gets the rest)
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
    override ``nio`` (excess O per Ni, in units of YSZ's O; default 0.3), ``sem_weight``
    (SEM share of the pore/solid vote, default 0.65) and ``ysz`` (YSZ cation share, 0.5).
    """
    missing = [el for el in ("Ni", "O", "Zr") if el not in aligned_eds]
    if missing:
        raise ValueError(f"eds_labels: missing element map(s) {missing}")
    th = dict(thresholds or {})
    unknown = set(th) - {"nio", "sem_weight", "ysz"}
    if unknown:
        raise ValueError(f"eds_labels: unknown threshold name(s) {sorted(unknown)}")
    nio_threshold = float(th.get("nio", NIO_THRESHOLD))
    sem_weight = float(th.get("sem_weight", SEM_WEIGHT))
    ysz_threshold = float(th.get("ysz", 0.5))
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


def refine_labels(
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
    `refine_labels="forest"`.
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


# Refinement (stage b, default): EDS prior x SEM likelihood with mean-field smoothing.
MF_SEM_SIGMA = 0.7  # SEM denoising (px) before the grey-level likelihood
MF_CONFIDENT = 0.3  # stage-(a) confidence of the pixels that define the class grey levels
MF_LEVEL_SIGMA = 24.0  # scale (px) of the class grey-level maps (follows brightness gradients)
MF_LEVEL_STEP = 8  # the level maps are computed on a grid this much coarser (they are smooth)
MF_RIM_BINS = 6  # distance-to-pore bins (px) of the bright-rim offset of the solid classes
MF_SEM_WEIGHT = 0.3  # weight of the SEM log-likelihood against the EDS log-prior
MF_PAIR_WEIGHT = 4.0  # Potts weight of the mean-field smoothing
MF_PAIR_SIGMA = 1.0
MF_ITERATIONS = 5
MF_SLOPES = (3.0, 3.0, 2.0)  # turn the stage-(a) scores (solid, YSZ, NiO) into probabilities
MF_FLOOR = 0.02  # smallest prior probability of any class


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


def refine_mean_field(
    sem_norm: np.ndarray,
    evidence: Evidence,
    labels: np.ndarray,
    confidence: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage (b): re-decide the solid phases by EDS prior x SEM likelihood, mean-field smoothed.

    Why: the EDS maps are blurred over several SEM pixels, the SEM is sharp but ambiguous. The
    grey level of each class is learnt from the confident stage-(a) pixels as a smooth map
    (so it follows illumination gradients), plus the bright-rim offset as a function of the
    distance to the nearest pore; a pixel's class is then the most probable under the EDS
    prior times that Gaussian likelihood, with Potts smoothing between neighbours. Pores stay
    where stage (a) put them (its local-midpoint rule is better at pore edges). Returns labels
    and confidence (for solid pixels, the margin of the two most probable classes).
    """
    sem_s = ndi.gaussian_filter(np.asarray(sem_norm, np.float32), MF_SEM_SIGMA)
    unary = _eds_log_prior(evidence)
    pore = labels == PORE
    distance_bin = np.minimum(
        np.ceil(ndi.distance_transform_edt(~pore)).astype(np.int32), MF_RIM_BINS
    )
    sure = confidence >= MF_CONFIDENT
    for cls in range(NUM_CLASSES):
        in_class = labels == cls
        if in_class.mean() < 0.002:  # absent in stage (a): not brought in here
            unary[cls] -= 1e3
            continue
        sure_in_class = sure & in_class
        interior = sure_in_class & ((distance_bin >= MF_RIM_BINS) | (cls == PORE))
        if interior.sum() < 200:  # too few examples to learn a grey level from
            unary[cls] -= MF_SEM_WEIGHT * 20.0
            continue
        residual = sem_s - _local_mean(sem_s, interior)
        rim_offset = np.zeros(MF_RIM_BINS + 1, np.float32)
        if cls != PORE:
            for b in range(1, MF_RIM_BINS):
                near = sure_in_class & (distance_bin == b)
                if near.sum() > 50:
                    rim_offset[b] = np.median(residual[near])
        residual -= rim_offset[distance_bin]
        sd = 1.4826 * float(np.median(np.abs(residual[interior]))) + 1e-3
        unary[cls] += MF_SEM_WEIGHT * (-0.5 * (residual / sd) ** 2 - np.log(sd))

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
