"""The microstructure analysis of one label map for the viewer: the same ``analyze_with_maps``
as job=analyze, its main metrics as (metric, value, unit) rows, and the TPB corners as points.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from ml_collections import ConfigDict

from socseg_jax.analysis.image_metrics import AnalysisOptions, analyze_with_maps
from socseg_jax.analysis.label_field import field_box
from socseg_jax.configs.analyze import analysis_options

# The metrics the table shows (the rest are in job=analyze's report), by name pattern.
MAIN_METRICS = re.compile(
    r"_area_pct$|^tpb_(density|lv)_|^tpb_active_._pct$|_percolating_pct$"
    r"|_local_thickness_mean_|_particle_diameter_mean_|_tortuosity_._unitless$"
)
# Unit suffixes of the metric names (analysis.label_field.Units), longest first, as printed.
UNITS = (
    ("_um2_per_um3", "µm²/µm³"), ("_um_per_um3", "µm/µm³"), ("_um_per_um2", "µm/µm²"),
    ("_per_um2", "1/µm²"), ("_um", "µm"),
    ("_px2_per_px3", "px²/px³"), ("_px_per_px3", "px/px³"), ("_px_per_px2", "px/px²"),
    ("_per_px2", "1/px²"), ("_px", "px"),
    ("_pct", "%"), ("_unitless", ""), ("_count", ""),
)


@dataclass(frozen=True)
class Measurement:
    """Every metric (job=analyze's row), the table's rows and the TPB corners (y, x) in the
    label map's pixel coordinates: active along ``axis``, and inactive."""

    metrics: dict[str, Any]
    rows: list[tuple[str, float, str]]
    axis: str
    active: np.ndarray
    inactive: np.ndarray


def default_options() -> ConfigDict:
    """job=analyze's analysis keys with their defaults (configs/analyze.py)."""
    return analysis_options()


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, float, str]]:
    """(name without its unit, value, unit) of the main metrics, in the analysis's order."""
    rows = []
    for key, value in metrics.items():
        if not MAIN_METRICS.search(key):
            continue
        unit = ""
        for suffix, printed in UNITS:
            if key.endswith(suffix):
                key, unit = key[: -len(suffix)], printed
                break
        rows.append((key, float(value), unit))
    return rows


def measure(labels: np.ndarray, pixel_size_nm: float | None,
            config: ConfigDict | None = None) -> Measurement:
    """Analyses ``labels`` (class ids, 255 = not sample) as job=analyze does with ``config``
    (its analysis keys; default: configs/analyze.py)."""
    options = AnalysisOptions.from_config(config or default_options())
    labels = np.asarray(labels)
    metrics, maps = analyze_with_maps(labels, pixel_size_nm or None, options)
    rows, cols = field_box(labels)
    origin = np.array([rows.start, cols.start], np.float64) + 0.5  # corners between pixels
    axis = options.axes[0]
    tpb = maps["tpb"]
    active = maps[f"active_{axis}"]
    return Measurement(
        metrics, metric_rows(metrics), axis,
        np.argwhere(active) + origin, np.argwhere(tpb & ~active) + origin,
    )
