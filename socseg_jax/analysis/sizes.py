"""Sizes: local thickness, chord lengths and equivalent-disk particle diameters.

Local thickness (Hildebrand & Rüegsegger) of a phase pixel p: the diameter 2 r of the
largest disk inside the phase that covers p, where a disk is centred on a phase pixel c
and its radius r = dt(c) is the Euclidean distance from c to the nearest pixel not in the
phase (scipy distance_transform_edt; the disk holds the pixels q with |q - c| < dt(c)).
So a stripe of even width w gets w exactly; a drawn disk of radius R gets ~2R (its pixel
count across is 2R + 1). Pixels outside the image are not taken as boundary (as PoreSpy).
Computed exactly: only maximal-disk centres are kept (a disk inside a neighbour's disk,
|c - n| + dt(c) <= dt(n), is dropped), then disks are stamped in increasing radius order,
grouped by their exact squared radius, so the last (largest) wins. d10/d50/d90 and the mean
are of the pixel-weighted distribution over the phase's pixels.

Chord lengths: maximal runs of a phase along rows (x) and columns (y); runs touching the
field border or a not-sample pixel are left out (their length is unknown); the mean is
number-weighted (mean intercept length).

Equivalent-disk diameter of a particle (cluster of the phase, job connectivity) that does
not touch the field border or a not-sample pixel: d = 2 sqrt(area / pi); number-weighted
mean and median are reported.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from socseg_jax.analysis.common import NOT_SAMPLE, PHASES, Units, structure

_CHUNK = 1 << 22  # elements of one stamping step (bounds memory)
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def distance_to_boundary(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of each mask pixel to the nearest pixel outside it (0 outside).

    Uses the multithreaded ``edt`` package when installed (it comes with PoreSpy, ~5x
    faster), else scipy.ndimage.distance_transform_edt; both give the same exact values.
    """
    try:
        import edt  # optional accelerator
    except ImportError:
        return ndi.distance_transform_edt(mask)
    return edt.edt(np.ascontiguousarray(mask), black_border=False, parallel=0).astype(np.float64)


def _maximal_centres(mask: np.ndarray, dt: np.ndarray) -> np.ndarray:
    """Phase pixels whose disk is not inside the disk of one of their 8 neighbours."""
    padded = np.pad(dt, 1)
    inside = np.zeros(mask.shape, bool)
    h, w = mask.shape
    for dy, dx in _NEIGHBOURS:
        neighbour = padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        inside |= dt + np.hypot(dy, dx) <= neighbour + 1e-6
    return mask & ~inside


def local_thickness(mask: np.ndarray) -> np.ndarray:
    """float32 map of local thickness in px (0 outside ``mask``); see the module doc."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.zeros(mask.shape, np.float32)
    dt = distance_to_boundary(mask)
    centres = _maximal_centres(mask, dt)
    radius = int(np.ceil(dt.max()))
    h, w = mask.shape
    wp = w + 2 * radius
    out = np.zeros((h + 2 * radius) * wp, np.float32)
    oy, ox = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    d2 = (oy**2 + ox**2).ravel()
    order = np.argsort(d2, kind="stable")
    d2_sorted, offsets = d2[order], (oy.ravel() * wp + ox.ravel())[order]
    ys, xs = np.nonzero(centres)
    r2 = np.rint(dt[ys, xs] ** 2).astype(np.int64)
    base = (ys + radius) * wp + (xs + radius)
    by_r2 = np.argsort(r2, kind="stable")
    values, starts = np.unique(r2[by_r2], return_index=True)
    bounds = np.append(starts, len(by_r2))
    for v, s, e in zip(values, bounds[:-1], bounds[1:], strict=True):
        off = offsets[: np.searchsorted(d2_sorted, v, side="left")]
        step = max(1, _CHUNK // len(off))
        diameter = np.float32(2.0 * np.sqrt(v))
        for i in range(s, e, step):
            out[(base[by_r2[i : min(e, i + step)], None] + off[None, :]).ravel()] = diameter
    out = out.reshape(h + 2 * radius, wp)[radius : radius + h, radius : radius + w]
    return np.where(mask, out, np.float32(0))


def chord_lengths(labels: np.ndarray, phase: int, axis: int) -> np.ndarray:
    """Lengths (px) of the phase's runs along ``axis`` (1: rows/x, 0: columns/y) that touch
    neither the field border nor a not-sample pixel."""
    arr = labels if axis == 1 else labels.T
    arr = np.pad(arr, ((0, 0), (1, 1)), constant_values=NOT_SAMPLE).ravel()
    edges = np.diff((arr == phase).view(np.int8))
    starts, ends = np.flatnonzero(edges == 1) + 1, np.flatnonzero(edges == -1) + 1
    closed = (arr[starts - 1] != NOT_SAMPLE) & (arr[ends] != NOT_SAMPLE)
    return (ends - starts)[closed]


def particle_diameters(labels: np.ndarray, phase: int, connectivity: int) -> np.ndarray:
    """Equivalent-disk diameters (px) of the phase's clusters off the border and mask."""
    clusters, n = ndi.label(labels == phase, structure=structure(connectivity))
    area = np.bincount(clusters.ravel(), minlength=n + 1)
    cut = np.zeros(n + 1, bool)
    for edge in (clusters[0], clusters[-1], clusters[:, 0], clusters[:, -1]):
        cut[edge] = True
    outside = labels == NOT_SAMPLE
    if outside.any():
        near = ndi.binary_dilation(outside, structure=structure(connectivity))
        cut[clusters[near]] = True
    cut[0] = True
    return 2.0 * np.sqrt(area[~cut] / np.pi)


def _stats(values: np.ndarray, key: str, unit: str, scale: float) -> dict[str, float]:
    if values.size == 0:
        return {f"{key}_mean_{unit}": np.nan}
    return {f"{key}_mean_{unit}": float(values.mean()) * scale}


def size_metrics(
    labels: np.ndarray, units: Units, connectivity: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Local thickness percentiles, mean chords along x and y, particle diameters per phase;
    also returns the local-thickness map (px, max over phases: phases do not overlap)."""
    u, s = units.length, units.scale
    out: dict[str, float] = {}
    thickness = np.zeros(labels.shape, np.float32)
    for k, name in enumerate(PHASES):
        mask = labels == k
        lt = local_thickness(mask)
        thickness += lt
        if mask.any():
            values = lt[mask]
            p10, p50, p90 = np.percentile(values, [10, 50, 90])
            mean = float(values.mean())
        else:
            p10 = p50 = p90 = mean = np.nan
        out[f"{name}_local_thickness_mean_{u}"] = mean * s
        for q, v in (("d10", p10), ("d50", p50), ("d90", p90)):
            out[f"{name}_local_thickness_{q}_{u}"] = float(v) * s
        for axis, ax in (("x", 1), ("y", 0)):
            out.update(_stats(chord_lengths(labels, k, ax).astype(float), f"{name}_chord_{axis}",
                              u, s))
        diam = particle_diameters(labels, k, connectivity)
        out[f"{name}_particles_count"] = int(diam.size)
        out.update(_stats(diam, f"{name}_particle_diameter", u, s))
        out[f"{name}_particle_diameter_median_{u}"] = (
            float(np.median(diam)) * s if diam.size else np.nan
        )
    return out, {"local_thickness_px": thickness}
