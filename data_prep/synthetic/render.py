"""Image formation: SEM micrograph, EDS count maps and data bar of a phase map; one sample.

Model, in order (``simulate_sample``):
  1. microstructure and oxidation (``microstructure``);
  2. SEM: per-phase grey levels (any order of NiO/Ni/YSZ; pores darkest), per-grain (Voronoi)
     contrast, dim sub-surface features in pores, bright edge-effect rims, Gaussian probe
     blur, brightness gradient and per-image gain/offset, shot + read noise, then 8- or
     16-bit digitisation with an output gain/offset and an optional data bar;
  3. EDS: Ni, O, Zr, Y count maps on a coarser grid covering the scanned field, blurred by
     the interaction volume, optionally with X-rays from below the pores, Poisson counts at
     low dose, displaced by a random drift, rotation and scale.
Convention: EDS content is the truth displaced by ``drift_yx`` (like ``scipy.ndimage.shift``
with +drift), so registering it back needs a shift of ``-drift_yx``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from data_prep.synthetic.microstructure import grf, microstructure, oxidise, voronoi
from data_prep.synthetic.params import (
    EDS_RATES,
    ELEMENTS,
    SimulationParams,
    SyntheticSample,
    eds_grid,
)
from socseg_jax.core.phases import NI, NIO, PORE, YSZ


def _grain_texture(rng: np.random.Generator, phases: np.ndarray, p: SimulationParams) -> np.ndarray:
    """Per-grain brightness offsets (and darker grain boundaries) for NiO, Ni and YSZ."""
    tex = np.zeros(phases.shape, dtype=np.float32)
    for cls, size, contrast in zip((NIO, NI, YSZ), p.grain_size_px, p.grain_contrast, strict=True):
        mask = phases == cls
        if not mask.any():
            continue
        ids = voronoi(rng, phases.shape, size)
        vals = rng.normal(0.0, contrast, ids.max() + 1).astype(np.float32)
        gb = (ids != np.roll(ids, 1, 0)) | (ids != np.roll(ids, 1, 1))
        tex[mask] = vals[ids[mask]] - 0.6 * contrast * gb[mask]
        if cls == NIO:  # nano-porosity of grown oxide: small dark specks
            specks = rng.random(phases.shape) < 0.03
            tex[mask & specks] -= 2.5 * contrast
    return tex


def render_sem(rng: np.random.Generator, phases: np.ndarray, p: SimulationParams) -> np.ndarray:
    """SEM secondary/back-scattered electron image in [0, 1] (float32) of a phase map."""
    shape = phases.shape
    img = np.asarray(p.grey_levels, dtype=np.float32)[phases] + _grain_texture(rng, phases, p)
    pore = phases == PORE
    # Pores: dark, with dim blurred sub-surface particles and faint texture.
    sub = ndi.gaussian_filter((grf(rng, shape, p.feature_size) > 0.4).astype(np.float32), 2.0)
    pore_img = p.grey_levels[PORE] + p.pore_texture * sub + 0.02 * grf(rng, shape, 1.5)
    img[pore] = pore_img[pore]
    # Edge effect: bright rims on the solid side of pore boundaries.
    dist = ndi.distance_transform_edt(~pore)
    rim = p.edge_brightness * np.exp(-np.maximum(dist - 1.0, 0.0) / p.edge_width_px)
    img = img + np.where(pore, 0.0, rim).astype(np.float32)
    img = ndi.gaussian_filter(img, p.probe_blur_px)
    # Illumination gradient across the field and per-image gain/offset.
    yy, xx = np.meshgrid(
        np.linspace(-0.5, 0.5, shape[0]), np.linspace(-0.5, 0.5, shape[1]), indexing="ij"
    )
    ang = rng.uniform(0, 2 * np.pi)
    grad = 1.0 + rng.uniform(-1, 1) * p.gradient_max * (np.cos(ang) * yy + np.sin(ang) * xx) * 2
    gain = 1.0 + rng.uniform(-p.contrast_jitter, p.contrast_jitter)
    offset = rng.uniform(-p.brightness_jitter, p.brightness_jitter)
    img = (img * grad * gain + offset).astype(np.float32)
    # Shot noise (Poisson in electrons) + read noise.
    img = rng.poisson(np.clip(img, 0, None) * p.sem_dose) / p.sem_dose
    img = img + rng.normal(0.0, p.read_noise, shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _rate_map(phases: np.ndarray, j: int, p: SimulationParams) -> np.ndarray:
    """X-ray rate of element ``j`` per SEM pixel; in pores optionally the signal generated in
    the material below (``eds_pore_subsurface`` x the local mean of the solids around)."""
    rate = EDS_RATES[:, j][phases]
    if p.eds_pore_subsurface <= 0:
        return rate
    solid = (phases != PORE).astype(np.float32)
    sigma = 2.0 * p.feature_size
    local = ndi.gaussian_filter(rate * solid, sigma) / np.maximum(
        ndi.gaussian_filter(solid, sigma), 1e-3
    )
    return np.where(phases == PORE, rate + p.eds_pore_subsurface * local, rate).astype(np.float32)


def render_eds(
    rng: np.random.Generator,
    phases_canvas: np.ndarray,
    margin: int,
    displacement: tuple[tuple[float, float], float, float],
    p: SimulationParams,
) -> dict[str, np.ndarray]:
    """EDS count maps on the coarse grid, sampled from the padded phase canvas.

    ``displacement``: (drift_yx, rotation_deg, scale); the EDS pixel at nominal position q
    of the scanned field records the truth at c + scale * R(rotation) (q - c) - drift.
    """
    (drift_yx, rotation_deg, scale) = displacement
    out_shape = p.shape
    (he, we), (pitch_y, pitch_x) = eds_grid(p)
    # SEM-crop coordinates of EDS pixel centres, then rotation about the centre and drift.
    yc = (np.arange(he) + 0.5) * pitch_y - 0.5
    xc = (np.arange(we) + 0.5) * pitch_x - 0.5
    qy, qx = np.meshgrid(yc, xc, indexing="ij")
    cy, cx = (out_shape[0] - 1) / 2, (out_shape[1] - 1) / 2
    th = math.radians(rotation_deg)
    dy = math.cos(th) * (qy - cy) - math.sin(th) * (qx - cx)
    dx = math.sin(th) * (qy - cy) + math.cos(th) * (qx - cx)
    if scale != 1.0:
        dy, dx = scale * dy, scale * dx
    coords = np.stack([dy + cy - drift_yx[0] + margin, dx + cx - drift_yx[1] + margin])
    # Interaction volume blur combined with the integration over one EDS pixel.
    ds = p.eds_downsample
    pitch2 = pitch_y * pitch_x if (p.shape[0] % ds or p.shape[1] % ds) else ds * ds
    sigma = math.sqrt(p.eds_blur_px**2 + (pitch2 - 1) / 12.0)
    eds = {}
    for j, el in enumerate(ELEMENTS):
        rate = ndi.gaussian_filter(_rate_map(phases_canvas, j, p), sigma)
        rate = ndi.map_coordinates(rate, coords, order=1, mode="nearest")
        lam = np.clip(rate, 0, None) * p.eds_dose + p.eds_background
        eds[el] = rng.poisson(lam).astype(np.float32)
    return eds


def digitise(img: np.ndarray, p: SimulationParams) -> np.ndarray:
    """SEM signal in [0, 1] -> uint8/uint16 pixel values through the output gain/offset
    (a detector that uses only part of the range, e.g. 16-bit files from ~4000 to ~40000)."""
    if p.bit_depth == 8 and p.output_gain == 1.0 and p.output_offset == 0.0:
        return np.rint(img * 255.0).astype(np.uint8)  # the original path, bit for bit
    full = 255.0 if p.bit_depth == 8 else 65535.0
    dtype = np.uint8 if p.bit_depth == 8 else np.uint16
    v = np.clip(p.output_offset + p.output_gain * img.astype(np.float64), 0.0, 1.0)
    return np.rint(v * full).astype(dtype)


def add_data_bar(
    image: np.ndarray, rows: int, seed: int = 0, convention: str = "appended"
) -> np.ndarray:
    """An SEM-style information bar (black, white separator and text-like blocks) of ``rows``
    rows: ``appended`` below ``image`` (FEI/Thermo: taller file) or ``overlay`` over its bottom
    rows (Zeiss: the bar hides part of the scanned field)."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(image.dtype).max if np.issubdtype(image.dtype, np.integer) else 1.0
    bar = np.zeros((rows, image.shape[1]), image.dtype)
    bar[0, :] = top  # separator line
    for x0 in range(8, image.shape[1] - 24, 48):  # "text": short bright strokes
        y0 = int(rng.integers(2, max(3, rows - 6)))
        bar[y0 : y0 + 4, x0 : x0 + int(rng.integers(6, 20))] = top
    if convention == "overlay":
        return np.concatenate([image[: image.shape[0] - rows], bar])
    if convention != "appended":
        raise ValueError(f"data bar convention must be appended or overlay, not {convention!r}")
    return np.concatenate([image, bar])


def simulate_sample(params: SimulationParams, seed: int) -> SyntheticSample:
    """Simulate one sample deterministically from ``seed``."""
    p = params
    rng = np.random.default_rng(seed)
    h, w = p.shape
    drift = rng.uniform(-1, 1, 2) * p.max_drift_px / math.sqrt(2)
    rot = float(rng.uniform(-1, 1) * p.max_rotation_deg)
    scale = 1.0 + float(rng.uniform(-1, 1)) * p.max_scale_change if p.max_scale_change else 1.0
    rot_margin = 0.5 * math.hypot(h, w) * abs(math.sin(math.radians(rot)))
    rot_margin += 0.5 * math.hypot(h, w) * abs(scale - 1.0)
    margin = int(math.ceil(p.max_drift_px + rot_margin + 4 * p.eds_blur_px + 2 * p.eds_downsample))
    canvas = (h + 2 * margin, w + 2 * margin)
    phases_canvas = oxidise(rng, microstructure(rng, canvas, p), p)
    sem_canvas = render_sem(rng, phases_canvas, p)
    eds = render_eds(rng, phases_canvas, margin, (tuple(drift), rot, scale), p)
    crop = (slice(margin, margin + h), slice(margin, margin + w))
    sem = digitise(sem_canvas[crop], p)
    if p.data_bar != "none":
        sem = add_data_bar(sem, p.data_bar_rows, seed, convention=p.data_bar)
    return SyntheticSample(
        sem=sem,
        eds=eds,
        phases=np.ascontiguousarray(phases_canvas[crop]).astype(np.uint8),
        drift_yx=(float(drift[0]), float(drift[1])),
        rotation_deg=rot,
        eds_downsample=p.eds_downsample,
        pixel_size_nm=p.pixel_size_nm,
        oxidation_min=p.oxidation_min,
        params=p,
        scale=scale,
        data_bar=p.data_bar,
        data_bar_rows=p.data_bar_rows if p.data_bar != "none" else 0,
    )
