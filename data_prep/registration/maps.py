"""Registration of (coarser, drifted, possibly rotated) EDS element maps onto the SEM image.

Why: EDS maps are acquired at a lower resolution and drift relative to the SEM frame (and the
scan may be slightly rotated or scaled); labels made from unaligned maps would be shifted by
several pixels. We render an SEM-like image from the element maps (a least-squares linear
combination fitted to the smoothed SEM image), find the sub-pixel translation by phase
correlation, then (``similarity``/``affine``) fit rotation and scale to the local shifts
measured in overlapping tiles, and resample the maps onto the SEM grid in one interpolation.
Estimation runs on a working grid of at most ``work_size`` px, so large images stay fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import window
from skimage.registration import phase_cross_correlation

from data_prep.registration.gate import MIN_REGISTRATION_QUALITY
from socseg_jax.core.errors import UserError

TRANSFORMS = ("translation", "similarity", "affine")  # prepare.registration


class RegistrationError(UserError):
    """EDS maps could not be registered to the SEM image with sufficient quality."""


@dataclass(frozen=True)
class RegistrationResult:
    """Estimated EDS->SEM registration.

    ``matrix`` (2x3, SEM px) maps an SEM pixel (y, x) to the position, in the EDS maps' frame
    (EDS pixel i covering SEM pixels [i*s, (i+1)*s), s = frame / map shape), whose content
    belongs there. ``shift_yx`` is the translation applied at the image centre (for a pure
    translation the shift applied to the upsampled maps), ``scale`` the EDS->SEM grid ratio,
    ``rotation_deg`` and ``zoom`` the rotation and extra isotropic scale found, ``quality`` the
    NCC of the rendered EDS image with the SEM image after alignment. ``frame`` names the
    candidate extent the maps were found to cover (``frame_shape`` in SEM px), ``qualities``
    holds every candidate's quality, ``resampled`` the maps brought onto the finest grid.
    """

    shift_yx: tuple[float, float]
    scale: tuple[float, float]
    quality: float
    rotation_deg: float = 0.0
    zoom: float = 1.0
    matrix: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (1.0, 0.0, 0.0),
        (0.0, 1.0, 0.0),
    )
    frame: str = "full"
    frame_shape: tuple[int, int] = (0, 0)
    qualities: dict[str, float] = field(default_factory=dict)
    resampled: tuple[str, ...] = ()


def upsample_to(
    m: np.ndarray,
    shape: tuple[int, int],
    shift_yx: tuple[float, float] = (0.0, 0.0),
    frame: tuple[float, float] | None = None,
) -> np.ndarray:
    """Bilinear resampling of a map onto an SEM grid of ``shape``, translated by ``shift_yx``.

    Pixel centres are matched (EDS pixel i covers SEM pixels [i*s, (i+1)*s), s = frame / map
    shape; ``frame``, the SEM-pixel extent the map covers, defaults to ``shape``); the result
    equals ``ndimage.shift(upsampled, shift_yx)`` but interpolates only once.
    """
    frame = tuple(frame or shape)
    sy, sx = frame[0] / m.shape[0], frame[1] / m.shape[1]
    y = (np.arange(shape[0]) - shift_yx[0] + 0.5) / sy - 0.5
    x = (np.arange(shape[1]) - shift_yx[1] + 0.5) / sx - 0.5
    # Separable bilinear interpolation: rows first, then columns (fast for large images).
    rows = ndi.map_coordinates(
        m.astype(np.float32),
        np.meshgrid(y, np.arange(m.shape[1]), indexing="ij"),
        order=1,
        mode="nearest",
    )
    return ndi.map_coordinates(
        rows, np.meshgrid(np.arange(shape[0]), x, indexing="ij"), order=1, mode="nearest"
    ).astype(np.float32)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def warp_to(
    m: np.ndarray,
    shape: tuple[int, int],
    matrix: np.ndarray,
    sem_shape: tuple[int, int] | None = None,
    frame: tuple[float, float] | None = None,
) -> np.ndarray:
    """Bilinear resampling of a map onto a grid of ``shape`` through an affine ``matrix``.

    ``matrix`` (2x3) maps SEM pixel coordinates to the SEM-frame position of the map content;
    ``shape`` may be a coarser working grid over the same field as ``sem_shape`` (default:
    ``shape``); ``frame`` is the SEM-pixel extent the map covers, from the image's top-left
    (default ``sem_shape``; taller for a data bar drawn over the scan). Translation-only
    matrices take the fast separable path of ``upsample_to``.
    """
    sem_shape = tuple(sem_shape or shape)
    frame = tuple(frame or sem_shape)
    mat = np.asarray(matrix, np.float64)
    if sem_shape == tuple(shape) and np.allclose(mat[:, :2], np.eye(2), atol=1e-9):
        return upsample_to(m, shape, (-mat[0, 2], -mat[1, 2]), frame)
    f = np.array([sem_shape[0] / shape[0], sem_shape[1] / shape[1]])
    s = np.array([frame[0] / m.shape[0], frame[1] / m.shape[1]])
    # map index e = ((A p + t) + 0.5) / s - 0.5 with p = (p_out + 0.5) * f - 0.5
    a = mat[:, :2] * f[None, :] / s[:, None]
    b = (mat[:, :2] @ (0.5 * f - 0.5) + mat[:, 2] + 0.5) / s - 0.5
    return ndi.affine_transform(
        m.astype(np.float32), a, offset=b, output_shape=tuple(shape), order=1, mode="nearest"
    )


def _centre_shift(mat: np.ndarray, shape: tuple[int, int]) -> tuple[float, float]:
    c = np.array([(shape[0] - 1) / 2, (shape[1] - 1) / 2])
    d = c - (mat[:, :2] @ c + mat[:, 2])
    return float(d[0]), float(d[1])


def register_eds(
    sem_norm: np.ndarray,
    eds: dict[str, np.ndarray],
    min_quality: float = MIN_REGISTRATION_QUALITY,
    transform: str = "similarity",
    work_size: int = 768,
    frames: Mapping[str, tuple[int, int]] | None = None,
) -> tuple[dict[str, np.ndarray], RegistrationResult]:
    """Upsample and align EDS maps to the SEM grid; return aligned maps and the registration.

    ``sem_norm`` is the normalised SEM image (float in [0, 1]) without its data-bar rows;
    ``eds`` maps element -> counts, each no larger than the SEM image (maps on coarser grids
    than the finest are resampled to it). ``transform``: ``translation`` (sub-pixel phase
    correlation of an SEM-like rendering of the maps with the SEM image), ``similarity``
    (plus rotation and isotropic scale, fitted to local shifts measured in tiles) or
    ``affine``. ``frames``: candidate SEM-pixel extents (rows, cols, from the top-left) the
    maps may cover, e.g. the full frame including the rows of a data bar drawn over the scan
    and the image above an appended bar; each is estimated on the working grid (at most
    ``work_size`` px, so large images stay fast) and the best quality wins. Only the SEM rows
    given enter the fit, so bar rows are masked by construction. Raises RegistrationError when
    the normalised cross-correlation after alignment is below ``min_quality`` (e.g. maps of
    another region).
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, not {transform!r}")
    eds, resampled = common_grid(eds)
    he, we = next(iter(eds.values())).shape
    sem = np.asarray(sem_norm, dtype=np.float32)
    h, w = sem.shape
    frames = dict(frames or {"full": (h, w)})
    names = sorted(eds)
    # Registration signals: lightly denoised maps, SEM blurred to the EDS resolution.
    smooth = np.stack([ndi.gaussian_filter(eds[n].astype(np.float32), 0.7) for n in names])
    sigma_sem = 0.5 + 0.75 * float(np.mean((h / he, w / we)))
    sem_s = ndi.gaussian_filter(sem, sigma_sem)
    f = max(1.0, max(h, w) / work_size)
    wshape = (max(8, round(h / f)), max(8, round(w / f)))
    fy, fx = h / wshape[0], w / wshape[1]
    ref_w = (
        sem_s
        if wshape == (h, w)
        else ndi.zoom(sem_s, (1 / fy, 1 / fx), order=1, grid_mode=True, mode="nearest")
    )
    ref_w = ref_w[: wshape[0], : wshape[1]]
    fits = {k: _estimate(ref_w, smooth, (h, w), fr, transform) for k, fr in frames.items()}
    best = max(fits, key=lambda k: fits[k][1])
    mat, quality = fits[best]
    frame = tuple(int(v) for v in frames[best])
    shift_c = _centre_shift(mat, (h, w))
    a = mat[:, :2]
    zoom = float(np.sqrt(abs(np.linalg.det(a))))
    rotation = float(np.degrees(np.arctan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1])))
    result = RegistrationResult(
        shift_c,
        (float(frame[0] / he), float(frame[1] / we)),
        quality,
        rotation_deg=-rotation,
        zoom=1.0 / zoom,
        matrix=tuple(tuple(float(v) for v in row) for row in mat),
        frame=best,
        frame_shape=frame,
        qualities={k: round(q, 4) for k, (_, q) in fits.items()},
        resampled=resampled,
    )
    if not quality >= min_quality:
        tried = "" if len(fits) == 1 else f" (best of {', '.join(fits)}: {best})"
        raise RegistrationError(
            f"EDS registration quality {quality:.3f} below {min_quality}{tried}: maps of "
            f"another field or misplaced (shift {shift_c[0]:.2f}, {shift_c[1]:.2f} px, "
            f"rotation {-rotation:.2f} deg)"
        )
    aligned_maps = {n: warp_to(eds[n], (h, w), mat, frame=frame) for n in names}
    return aligned_maps, result


def _estimate(
    ref_w: np.ndarray,
    smooth: np.ndarray,
    full: tuple[int, int],
    frame: tuple[int, int],
    transform: str,
) -> tuple[np.ndarray, float]:
    """(matrix, quality) of the maps ``smooth`` covering ``frame`` SEM px, on the working grid."""
    wshape = ref_w.shape
    fy, fx = full[0] / wshape[0], full[1] / wshape[1]
    mat, coefs = _fit_translation(ref_w, smooth, full, frame)
    rendering = np.tensordot(coefs, smooth, 1)  # linear in the maps: warp it, not each map
    if transform != "translation":
        mat = _fit_linear_map(ref_w, rendering, mat, full, frame, transform)
    render = warp_to(rendering, wshape, mat, full, frame)
    shift_c = _centre_shift(mat, full)
    b = int(np.ceil(max(abs(shift_c[0]) / fy, abs(shift_c[1]) / fx))) + 2
    b += int(np.ceil(np.abs(mat[:, :2] - np.eye(2)).max() * max(wshape)))
    inner = (slice(b, -b), slice(b, -b)) if min(wshape) > 4 * b else (slice(None),) * 2
    return mat, _ncc(render[inner], ref_w[inner])


def common_grid(eds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """The maps on one grid: those on a coarser grid (e.g. O) resampled, pixel centres
    matched, to the finest map's grid (all cover one field); returns the resampled names."""
    if not eds:
        raise RegistrationError("no EDS maps to register")
    finest = max((m.shape for m in eds.values()), key=lambda s: (s[0] * s[1], s))
    moved = tuple(sorted(el for el, m in eds.items() if m.shape != finest))
    out = {el: (upsample_to(m, finest) if el in moved else m) for el, m in eds.items()}
    return out, moved


def _fit_translation(
    ref_w: np.ndarray, smooth: np.ndarray, full: tuple[int, int], frame: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(2x3 matrix, rendering coefficients): phase correlation of a least-squares SEM-like
    rendering of the maps with the SEM on the working grid, rendering refitted twice."""
    wshape = ref_w.shape
    fy, fx = full[0] / wshape[0], full[1] / wshape[1]
    win = window("hann", wshape).astype(np.float32)
    ref = (ref_w - ref_w.mean()) * win
    ups = np.stack([warp_to(m, wshape, np.eye(2, 3), full, frame) for m in smooth])
    mat = np.eye(2, 3)
    coefs = _lstsq_coefs(ups, ref_w)
    for _ in range(2):  # fit the rendering on the current alignment, then re-estimate the shift
        render = np.tensordot(coefs, ups, axes=1)
        shift, _, _ = phase_cross_correlation(
            ref, (render - render.mean()) * win, upsample_factor=50, normalization=None
        )
        mat = np.array([[1.0, 0.0, -shift[0] * fy], [0.0, 1.0, -shift[1] * fx]])
        aligned = np.stack([warp_to(m, wshape, mat, full, frame) for m in smooth])
        coefs = _lstsq_coefs(aligned, ref_w)
    return mat, coefs


def _fit_linear_map(
    ref_w: np.ndarray, rendering: np.ndarray, mat: np.ndarray, full: tuple[int, int],
    frame: tuple[int, int], transform: str,
) -> np.ndarray:
    """Refines ``mat`` by rotation/scale (``similarity``) or a general ``affine`` part: each
    round warps the rendering, measures residual tile shifts and refits."""
    wshape = ref_w.shape
    fy, fx = full[0] / wshape[0], full[1] / wshape[1]
    for _ in range(3):
        render = warp_to(rendering, wshape, mat, full, frame)
        step = _tile_fit(ref_w, render, (fy, fx), transform)
        if step is None:
            break
        g, t = step
        mat = np.concatenate(
            [mat[:, :2] @ (np.eye(2) - g), (mat[:, 2] - mat[:, :2] @ t)[:, None]], 1
        )
        if np.abs(g).max() * max(full) < 0.1 and np.abs(t).max() < 0.1:  # converged
            break
    return mat


def _tile_fit(
    ref: np.ndarray, render: np.ndarray, f: tuple[float, float], transform: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """Local shifts of ``render`` vs ``ref`` in tiles, fitted by a linear field s(p) = G p + t.

    Returns (G, t) in SEM pixel units, or None when too few tiles carry structure.
    """
    th, tw = ref.shape
    tile = int(min(128, th // 2, tw // 2))
    if tile < 32:
        return None
    pts, shifts = [], []
    win = window("hann", (tile, tile)).astype(np.float32)
    for y in range(0, th - tile + 1, tile // 2):
        for x in range(0, tw - tile + 1, tile // 2):
            a = ref[y : y + tile, x : x + tile]
            r = render[y : y + tile, x : x + tile]
            if a.std() < 1e-3 or r.std() < 1e-6:
                continue
            sh = _peak_shift((a - a.mean()) * win, (r - r.mean()) * win)
            pts.append(
                ((y + tile / 2 - 0.5 + 0.5) * f[0] - 0.5, (x + tile / 2 - 0.5 + 0.5) * f[1] - 0.5)
            )
            shifts.append((sh[0] * f[0], sh[1] * f[1]))
    if len(pts) < 4:
        return None
    p, s = np.asarray(pts), np.asarray(shifts)
    keep = np.ones(len(p), bool)
    for _ in range(2):  # least squares, then once more without the outlier tiles
        g, t = _fit_linear(p[keep], s[keep], transform)
        res = np.linalg.norm(s - (p @ g.T + t), axis=1)
        keep = res <= max(3 * np.median(res), 0.5)
        if keep.sum() < 4:
            return None
    return _fit_linear(p[keep], s[keep], transform)


def _peak_shift(ref: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Shift registering ``moving`` to ``ref``: cross-correlation peak + parabolic sub-pixel fit.

    Cheaper than an upsampled DFT and accurate to ~0.1 px, enough for the many tiles.
    """
    xc = np.fft.irfft2(np.fft.rfft2(ref) * np.conj(np.fft.rfft2(moving)), s=ref.shape)
    peak = np.unravel_index(int(np.argmax(xc)), xc.shape)
    out = np.zeros(2)
    for ax in range(2):
        n = xc.shape[ax]
        idx = [list(peak), list(peak), list(peak)]
        idx[0][ax] = (peak[ax] - 1) % n
        idx[2][ax] = (peak[ax] + 1) % n
        ym, y0, yp = (xc[tuple(i)] for i in idx)
        den = ym - 2 * y0 + yp
        frac = 0.5 * (ym - yp) / den if den < 0 else 0.0
        pos = peak[ax] + float(np.clip(frac, -0.5, 0.5))
        out[ax] = pos - n if pos > n / 2 else pos
    return out


def _fit_linear(p: np.ndarray, s: np.ndarray, transform: str) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares s ≈ G p + t, G of similarity form [[a, -b], [b, a]] or general (affine)."""
    n = len(p)
    if transform == "affine":
        x = np.concatenate([p, np.ones((n, 1))], 1)
        coef, *_ = np.linalg.lstsq(x, s, rcond=None)
        return coef[:2].T, coef[2]
    rows = np.zeros((2 * n, 4))
    rows[0::2] = np.stack([p[:, 0], -p[:, 1], np.ones(n), np.zeros(n)], 1)
    rows[1::2] = np.stack([p[:, 1], p[:, 0], np.zeros(n), np.ones(n)], 1)
    coef, *_ = np.linalg.lstsq(rows, s.reshape(-1), rcond=None)
    a, b, ty, tx = coef
    return np.array([[a, -b], [b, a]]), np.array([ty, tx])


def _lstsq_coefs(maps: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Weights (without offset) of the least-squares fit of ``maps`` to ``target``."""
    sub = (slice(None), slice(None, None, 2), slice(None, None, 2))
    x = np.concatenate([np.ones((1,) + maps[sub].shape[1:], np.float32), maps[sub]])
    x = x.reshape(len(x), -1).T
    coef, *_ = np.linalg.lstsq(x, target[sub[1:]].ravel(), rcond=None)
    return coef[1:]
