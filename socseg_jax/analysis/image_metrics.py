"""analyze_image: every metric of one label map (batches: analysis.records)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from socseg_jax.analysis import connectivity, fractions, interfaces, sizes, tpb
from socseg_jax.analysis import tortuosity as tort
from socseg_jax.analysis.label_field import AXES, PHASES, Units, check_labels, crop_to_field
from socseg_jax.core.errors import UserError

DIRECTIONS = ("both", "y", "x")
TRANSPORT_PHASES = (0, 2, 3)  # pore (gas), Ni (electrons), YSZ (ions)


@dataclass(frozen=True)
class AnalysisOptions:
    """The job's config keys of the same names (defaults in configs/analyze.py)."""

    direction: str
    connectivity: int
    block_size_px: int
    tortuosity: bool

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise UserError(
                f"config.direction must be one of {DIRECTIONS}, not {self.direction!r}"
            )
        if self.connectivity not in (4, 8):
            raise UserError(f"config.connectivity must be 4 or 8, not {self.connectivity!r}")
        if int(self.block_size_px) < 2:
            raise UserError(f"config.block_size_px must be >= 2, not {self.block_size_px!r}")

    @property
    def axes(self) -> tuple[str, ...]:
        return AXES if self.direction == "both" else (self.direction,)

    @classmethod
    def from_config(cls, config: Any) -> AnalysisOptions:
        """Options from a ConfigDict (or any object with these attributes)."""
        try:
            return cls(str(config.direction), int(config.connectivity),
                       int(config.block_size_px), bool(config.tortuosity))
        except (AttributeError, KeyError) as err:
            raise UserError(f"config is missing an analysis key: {err}") from None


def _tortuosity_metrics(labels: np.ndarray, axes: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in TRANSPORT_PHASES:
        for axis in axes:
            r = tort.tortuosity(labels == k, axis)
            out[f"{PHASES[k]}_tortuosity_{axis}_unitless"] = r["tau"]
            out[f"{PHASES[k]}_deff_{axis}_unitless"] = r["d_eff"]
    return out


def analyze_with_maps(
    labels: np.ndarray, pixel_size_nm: float | None, options: AnalysisOptions,
    timings: dict[str, float] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metrics (flat dict, the unit in every key) and maps (cropped labels, local thickness,
    TPB corners) of one label map; ``timings`` gets seconds per metric group."""
    labels = crop_to_field(check_labels(labels))
    units = Units.of(pixel_size_nm)
    out: dict[str, Any] = {"pixel_size_nm": pixel_size_nm or np.nan, "length_unit": units.name,
                           "height_px": labels.shape[0], "width_px": labels.shape[1]}
    maps: dict[str, np.ndarray] = {"labels": labels}
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("fractions", lambda: fractions.fraction_metrics(labels, options.block_size_px)),
        ("tpb", lambda: tpb.tpb_metrics(labels, units, options.axes, options.connectivity)),
        ("connectivity", lambda: connectivity.connectivity_metrics(
            labels, options.axes, options.connectivity)),
        ("interfaces", lambda: interfaces.interface_metrics(labels, units)),
        ("sizes", lambda: sizes.size_metrics(labels, units, options.connectivity)),
    ]
    if options.tortuosity:
        steps.append(("tortuosity", lambda: _tortuosity_metrics(labels, options.axes)))
    for name, step in steps:
        start = time.perf_counter()
        result = step()
        if isinstance(result, tuple):
            result, more = result
            maps.update(more)
        out.update(result)
        if timings is not None:
            timings[name] = time.perf_counter() - start
    return out, maps


def analyze_image(
    labels: np.ndarray, pixel_size_nm: float | None, options: AnalysisOptions
) -> dict[str, Any]:
    """Every metric of one label map (ids 0..3, 255 = not sample) as a flat dict."""
    return analyze_with_maps(labels, pixel_size_nm, options)[0]


def analyze_label_map(labels: np.ndarray, pixel_size_nm: float | None, config: Any) -> dict:
    """For the segment job: the metrics of one label map, options from ``config``."""
    return analyze_image(labels, pixel_size_nm, AnalysisOptions.from_config(config))
