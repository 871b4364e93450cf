"""Connectivity of each phase: percolating, dead-end and isolated fractions per axis.

The pixels of a phase are grouped into clusters (scipy.ndimage.label; 4-connectivity =
edge neighbours, the job's default, or 8 = edges and corners). Across an axis (y: top and
bottom borders, x: left and right), a cluster is
- percolating: touches both opposite borders,
- dead end: touches exactly one of them,
- isolated: touches neither.
Each metric is the percentage of the phase's pixels in such clusters (they sum to 100).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from socseg_jax.analysis.label_field import (
    PHASES,
    axis_index,
    border_labels,
    cluster_sizes,
    structure,
)


def phase_connectivity(
    mask: np.ndarray, axes: tuple[str, ...], connectivity: int
) -> dict[str, float]:
    """``<axis>_percolating_pct``, ``_dead_end_pct``, ``_isolated_pct`` of one phase mask."""
    clusters, n = ndi.label(mask, structure=structure(connectivity))
    sizes = cluster_sizes(clusters, n).astype(np.float64)
    sizes[0] = 0.0
    total = sizes.sum()
    out: dict[str, float] = {"clusters_count": int(n)}
    for axis in axes:
        first, last = border_labels(clusters, n, axis_index(axis))
        touches = first.astype(int) + last.astype(int)
        for name, k in (("percolating", 2), ("dead_end", 1), ("isolated", 0)):
            share = sizes[touches == k].sum() / total if total else np.nan
            out[f"{axis}_{name}_pct"] = 100.0 * float(share)
    return out


def connectivity_metrics(
    labels: np.ndarray, axes: tuple[str, ...], connectivity: int
) -> dict[str, float]:
    """Connectivity of every phase, keys ``<phase>_<metric>``."""
    out: dict[str, float] = {}
    for k, name in enumerate(PHASES):
        for key, value in phase_connectivity(labels == k, axes, connectivity).items():
            out[f"{name}_{key}"] = value
    return out
