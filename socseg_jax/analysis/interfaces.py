"""Interface length density per phase pair, counted on pixel edges.

N_ab = number of pixel edges (between 4-neighbours, rows and columns) with phase a on one
side and b on the other; edges next to a not-sample pixel are not counted. The staircase
length N_ab * pixel size overestimates a smooth boundary: averaged over orientations a
segment of length l has |cos| + |sin| = 4/pi times l of staircase (Cauchy-Crofton). The
estimator used is therefore the corrected one:

    L_A(a, b) = (pi / 4) * N_ab * pixel_size / sample_area      [µm/µm²]

(unbiased for isotropic structures; for boundaries aligned with the grid it is pi/4 low).
Per phase, L_A(a) = sum over b of L_A(a, b) is its perimeter density, and the stereological
specific surface is S_V(a) = (4 / pi) * L_A(a) [µm²/µm³ = 1/µm] (isotropic structures).
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np

from socseg_jax.analysis.label_field import NOT_SAMPLE, PHASES, Units


def edge_counts(labels: np.ndarray) -> np.ndarray:
    """(4, 4) symmetric counts of pixel edges between phases (diagonal: same phase)."""
    n = len(PHASES)
    counts = np.zeros((n, n), np.int64)
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        ok = (a != NOT_SAMPLE) & (b != NOT_SAMPLE)
        pair = np.bincount(a[ok].astype(np.int64) * n + b[ok], minlength=n * n)
        counts += pair.reshape(n, n)
    return counts + counts.T - np.diag(np.diag(counts))


def interface_metrics(labels: np.ndarray, units: Units) -> dict[str, float]:
    """``interface_<a>_<b>_<unit>_per_<unit>2`` for the 6 pairs and per-phase specific surface."""
    area = float((labels != NOT_SAMPLE).sum()) * units.scale**2
    counts = edge_counts(labels)
    density = (math.pi / 4.0) * counts * units.scale / area
    out: dict[str, float] = {}
    for a, b in combinations(range(len(PHASES)), 2):
        out[f"interface_{PHASES[a]}_{PHASES[b]}_edges_count"] = int(counts[a, b])
        out[f"interface_{PHASES[a]}_{PHASES[b]}_{units.length_per_area}"] = float(density[a, b])
    off = density - np.diag(np.diag(density))
    for k, name in enumerate(PHASES):
        perimeter = float(off[k].sum())
        out[f"{name}_perimeter_{units.length_per_area}"] = perimeter
        out[f"{name}_specific_surface_{units.area_per_volume}"] = 4.0 / math.pi * perimeter
    return out
