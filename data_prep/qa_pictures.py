"""QA pictures written by ``prepare`` next to each sample's labels: confidence and registration.

Why: a user checks a prepared sample by looking, not by reading numbers. The registration
picture draws the edges of the registered element maps (Ni, Zr+Y thresholded) in colour over
the grey SEM image, whole and in a full-resolution detail, so that even a 1-2 px
misregistration shows: contours offset from the SEM's particle edges. ``element_composite``
(AZtec's layered image) stays for previews of the maps themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from socseg_jax.core.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Composite channels (red, green, blue) and the elements that feed them, first found wins.
COMPOSITE = (("Zr", "Y"), ("Ni",), ("O",))


def _figure(h: int, w: int, extra_width: float) -> Figure:
    """An off-screen figure sized for an h x w picture plus ``extra_width`` inches."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    scale = 6.0 / max(h, w)
    return Figure(figsize=(max(w * scale, 3.0) + extra_width, max(h * scale, 3.0)), dpi=100)


def save_confidence_png(path: Path, confidence: np.ndarray, name: str) -> None:
    """Label-confidence map as a PNG (viridis), written atomically."""
    fig = _figure(*confidence.shape, extra_width=1.2)
    ax = fig.add_axes((0.0, 0.0, 0.82, 0.92))
    im = ax.imshow(confidence, vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(f"{name} label confidence", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.05)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def element_composite(sem: np.ndarray, maps: Mapping[str, np.ndarray]) -> np.ndarray:
    """(H, W, 3) uint8: element maps (red Zr/Y, green Ni, blue O; each stretched to its
    99th percentile) blended half and half with the grey SEM image in [0, 1]."""
    rgb = np.zeros(sem.shape + (3,), np.float32)
    for channel, elements in enumerate(COMPOSITE):
        present = [np.asarray(maps[el], np.float32) for el in elements if el in maps]
        if present:
            m = np.sum(present, axis=0)
            top = float(np.percentile(m, 99)) or 1.0
            rgb[..., channel] = np.clip(m / top, 0.0, 1.0)
    out = 0.5 * np.asarray(sem, np.float32)[..., None] + 0.5 * rgb
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


# The edges drawn from the registered maps: (name, elements summed, RGB colour); the edge map
# of ``map_edge_ids`` holds 1 + the index in this tuple.
EDGE_MAPS = (("Ni", ("Ni",), (0.1, 1.0, 0.1)), ("Zr+Y", ("Zr", "Y"), (1.0, 0.1, 1.0)))
EDS_MAPS_FORMAT = "socseg registered EDS maps"


def map_edge_ids(maps: Mapping[str, np.ndarray]) -> np.ndarray:
    """(H, W) uint8 edges of the registered maps: 1 + the index in EDGE_MAPS where the
    boundary of that map (Ni; Zr+Y), thresholded at its Otsu level, runs; 0 elsewhere."""
    from skimage.filters import threshold_otsu
    from skimage.segmentation import find_boundaries

    shape = next(iter(maps.values())).shape
    out = np.zeros(shape, np.uint8)
    for index, (_, elements, _) in enumerate(EDGE_MAPS):
        present = [np.asarray(maps[el], np.float32) for el in elements if el in maps]
        if not present:
            continue
        m = np.sum(present, axis=0)
        if np.ptp(m) <= 0:
            continue
        out[find_boundaries(m > threshold_otsu(m), mode="inner")] = index + 1
    return out


def map_edges(maps: Mapping[str, np.ndarray]) -> np.ndarray:
    """(H, W, 3) float RGB of the registered maps' edges (0 elsewhere): the boundaries of the
    Ni map (green) and the Zr+Y map (magenta), as ``map_edge_ids`` finds them."""
    lut = np.array([(0.0, 0.0, 0.0)] + [colour for _, _, colour in EDGE_MAPS], np.float32)
    return lut[map_edge_ids(maps)]


@dataclass(frozen=True)
class RegisteredMaps:
    """The registered element maps as a reviewer sees them: uint8 per element (counts /
    ``counts_per_level``, the 99.9th percentile at 255) and their edges (``map_edge_ids``)."""

    maps: dict[str, np.ndarray]
    counts_per_level: dict[str, float]
    edges: np.ndarray


def save_eds_maps(path: Path, maps: Mapping[str, np.ndarray]) -> None:
    """The registered element maps, one uint8 plane each, then their edges computed on the
    float maps, in one TIFF (names and scales in its JSON description): an eighth of the
    float maps' size, and nothing left to compute when a viewer opens it (atomic write)."""
    import tifffile

    names = sorted(maps)
    planes, scales = [], []
    for el in names:
        m = np.asarray(maps[el], np.float32)
        scale = max(float(np.percentile(m, 99.9)), 1e-6) / 255.0
        planes.append(np.clip(np.rint(m / scale), 0, 255).astype(np.uint8))
        scales.append(scale)
    planes.append(map_edge_ids(maps))
    meta = {"format": EDS_MAPS_FORMAT, "elements": names, "counts_per_level": scales}
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.stack(planes), photometric="minisblack", metadata=meta)


def read_eds_maps(path: Path) -> RegisteredMaps:
    """The maps and edges ``save_eds_maps`` wrote (ValueError for another kind of TIFF)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        meta = tif.shaped_metadata[0] if tif.shaped_metadata else {}
        planes = tif.asarray()
    if meta.get("format") != EDS_MAPS_FORMAT:
        raise ValueError(f"{path}: not a registered EDS maps file ({EDS_MAPS_FORMAT})")
    planes = planes.reshape((-1,) + planes.shape[-2:])
    elements = list(meta["elements"])
    return RegisteredMaps(
        dict(zip(elements, planes[:-1], strict=True)),
        dict(zip(elements, (float(s) for s in meta["counts_per_level"]), strict=True)),
        planes[-1],
    )


def _edges_over(sem: np.ndarray, maps: Mapping[str, np.ndarray]) -> np.ndarray:
    """Grey SEM in RGB with the maps' edges drawn over it in colour."""
    edges = map_edges(maps)
    rgb = np.repeat(np.clip(np.asarray(sem, np.float32), 0, 1)[..., None], 3, axis=-1)
    on = edges.any(axis=-1)
    rgb[on] = edges[on]
    return rgb


def save_registration_png(
    path: Path, sem: np.ndarray, maps: Mapping[str, np.ndarray], title: str,
    max_side: int = 1536, crop: int = 160,
) -> None:
    """The registered maps' edges over the SEM: the whole image (subsampled to ``max_side``)
    and a ``crop`` px window at full resolution, enlarged, where a 1-2 px error shows as
    contours offset from the SEM's particle edges (PNG, atomic write)."""
    h, w = sem.shape
    step = max(1, -(-max(h, w) // max_side))
    view = (slice(None, None, step), slice(None, None, step))
    whole = _edges_over(sem[view], {el: m[view] for el, m in maps.items()})
    c = min(crop, h, w)
    y0, x0 = (h - c) // 2, (w - c) // 2
    win = (slice(y0, y0 + c), slice(x0, x0 + c))
    detail = _edges_over(sem[win], {el: m[win] for el, m in maps.items()})
    ph, pw = whole.shape[:2]
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    side = 5.0  # inches of the detail panel (and the height of both): ~3x its pixels
    wide = side * pw / ph
    fig = Figure(figsize=(wide + side, side / 0.86), dpi=100)
    left = wide / (wide + side)
    for box, img in (((0.0, 0.0, left, 0.86), whole), ((left, 0.0, 1 - left, 0.86), detail)):
        ax = fig.add_axes(box)
        ax.imshow(img, interpolation="nearest")
        ax.set_axis_off()
    scale = f" (1:{step})" if step > 1 else ""
    fig.suptitle(
        f"{title}\nedges of the registered EDS maps: green Ni, magenta Zr+Y\n"
        f"left: whole image{scale}; right: centre {c}x{c} px at full resolution", fontsize=9,
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
