"""Geometry of sliding-window inference (NumPy): padding to a patch, tile starts, row bands.

Pure functions of shapes and settings, so the plan of an image can be inspected and tested
without a model.
"""

from __future__ import annotations

import numpy as np

from data_prep.patches import tile_starts
from socseg_jax.core.errors import UserError

PAD_MODES = ("reflect", "symmetric", "edge", "constant")


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


def pad_to_patch(
    image: np.ndarray, patch: int, pad_mode: str = "reflect"
) -> tuple[np.ndarray, tuple[int, int]]:
    """(H', W', C) float32 image padded (centred) to at least one patch, and its offset."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1 or image.shape[2] < 1:
        raise UserError(f"image must be (H, W) or (H, W, C) and non-empty, got {image.shape}")
    image = image.astype(np.float32, copy=False)
    h, w, _ = image.shape
    padded_h, padded_w = max(h, patch), max(w, patch)
    top, left = (padded_h - h) // 2, (padded_w - w) // 2
    pad = ((top, padded_h - h - top), (left, padded_w - w - left), (0, 0))
    if any(before or after for before, after in pad):
        mode = pad_mode
        if mode in ("reflect", "symmetric") and min(h, w) == 1:
            mode = "edge"  # nothing to reflect along a single row/column
        image = np.pad(image, pad, mode=mode)
    return image, (top, left)


def band_plan(
    padded_h: int,
    canvas_w: int,
    patch: int,
    stride: int,
    size_bucket: int,
    max_band_pixels: int,
) -> tuple[int, list[tuple[int, int]]]:
    """Accumulator height and the tile-row ranges [i0, i1) of each band.

    One band covers the whole (bucketed) height when its accumulator fits in
    ``max_band_pixels``; otherwise bands of R tile rows use an accumulator of
    ``(R - 1) * stride + patch`` rows, of which ``R * stride`` rows are finished per band.
    """
    rows = len(tile_starts(padded_h, patch, stride))
    canvas_h = round_up(padded_h, size_bucket)
    if canvas_h * canvas_w <= max_band_pixels:
        return canvas_h, [(0, rows)]
    per_band = max(1, (max_band_pixels // canvas_w - patch) // stride + 1)
    if per_band >= rows:
        return canvas_h, [(0, rows)]
    bands = [(i, min(i + per_band, rows)) for i in range(0, rows, per_band)]
    return (per_band - 1) * stride + patch, bands
