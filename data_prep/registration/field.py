"""Where the EDS maps lie on the SEM frame: data-bar conventions and maps of a sub-area.

Why: registration refines a small misalignment, so it must start from the right field.
A data bar is drawn over the bottom rows of the scan (Zeiss SmartSEM: the maps cover the whole
frame, bar rows included) or appended below it (FEI/Thermo: the maps cover the image above);
``bar_frames`` gives the SEM extent the maps cover under each convention, and registration
keeps the one that fits (``auto``). AZtec maps of a sub-area cover only part of the electron
image: ``locate_sub_area`` finds that box, at the scale of the pixel sizes when known, else by
a multi-scale search, by the multiple correlation of the maps with the SEM image;
``locate_eds_field`` cuts a raw sample to that box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import match_template

from data_prep.registration.maps import RegistrationError, common_grid
from data_prep.samples.raw_sample import RawSample, crop_to_box
from socseg_jax.core.errors import UserError
from socseg_jax.core.intensity import normalize_sem

CONVENTIONS = ("auto", "overlay", "appended")
ASPECT_TOLERANCE = 0.03  # relative grid-ratio mismatch (rows vs columns) that means sub-area
TEMPLATE_SIDE = 64  # longest side (px) of the maps during the sub-area search
SCALE_STEP = 0.975  # ratio of successive scales tried by the search
MIN_FRACTION = 1 / 6  # smallest sub-area side searched, as a fraction of the image's


@dataclass(frozen=True)
class SubArea:
    """A located sub-area: SEM px box (y0, x0, h, w), SEM px per EDS px, match score (R²)."""

    box: tuple[int, int, int, int]
    scale: float
    score: float


def bar_frames(sem_shape: tuple[int, int], bar_rows: int, convention: str) -> dict[str, tuple]:
    """Candidate SEM extents (rows, cols) the maps cover, by data-bar convention.

    ``sem_shape`` is the image above the bar. ``overlay``: the maps cover the full frame, bar
    rows included; ``appended``: the image above the bar; ``auto``: both. No bar: one frame.
    """
    if convention not in CONVENTIONS:
        raise UserError(
            f"prepare.data_bar_convention must be one of {CONVENTIONS}, got {convention!r}"
        )
    h, w = sem_shape
    if not bar_rows:
        return {"no bar": (h, w)}
    frames = {"overlay": (h + bar_rows, w), "appended": (h, w)}
    return frames if convention == "auto" else {convention: frames[convention]}


def is_sub_area(
    sem_shape: tuple[int, int], eds_shape: tuple[int, int], bar_rows: int,
    step_scale: float | None,
) -> bool:
    """Do maps of ``eds_shape`` cover only part of the SEM image (above its bar)?

    With the SEM px per EDS px known (``step_scale``, from the pixel sizes): when the maps
    would span fewer columns than the image. Else: when the grid ratio of rows matches that of
    columns under neither bar convention.
    """
    h, w = sem_shape
    gx = w / eds_shape[1]
    if step_scale:
        return step_scale < (1 - ASPECT_TOLERANCE) * gx
    ratios = [(h + rows) / eds_shape[0] / gx for rows in {0, bar_rows}]
    return min(abs(r - 1) for r in ratios) > ASPECT_TOLERANCE


def locate_sub_area(
    sem_norm: np.ndarray, eds: dict[str, np.ndarray], scale: float | None = None
) -> SubArea:
    """The SEM box covered by maps of a sub-area (all maps on one grid).

    At each scale tried (``scale`` when known, else a geometric series from the largest that
    fits down to 1/6 of the image), the SEM blurred and resampled to the maps' working grid is
    matched against every map (normalised cross-correlation, ``match_template``); the maps'
    multiple correlation R² = rᵀ C⁻¹ r (C: the maps' own correlation matrix) scores a position
    whatever the sign of each element's contrast. The best (scale, position) wins; the fine
    registration then corrects what is left (sub-pixel shift, residual scale, rotation).
    """
    sem = np.asarray(sem_norm, np.float32)
    he, we = next(iter(eds.values())).shape
    g = max(1.0, max(he, we) / TEMPLATE_SIDE)  # EDS px per working px
    tmpl, c_inv = _templates(eds, g)
    s_hi = min(sem.shape[0] / he, sem.shape[1] / we)
    scales = [float(scale)] if scale else _scales(s_hi)
    f_min = min(scales) * g  # the SEM is reduced once to the finest working grid needed
    base = _reduce(sem, f_min)
    best = SubArea((0, 0, 0, 0), 0.0, -np.inf)
    for s in scales:
        img = _reduce(base, s * g / f_min)
        if img.shape[0] < tmpl.shape[1] or img.shape[1] < tmpl.shape[2]:
            continue
        r = np.nan_to_num(np.stack([match_template(img, t) for t in tmpl]))
        score = np.einsum("iyx,ij,jyx->yx", r, c_inv, r)
        py, px = np.unravel_index(int(np.argmax(score)), score.shape)
        if score[py, px] > best.score:
            fy, fx = sem.shape[0] / img.shape[0], sem.shape[1] / img.shape[1]
            box = (round(py * fy), round(px * fx), round(he * s), round(we * s))
            best = SubArea(box, float(s), float(score[py, px]))
    if best.score == -np.inf:
        raise RegistrationError(
            f"EDS maps of {he}x{we} px at {scale} SEM px per EDS px do not fit in the SEM image"
        )
    y0, x0, bh, bw = best.box
    bh, bw = min(bh, sem.shape[0]), min(bw, sem.shape[1])
    y0, x0 = min(max(y0, 0), sem.shape[0] - bh), min(max(x0, 0), sem.shape[1] - bw)
    return SubArea((y0, x0, bh, bw), best.scale, best.score)


def _templates(eds: dict[str, np.ndarray], g: float) -> tuple[np.ndarray, np.ndarray]:
    """(maps smoothed and reduced by ``g``, stacked; inverse of their correlation matrix)."""
    names = sorted(eds)
    tmpl = np.stack([_reduce(ndi.gaussian_filter(eds[n].astype(np.float32), 0.5), g)
                     for n in names])
    flat = tmpl.reshape(len(names), -1)
    corr = np.atleast_2d(np.corrcoef(flat)) if len(names) > 1 else np.ones((1, 1))
    return tmpl, np.linalg.pinv(np.nan_to_num(corr))


def _reduce(img: np.ndarray, factor: float) -> np.ndarray:
    """``img`` blurred and resampled ``factor`` times coarser (grid extents kept)."""
    if factor <= 1.0 + 1e-6:
        return img
    return ndi.zoom(ndi.gaussian_filter(img, 0.5 * factor), 1 / factor, order=1,
                    grid_mode=True, mode="nearest")


def _scales(s_hi: float) -> list[float]:
    """Geometric series of SEM px per EDS px from ``s_hi`` down to ``MIN_FRACTION * s_hi``."""
    n = int(np.ceil(np.log(MIN_FRACTION) / np.log(SCALE_STEP)))
    return [s_hi * SCALE_STEP**k for k in range(n + 1) if s_hi * SCALE_STEP**k >= 1.0]


def locate_eds_field(raw: RawSample, eds_step_nm: float) -> RawSample:
    """``raw`` cut to the part of the SEM image its EDS maps cover, when they cover a
    sub-area: at the scale of the pixel sizes when known (H5OINA step, the EDS TIFFs'
    resolution tags, or ``eds_step_nm`` > 0), else searched."""
    if not raw.eds or "eds_box_px" in raw.metadata:
        return raw
    scale = raw.metadata.get("eds_scale_from_steps")
    if not scale and eds_step_nm > 0 and raw.pixel_size_nm:
        scale = eds_step_nm / raw.pixel_size_nm
        raw.metadata["eds_scale_from_steps"] = scale
    eds, _ = common_grid(raw.eds)
    shape = next(iter(eds.values())).shape
    if not is_sub_area(raw.sem.shape, shape, int(raw.metadata.get("data_bar_rows", 0)), scale):
        return raw
    return _cut_to_located(raw, scale)


def same_aspect_sub_area(raw: RawSample) -> RawSample | None:
    """``raw`` cut to the sub-area its maps cover when they have the image's aspect and no
    pixel sizes tell their scale (``is_sub_area`` cannot see that case): searched at every
    scale below the whole field's. Tried after the whole field failed to register; None when
    the case does not apply or the search finds only the whole field."""
    if "eds_box_px" in raw.metadata or raw.metadata.get("eds_scale_from_steps"):
        return None
    located = _cut_to_located(raw, None)
    return None if located.sem.shape == raw.sem.shape else located


def _cut_to_located(raw: RawSample, scale: float | None) -> RawSample:
    """``raw`` cut to the box ``locate_sub_area`` finds for its maps (at ``scale``, or
    searched)."""
    eds, _ = common_grid(raw.eds)
    area = locate_sub_area(normalize_sem(raw.sem), eds, scale)
    how = "at the pixel sizes' scale" if scale else f"searched, scale {area.scale:.3f}"
    return crop_to_box(raw, area.box, f"located ({how}, match R² {area.score:.2f})")
