"""Shared pieces of the analysis: phase names, the "not sample" value, units, percolation.

Every metric works on a label map of class ids 0 pore, 1 NiO, 2 Ni, 3 YSZ. The value 255
("not sample", e.g. a masked SEM data bar) is outside the field: no metric counts it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from socseg_jax.core.errors import UserError
from socseg_jax.core.phases import CLASS_NAMES, NUM_CLASSES

NOT_SAMPLE = 255
PHASES: tuple[str, ...] = CLASS_NAMES  # ("pore", "NiO", "Ni", "YSZ")
AXES = ("y", "x")  # y: top <-> bottom borders (rows), x: left <-> right borders (columns)


@dataclass(frozen=True)
class Units:
    """Length unit of the results: µm when the pixel size is known, else px.

    ``scale`` is the length of one pixel in that unit (µm, or 1 for px). Column suffixes:
    ``length`` -> ``_um``, ``per_area`` -> ``_per_um2`` and so on.
    """

    name: str  # "um" or "px"
    scale: float

    @classmethod
    def of(cls, pixel_size_nm: float | None) -> Units:
        if pixel_size_nm and pixel_size_nm > 0:
            return cls("um", float(pixel_size_nm) * 1e-3)
        return cls("px", 1.0)

    @property
    def length(self) -> str:
        return self.name

    @property
    def per_area(self) -> str:
        return f"per_{self.name}2"

    @property
    def length_per_area(self) -> str:
        return f"{self.name}_per_{self.name}2"

    @property
    def length_per_volume(self) -> str:
        return f"{self.name}_per_{self.name}3"

    @property
    def area_per_volume(self) -> str:
        return f"{self.name}2_per_{self.name}3"


def field_box(labels: np.ndarray) -> tuple[slice, slice]:
    """(rows, columns) of the bounding box of the sample pixels (not 255). Raises UserError
    if no pixel is sample."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise UserError(f"expected a 2-D label map, got shape {labels.shape}")
    valid = labels != NOT_SAMPLE
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    if rows.size == 0:
        raise UserError("label map has no sample pixel (all 255 = not sample)")
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def crop_to_field(labels: np.ndarray) -> np.ndarray:
    """The bounding box of the sample pixels (``field_box``): a masked data bar is cut away,
    so the field's borders are the sample's borders."""
    return np.asarray(labels)[field_box(labels)]


def check_labels(labels: np.ndarray) -> np.ndarray:
    """``labels`` as uint8, or ValueError naming the values that are neither 0..3 nor 255."""
    labels = np.asarray(labels)
    uniq = np.unique(labels)
    bad = [int(v) for v in uniq if not (0 <= v < NUM_CLASSES or v == NOT_SAMPLE)]
    if bad:
        raise UserError(f"label values {bad[:8]} are not class ids 0..3 or 255 (not sample)")
    return labels.astype(np.uint8, copy=False)


def structure(connectivity: int) -> np.ndarray:
    """scipy.ndimage structuring element: 4 (edge neighbours) or 8 (edges and corners)."""
    if connectivity not in (4, 8):
        raise UserError(f"connectivity must be 4 or 8, not {connectivity!r}")
    return ndi.generate_binary_structure(2, 1 if connectivity == 4 else 2)


def border_labels(clusters: np.ndarray, n: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean tables (n + 1,) of the cluster ids touching the first / last border across
    ``axis`` (0: top and bottom rows, 1: left and right columns); id 0 (background) False."""
    first = np.take(clusters, 0, axis=axis)
    last = np.take(clusters, -1, axis=axis)
    a, b = np.zeros(n + 1, bool), np.zeros(n + 1, bool)
    a[first] = True
    b[last] = True
    a[0] = b[0] = False
    return a, b


_BAND = 1 << 22  # pixels per band of the cluster-id passes below (bounds index temporaries)


def _bands(clusters: np.ndarray):
    rows = max(1, _BAND // max(clusters.shape[1], 1))
    for start in range(0, clusters.shape[0], rows):
        yield slice(start, start + rows)


def cluster_sizes(clusters: np.ndarray, n: int) -> np.ndarray:
    """Pixels per cluster id (0..n), counted band by band: a whole-map ``np.bincount``
    would copy the int32 ids to int64 (2 bytes more per pixel than the map itself)."""
    sizes = np.zeros(n + 1, np.int64)
    for rows in _bands(clusters):
        sizes += np.bincount(clusters[rows].ravel(), minlength=n + 1)
    return sizes


def cluster_lookup(table: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """``table[clusters]`` band by band (same result, no int64 copy of the whole id map)."""
    out = np.empty(clusters.shape, table.dtype)
    for rows in _bands(clusters):
        out[rows] = table[clusters[rows]]
    return out


def percolating(mask: np.ndarray, axis: int, connectivity: int) -> np.ndarray:
    """Pixels of ``mask`` in clusters that touch both opposite borders across ``axis``."""
    clusters, n = ndi.label(mask, structure=structure(connectivity))
    a, b = border_labels(clusters, n, axis)
    return cluster_lookup(a & b, clusters)


def axis_index(axis: str) -> int:
    """'y' -> 0 (rows: top to bottom), 'x' -> 1 (columns: left to right)."""
    if axis not in AXES:
        raise UserError(f"axis must be 'y' or 'x', not {axis!r}")
    return AXES.index(axis)
