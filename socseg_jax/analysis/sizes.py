"""Sizes: local thickness, chord lengths and equivalent-disk particle diameters.

Local thickness (Hildebrand & Rüegsegger) of a phase pixel p: the diameter 2 r of the
largest disk inside the phase that covers p, where a disk is centred on a phase pixel c
and its radius r = dt(c) is the Euclidean distance from c to the nearest pixel not in the
phase (multi-label ``edt``; the disk holds the pixels q with |q - c| < dt(c)).
So a stripe of even width w gets w exactly; a drawn disk of radius R gets ~2R (its pixel
count across is 2R + 1). Pixels outside the image are not taken as boundary (as PoreSpy).
Computed exactly: only maximal-disk centres are kept (a discrete disk that lies inside a
neighbour's discrete disk is dropped, tested by a table per squared radius), then disks
of all phases are stamped into one map in increasing radius order, grouped by their exact
squared radius, so the last (largest) wins. d10/d50/d90 and the mean are of the
pixel-weighted distribution over the phase's pixels. A phase that fills the whole field
has no boundary: its local thickness is NaN.

Chord lengths: maximal runs of a phase along rows (x) and columns (y); runs touching the
field border or a not-sample pixel are left out (their length is unknown); the mean is
number-weighted (mean intercept length).

Equivalent-disk diameter of a particle (cluster of the phase, job connectivity) that does
not touch the field border or a not-sample pixel: d = 2 sqrt(area / pi); number-weighted
mean and median are reported.
"""

from __future__ import annotations

import edt
import numpy as np
from scipy import ndimage as ndi

from socseg_jax.analysis.label_field import NOT_SAMPLE, PHASES, Units, cluster_sizes, structure

_CHUNK = 1 << 22  # elements of one stamping step (bounds memory)
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def squared_distance_to_boundary(ids: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of each pixel to the nearest pixel of another id: an
    integer map (uint16 below 60000, so that the tables of ``_Disks`` fit too, else int32),
    0 where the id is 0, -1 everywhere when one id fills the field. Multi-label ``edt``
    (the distance transform PoreSpy uses) does every phase of a label map in one
    multithreaded pass; the field border is not a boundary."""
    dt = edt.edt(np.ascontiguousarray(ids), black_border=False, parallel=0)
    if not np.isfinite(dt).all():  # one id fills the field: no boundary anywhere
        return np.full(ids.shape, -1, np.int32)
    np.multiply(dt, dt, out=dt)
    np.rint(dt, out=dt)
    return dt.astype(np.uint16 if dt.max() < 60000 else np.int32)


class _Disks:
    """Discrete disks D(r2) = {q : |q|^2 < r2} as prefixes of the offsets sorted by length."""

    def __init__(self, max_r2: int):
        self.radius = int(np.ceil(np.sqrt(max_r2)))
        oy, ox = np.mgrid[-self.radius : self.radius + 1, -self.radius : self.radius + 1]
        d2 = (oy**2 + ox**2).ravel()
        order = np.argsort(d2, kind="stable")
        self.oy, self.ox = oy.ravel()[order], ox.ravel()[order]
        self.size = np.searchsorted(d2[order], np.arange(max_r2 + 1), side="left")

    def containing_r2(self, dy: int, dx: int) -> np.ndarray:
        """Per r2: the largest |q - (dy, dx)|^2 over D(r2), so that D(r2) lies inside the
        disk of a neighbour at (dy, dx) exactly when that neighbour's r2 is larger."""
        farthest = np.maximum.accumulate((self.oy - dy) ** 2 + (self.ox - dx) ** 2)
        return np.where(self.size > 0, farthest[np.maximum(self.size - 1, 0)], -1)


def _maximal_centres(ids: np.ndarray, r2: np.ndarray, disks: _Disks) -> np.ndarray:
    """Pixels (id > 0) whose discrete disk is not inside the disk of one of their 8
    neighbours (a neighbour of another id is a boundary, so its disk never contains ours).
    Dropping a contained disk cannot change the stamped maximum: its container is larger."""
    h, w = r2.shape
    inside = ids == 0
    need = np.empty_like(r2)
    for dy, dx in _NEIGHBOURS:
        table = disks.containing_r2(dy, dx).astype(r2.dtype)
        np.take(table, r2, out=need, mode="clip")  # indices valid; "raise" would buffer
        here = (slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx)))
        there = (slice(max(0, dy), h + min(0, dy)), slice(max(0, dx), w + min(0, dx)))
        inside[here] |= r2[there] > need[here]
    return ~inside


def local_thickness_of_ids(ids: np.ndarray) -> np.ndarray:
    """float32 local thickness (px) of every region of an id map (uint8) at once (0 where
    the id is 0). A disk never leaves its own phase (it holds only pixels closer than the
    nearest other id), so the disks of all phases are stamped into one map."""
    r2_map = squared_distance_to_boundary(ids)
    max_r2 = int(r2_map.max())
    if max_r2 <= 0:  # no region, or one region filling the field (no disk bounds it: NaN)
        return np.where(r2_map < 0, np.float32(np.nan), np.float32(0))
    disks = _Disks(max_r2)
    ys, xs = np.nonzero(_maximal_centres(ids, r2_map, disks))
    r2 = r2_map[ys, xs]
    radius, (h, w) = disks.radius, ids.shape
    wp = w + 2 * radius
    offsets = disks.oy * wp + disks.ox
    base = (ys + radius) * wp + (xs + radius)
    by_r2 = np.argsort(r2, kind="stable")  # radix sort for uint16
    counts = np.bincount(r2, minlength=max_r2 + 1)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    out = np.zeros((h + 2 * radius) * wp, np.float32)
    for v in np.flatnonzero(counts):  # increasing radius: the largest disk wins
        off = offsets[: disks.size[v]]
        step = max(1, _CHUNK // len(off))
        diameter = np.float32(2.0 * np.sqrt(v))
        for i in range(bounds[v], bounds[v + 1], step):
            out[(base[by_r2[i : min(bounds[v + 1], i + step)], None] + off[None, :]).ravel()] = (
                diameter)
    out = out.reshape(h + 2 * radius, wp)[radius : radius + h, radius : radius + w]
    out[ids == 0] = 0
    return out


def local_thickness(mask: np.ndarray) -> np.ndarray:
    """float32 map of local thickness in px (0 outside ``mask``); see the module doc."""
    return local_thickness_of_ids(np.asarray(mask, bool).view(np.uint8))


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
    area = cluster_sizes(clusters, n)
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
    ids = np.where(labels < len(PHASES), labels + 1, 0).astype(np.uint8)
    thickness = local_thickness_of_ids(ids)
    for k, name in enumerate(PHASES):
        mask = labels == k
        if mask.any():
            values = thickness[mask]
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
