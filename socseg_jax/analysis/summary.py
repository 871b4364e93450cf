"""The key metrics of an analysis: the columns a scientist reads first, with names and units.

The summary tables and the key plot of report.html show these columns of analysis.csv
(phase area fractions with their standard error, TPB density, active TPB, tortuosity of the
transport phases, mean particle diameter), in the units the analysis had (µm or px).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from socseg_jax.analysis.image_metrics import TRANSPORT_PHASES
from socseg_jax.analysis.label_field import AXES, PHASES

_AREA_UNITS = {"um2": "µm⁻²", "px2": "px⁻²"}
_LENGTH_UNITS = {"um": "µm", "px": "px"}
AXIS_NOTE = "y: between the top and bottom borders, x: between the left and right borders"


@dataclass(frozen=True)
class KeyColumn:
    """One analysis.csv ``column`` shown as ``name`` under ``heading`` (the metric and its
    unit); ``se``: the column of its standard error, shown with it per image."""

    heading: str
    name: str
    column: str
    fmt: str
    se: str = ""


def key_columns(rows: Iterable[dict[str, Any]]) -> list[KeyColumn]:
    """The key columns present in ``rows`` (per-image rows of the analysis), in reading order."""
    keys = {k for row in rows for k in row}
    candidates = [KeyColumn("Area fraction (%)", p, f"{p}_area_pct", ".1f", f"{p}_area_se_pct")
                  for p in PHASES]
    candidates += [KeyColumn(f"TPB density ({unit})", "", f"tpb_density_per_{u}", ".3g")
                   for u, unit in _AREA_UNITS.items()]
    candidates += [KeyColumn("Active TPB (%)", a, f"tpb_active_{a}_pct", ".1f") for a in AXES]
    candidates += [
        KeyColumn("Tortuosity", f"{PHASES[k]} {a}", f"{PHASES[k]}_tortuosity_{a}_unitless", ".2f")
        for k in TRANSPORT_PHASES for a in AXES
    ]
    candidates += [
        KeyColumn(f"Mean particle diameter ({unit})", p, f"{p}_particle_diameter_mean_{u}", ".3g")
        for u, unit in _LENGTH_UNITS.items() for p in PHASES
    ]
    return [c for c in candidates if c.column in keys]


def by_heading(columns: list[KeyColumn]) -> dict[str, list[KeyColumn]]:
    """The columns under each heading, headings in first-seen order."""
    out: dict[str, list[KeyColumn]] = {}
    for c in columns:
        out.setdefault(c.heading, []).append(c)
    return out


def number(value: Any, fmt: str) -> str:
    """``value`` as text: ``fmt`` for a finite number, ∞ for inf (e.g. the tortuosity of a
    phase that does not percolate), – for NaN or a missing value."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return format(v, fmt)
