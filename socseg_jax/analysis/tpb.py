"""Triple-phase-boundary (TPB) density by 2x2 pixel-corner counting.

Every interior pixel corner is shared by a 2x2 window of pixels. A corner is a TPB point
when its window holds pore, Ni and YSZ (NiO may be there too). A corner whose window holds
pore, NiO and YSZ but no Ni is an *oxidised* TPB point, reported apart (not a TPB). Windows
with a not-sample pixel (255) are not counted.

ACTIVE TPB (per analysis axis): a TPB corner where pore, Ni and YSZ are each connected to
both opposite borders of the field across that axis: for each of the three phases, at least
one of its pixels in the window belongs to a cluster that percolates (touches both borders;
clusters with the job's 4- or 8-connectivity). "At least one" because the TPB point is the
shared corner, which every pixel of the window touches. Inactive = TPB - active.

Densities: P_A = corner count / sample area (points/µm², or per px²); stereological line
length density L_V = 2 P_A (µm/µm³): a line network of length density L_V meets a plane in
L_V / 2 points per unit area (isotropic lines).
"""

from __future__ import annotations

import numpy as np

from socseg_jax.analysis.label_field import NOT_SAMPLE, Units, axis_index, percolating
from socseg_jax.core.phases import NI, NIO, PORE, YSZ

_OUT_BIT = 16


def _bits(labels: np.ndarray) -> np.ndarray:
    """Per pixel, the bit of its phase (1 << id) or 16 for not sample."""
    lut = np.full(256, _OUT_BIT, np.uint8)
    lut[:4] = 1 << np.arange(4, dtype=np.uint8)
    lut[NOT_SAMPLE] = _OUT_BIT
    return lut[labels]


def _corner_or(values: np.ndarray) -> np.ndarray:
    """Bitwise OR of the 2x2 window of every corner, shape (H-1, W-1)."""
    return values[:-1, :-1] | values[:-1, 1:] | values[1:, :-1] | values[1:, 1:]


def tpb_corners(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean (H-1, W-1) maps of TPB corners and oxidised-TPB corners."""
    present = _corner_or(_bits(labels))
    pore, nio, ni, ysz = (1 << k for k in (PORE, NIO, NI, YSZ))
    tpb = (present & (_OUT_BIT | pore | ni | ysz)) == (pore | ni | ysz)
    oxidised = (present & (_OUT_BIT | pore | nio | ni | ysz)) == (pore | nio | ysz)
    return tpb, oxidised


def active_corners(
    labels: np.ndarray, tpb: np.ndarray, axis: str, connectivity: int
) -> np.ndarray:
    """TPB corners where pore, Ni and YSZ each have a percolating pixel in the window."""
    ax = axis_index(axis)
    ok = tpb.copy()
    for phase in (PORE, NI, YSZ):
        perc = percolating(labels == phase, ax, connectivity).view(np.uint8)
        ok &= _corner_or(perc) > 0
    return ok


def tpb_metrics(
    labels: np.ndarray, units: Units, axes: tuple[str, ...], connectivity: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """TPB counts and densities (all, active per axis, oxidised) and the corner maps."""
    area = float((labels != NOT_SAMPLE).sum()) * units.scale**2
    tpb, oxidised = tpb_corners(labels)
    maps = {"tpb": tpb}
    out: dict[str, float] = {}

    def put(name: str, corners: np.ndarray) -> None:
        n = int(corners.sum())
        out[f"{name}_count"] = n
        out[f"{name}_density_{units.per_area}"] = n / area
        out[f"{name}_lv_{units.length_per_volume}"] = 2.0 * n / area

    put("tpb", tpb)
    put("tpb_oxidised", oxidised)
    for axis in axes:
        active = active_corners(labels, tpb, axis, connectivity)
        maps[f"active_{axis}"] = active
        put(f"tpb_active_{axis}", active)
        put(f"tpb_inactive_{axis}", tpb & ~active)
        out[f"tpb_active_{axis}_pct"] = 100.0 * int(active.sum()) / max(int(tpb.sum()), 1)
    return out, maps
