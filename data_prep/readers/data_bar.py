"""The SEM information data bar at the bottom of an image: detect it and cut it off.
"""

from __future__ import annotations

import numpy as np

from socseg_jax.core.errors import UserError


def detect_data_bar(image: np.ndarray, max_fraction: float = 0.35) -> int:
    """Height (rows) of an SEM information data bar at the bottom of ``image``, 0 if none.

    A data bar is a band of flat background (mostly one grey value, usually black or white)
    with text, unlike the micrograph whose rows are textured and noisy. We flag rows where at
    least half the pixels share the row's most common value and take the contiguous block of
    flagged rows (short text gaps allowed) that reaches the bottom edge.
    """
    img = np.asarray(image)
    h = img.shape[0]
    q = np.rint(img).astype(np.int64) if img.dtype.kind == "f" else img.astype(np.int64)
    flagged = np.zeros(h, bool)
    lo = max(0, h - int(max_fraction * h) - 1)
    for y in range(lo, h):
        _, counts = np.unique(q[y], return_counts=True)
        flagged[y] = counts.max() >= 0.5 * q.shape[1]
    if not flagged[h - 1]:
        return 0
    gap_max = max(3, h // 100)
    top, gap = h - 1, 0
    for y in range(h - 1, lo - 1, -1):
        if flagged[y]:
            top, gap = y, 0
        else:
            gap += 1
            if gap > gap_max:
                break
    height = h - top
    return height if height >= 4 else 0


def parse_data_bar(setting: int | str) -> int | str:
    """The ``data_bar`` setting of prepare and segment: a row count >= 0, 'auto' or 'none'."""
    if isinstance(setting, str) and setting.strip().lower() in ("auto", "none"):
        return setting.strip().lower()
    try:
        rows = int(setting)
    except (TypeError, ValueError):
        raise UserError(
            f"data_bar must be a row count, 'auto' or 'none', got {setting!r}"
        ) from None
    if rows < 0:
        raise UserError(f"data_bar must be >= 0 rows, got {rows}")
    return rows


def crop_data_bar(image: np.ndarray, data_bar: str | int = "auto") -> tuple[np.ndarray, int]:
    """Remove the data bar: ``"auto"`` (detect), ``"none"``/0, or a height in rows.

    The one function prepare and segment share, so both treat a bar the same way: its rows
    are cut off before normalisation, registration, prediction and phase fractions.
    """
    data_bar = parse_data_bar(data_bar if data_bar is not None else "none")
    if data_bar in ("none", 0):
        return image, 0
    height = detect_data_bar(image) if data_bar == "auto" else int(data_bar)
    if not 0 <= height < image.shape[0]:
        raise UserError(f"data bar height {height} does not fit an image of {image.shape[0]} rows")
    return (image[: image.shape[0] - height] if height else image), height
