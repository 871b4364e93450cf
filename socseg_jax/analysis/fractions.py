"""Area fractions of the four phases and their standard error by block resampling.

Area fraction of phase k: A_k = N_k / N, the pixels of phase k over the sample pixels of the
field (255 = not sample excluded). Standard error: the field is cut into non-overlapping
``block_size_px`` x ``block_size_px`` blocks (a partial last row/column of blocks is left
out of the SE only); blocks with fewer than half of their pixels in the sample are dropped.
SE = std(block fractions, ddof=1) / sqrt(number of blocks), the standard error of the mean
over blocks ("batch means"). Blocks larger than the correlation length make the block
fractions nearly independent, so SE shrinks as 1/sqrt(field area). Fewer than 2 blocks: NaN.
"""

from __future__ import annotations

import numpy as np

from socseg_jax.analysis.label_field import NOT_SAMPLE, PHASES
from socseg_jax.core.errors import UserError


def area_fractions(labels: np.ndarray) -> np.ndarray:
    """(4,) fraction of the sample pixels in each phase (0 pore, 1 NiO, 2 Ni, 3 YSZ)."""
    counts = np.bincount(labels.ravel(), minlength=256)[: len(PHASES)].astype(np.float64)
    total = counts.sum()
    if total == 0:
        raise UserError("no sample pixel to measure area fractions on")
    return counts / total


def block_fractions(labels: np.ndarray, block_size_px: int) -> np.ndarray:
    """(n_blocks, 4) phase fractions of every full block with at least half sample pixels."""
    if block_size_px < 2:
        raise UserError(f"block_size_px must be >= 2, not {block_size_px}")
    b = int(block_size_px)
    ny, nx = labels.shape[0] // b, labels.shape[1] // b
    if ny * nx == 0:
        return np.zeros((0, len(PHASES)))
    tiles = labels[: ny * b, : nx * b].reshape(ny, b, nx, b)
    counts = np.stack([(tiles == k).sum(axis=(1, 3)) for k in range(len(PHASES))], -1)
    counts = counts.reshape(-1, len(PHASES)).astype(np.float64)
    sample = counts.sum(-1)
    keep = sample >= 0.5 * b * b
    return counts[keep] / sample[keep, None]


def fraction_metrics(labels: np.ndarray, block_size_px: int) -> dict[str, float]:
    """``<phase>_area_pct`` and ``<phase>_area_se_pct`` (block SE) for every phase."""
    fractions = area_fractions(labels)
    blocks = block_fractions(labels, block_size_px)
    if len(blocks) >= 2:
        se = blocks.std(axis=0, ddof=1) / np.sqrt(len(blocks))
    else:
        se = np.full(len(PHASES), np.nan)
    out: dict[str, float] = {"sample_pixels_count": int((labels != NOT_SAMPLE).sum())}
    out["se_blocks_count"] = len(blocks)
    for k, name in enumerate(PHASES):
        out[f"{name}_area_pct"] = 100.0 * float(fractions[k])
        out[f"{name}_area_se_pct"] = 100.0 * float(se[k])
    return out
