"""Registration of (coarser, drifted) EDS element maps onto the SEM image.

Why: EDS maps are acquired at a lower resolution and drift relative to the SEM frame; labels
made from unaligned maps would be shifted by several pixels. We render an SEM-like image from
the element maps (a least-squares linear combination fitted to the smoothed SEM image), find
the sub-pixel translation by cross-correlation, and resample the maps onto the SEM grid with
that translation in one interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import window
from skimage.registration import phase_cross_correlation


class RegistrationError(ValueError):
    """EDS maps could not be registered to the SEM image with sufficient quality."""


@dataclass(frozen=True)
class RegistrationResult:
    """Translation applied to the upsampled EDS maps (SEM px), EDS->SEM scale, NCC quality."""

    shift_yx: tuple[float, float]
    scale: tuple[float, float]
    quality: float


def upsample_to(
    m: np.ndarray, shape: tuple[int, int], shift_yx: tuple[float, float] = (0.0, 0.0)
) -> np.ndarray:
    """Bilinear resampling of a map onto an SEM grid of ``shape``, translated by ``shift_yx``.

    Pixel centres are matched (EDS pixel i covers SEM pixels [i*s, (i+1)*s)); the result equals
    ``ndimage.shift(upsampled, shift_yx)`` but interpolates only once.
    """
    sy, sx = shape[0] / m.shape[0], shape[1] / m.shape[1]
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


def register_eds(
    sem_norm: np.ndarray,
    eds: dict[str, np.ndarray],
    min_quality: float = 0.3,
) -> tuple[dict[str, np.ndarray], RegistrationResult]:
    """Upsample and align EDS maps to the SEM grid; return aligned maps and the registration.

    ``sem_norm`` is the normalised SEM image (float in [0, 1]); ``eds`` maps element -> counts,
    all of one shape no larger than the SEM image. Raises RegistrationError when the normalised
    cross-correlation after alignment is below ``min_quality`` (e.g. maps of another region).
    """
    if not eds:
        raise RegistrationError("no EDS maps to register")
    shapes = {m.shape for m in eds.values()}
    if len(shapes) != 1:
        raise RegistrationError(f"EDS maps have different shapes: {sorted(shapes)}")
    sem = np.asarray(sem_norm, dtype=np.float32)
    h, w = sem.shape
    he, we = next(iter(shapes))
    scale = (h / he, w / we)
    names = sorted(eds)
    # Registration signals: lightly denoised maps upsampled, SEM blurred to the EDS resolution.
    smooth = [ndi.gaussian_filter(eds[n].astype(np.float32), 0.7) for n in names]
    sigma_sem = 0.5 + 0.75 * float(np.mean(scale))
    sem_s = ndi.gaussian_filter(sem, sigma_sem)
    win = window("hann", sem.shape).astype(np.float32)
    ref = (sem_s - sem_s.mean()) * win
    ups = np.stack([upsample_to(m, (h, w)) for m in smooth])
    shift = np.zeros(2)
    for _ in range(2):  # fit the rendering on the current alignment, then re-estimate the shift
        aligned = np.stack([ndi.shift(u, shift, order=1, mode="nearest") for u in ups])
        render = np.tensordot(_lstsq_coefs(aligned, sem_s), ups, axes=1)
        shift, _, _ = phase_cross_correlation(
            ref, (render - render.mean()) * win, upsample_factor=50, normalization=None
        )
    shift_t = (float(shift[0]), float(shift[1]))
    render_al = ndi.shift(render, shift_t, order=1, mode="nearest")
    b = int(np.ceil(np.abs(shift).max())) + 2
    inner = (slice(b, h - b), slice(b, w - b)) if min(h, w) > 4 * b else (slice(None),) * 2
    quality = _ncc(render_al[inner], sem_s[inner])
    result = RegistrationResult(shift_t, (float(scale[0]), float(scale[1])), quality)
    if not quality >= min_quality:
        raise RegistrationError(
            f"EDS registration quality {quality:.3f} below {min_quality} (shift {shift_t})"
        )
    aligned_maps = {n: upsample_to(eds[n], (h, w), shift_t) for n in names}
    return aligned_maps, result


def _lstsq_coefs(maps: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Weights (without offset) of the least-squares fit of ``maps`` to ``target``."""
    sub = (slice(None), slice(None, None, 2), slice(None, None, 2))
    x = np.concatenate([np.ones((1,) + maps[sub].shape[1:], np.float32), maps[sub]])
    x = x.reshape(len(x), -1).T
    coef, *_ = np.linalg.lstsq(x, target[sub[1:]].ravel(), rcond=None)
    return coef[1:]
