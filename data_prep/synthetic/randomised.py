"""Randomised physics: a test bed that is not one tuned point (issue #12 item 4).

``random_params(seed)`` draws every knob of ``SimulationParams`` from wide ranges, so a
labeller is measured over instruments, samples and acquisitions it was not tuned on.
``PRESETS`` names the choices: ``default`` (the original fixed point, bit-identical output)
and ``randomised`` (``DEFAULT_RANGES``). Ranges of ``DEFAULT_RANGES``:

=========================  =====================================  ==========================
knob                       range (draw)                           default preset
=========================  =====================================  ==========================
feature_size (particles)   2.5-10 px, log-uniform (x0.5-2)        5
pore fraction              0.20-0.40                              0.30
Ni share of the solids     0.35-0.60                              0.43
oxide_law                  parabolic / linear / logarithmic       parabolic
oxide_rate_px (shell)      0.6-2.5 px per sqrt(min) at 30 min     1.4
oxide_roughness            0-0.8                                  0.35
oxide_outward              0.2-0.7                                0.45
oxide_volume_cap (fixed)   0.65 x oxidised Ni area grows outward  no cap
oxidation_min              0, 2, 5, 10, 20, 30, 120 (or given)    given
grey order NiO/Ni/YSZ      any of the 6 orders, equally likely    NiO < Ni < YSZ
pore level (darkest)       0.02-0.25                              0.10
pore -> darkest solid gap  0.08-0.35                              0.30
step between solids        0.03-0.20 each (narrow to wide)        0.15
grain contrast             x0.5-2                                 0.04-0.05
grain sizes                x0.6-1.6                               3, 14, 6 px
pore_texture (sub-surf.)   0-0.25                                 0.12
edge_brightness / width    0-0.25 / 0.8-3 px                      0.12 / 1.5
probe_blur_px              0.5-2.5                                1.0
sem_dose (shot noise)      30-1000 e/px, log-uniform              120
read_noise                 0-0.04                                 0.015
gradient_max               0-0.4                                  0.2
bit_depth                  8 or 16                                8
output gain / offset       0.35-1 / 0-min(0.3, 1-gain)            1 / 0
eds_downsample             2-8 (integers)                         2
eds_blur_px (interaction)  1-4 SEM px                             1.5
eds_dose                   8-120 counts, log-uniform              30
eds_background             0.1-3 counts, log-uniform              0.4
eds_pore_subsurface        0-0.4 x local solid signal             0
drift per axis             uniform +-10 px                        +-2.8 px
rotation                   uniform +-2 deg                        0
scale (EDS field)          uniform 1 +- 2 %                       1
data_bar                   none / overlay / appended              none
data bar rows              5-12 % of the height                   0
=========================  =====================================  ==========================

Grey levels: pore level, then the solids in the drawn order at pore + gap + cumulative
steps, scaled down together when the brightest would pass 0.85 (room for rims and noise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import permutations
from typing import Any

import numpy as np

from data_prep.synthetic.params import (
    DATA_BARS,
    OXIDE_LAWS,
    SimulationParams,
    SyntheticSample,
)
from data_prep.synthetic.render import simulate_sample
from socseg_jax.core.phases import NI, NIO, YSZ

DEFAULT_OXIDATION_TIMES = (0.0, 2.0, 5.0, 10.0, 20.0, 30.0, 120.0)
GREY_ORDERS = tuple(permutations((NIO, NI, YSZ)))  # darkest solid first
MAX_SOLID_LEVEL = 0.85
# Outward NiO at most this x the oxidised Ni area: NiO takes ~1.65x the volume of its Ni
# (Pilling-Bedworth ratio), so the excess 0.65 can fill pores, no more.
OXIDE_VOLUME_CAP = 0.65
# Specs: ("uniform" | "loguniform", lo, hi), ("int", lo, hi) inclusive, ("choice", options),
# ("bound", b): the simulator draws the value uniformly in +-b for each sample.
DEFAULT_RANGES: dict[str, tuple] = {
    "feature_size": ("loguniform", 2.5, 10.0),
    "pore_fraction": ("uniform", 0.20, 0.40),
    "ni_share_of_solids": ("uniform", 0.35, 0.60),
    "oxide_law": ("choice", OXIDE_LAWS),
    "oxide_rate_px": ("loguniform", 0.6, 2.5),
    "oxide_roughness": ("uniform", 0.0, 0.8),
    "oxide_outward": ("uniform", 0.2, 0.7),
    "oxidation_min": ("choice", DEFAULT_OXIDATION_TIMES),
    "grey_order": ("choice", GREY_ORDERS),
    "pore_level": ("uniform", 0.02, 0.25),
    "pore_gap": ("uniform", 0.08, 0.35),
    "solid_step": ("uniform", 0.03, 0.20),
    "grain_contrast_factor": ("loguniform", 0.5, 2.0),
    "grain_size_factor": ("loguniform", 0.6, 1.6),
    "pore_texture": ("uniform", 0.0, 0.25),
    "edge_brightness": ("uniform", 0.0, 0.25),
    "edge_width_px": ("uniform", 0.8, 3.0),
    "probe_blur_px": ("uniform", 0.5, 2.5),
    "sem_dose": ("loguniform", 30.0, 1000.0),
    "read_noise": ("uniform", 0.0, 0.04),
    "gradient_max": ("uniform", 0.0, 0.4),
    "bit_depth": ("choice", (8, 16)),
    "output_gain": ("uniform", 0.35, 1.0),
    "output_offset": ("uniform", 0.0, 0.3),  # capped at 1 - gain
    "eds_downsample": ("int", 2, 8),
    "eds_blur_px": ("uniform", 1.0, 4.0),
    "eds_dose": ("loguniform", 8.0, 120.0),
    "eds_background": ("loguniform", 0.1, 3.0),
    "eds_pore_subsurface": ("uniform", 0.0, 0.4),
    "drift_px": ("bound", 10.0),
    "rotation_deg": ("bound", 2.0),
    "scale_change": ("bound", 0.02),
    "data_bar": ("choice", DATA_BARS),
    "data_bar_fraction": ("uniform", 0.05, 0.12),
}
_DEFAULT = SimulationParams()


def _draw(rng: np.random.Generator, spec: tuple) -> Any:
    """One value from a range spec (see DEFAULT_RANGES)."""
    kind = spec[0]
    if kind == "uniform":
        return float(rng.uniform(spec[1], spec[2]))
    if kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(spec[1]), math.log(spec[2]))))
    if kind == "int":
        return int(rng.integers(spec[1], spec[2] + 1))
    if kind == "choice":
        return spec[1][int(rng.integers(len(spec[1])))]
    if kind == "bound":
        return float(spec[1])
    raise ValueError(f"unknown range kind {kind!r} in {spec}")


def grey_levels_from(
    order: tuple[int, int, int], pore: float, gap: float, steps: tuple[float, float]
) -> tuple[float, float, float, float]:
    """Grey levels (pore, NiO, Ni, YSZ) with the solids at pore + gap + cumulative steps in
    ``order`` (darkest first), scaled down together to keep the brightest <= MAX_SOLID_LEVEL."""
    rises = np.cumsum([gap, *steps])
    room = MAX_SOLID_LEVEL - pore
    if rises[-1] > room:
        rises = rises * room / rises[-1]
    levels = [pore, 0.0, 0.0, 0.0]
    for cls, rise in zip(order, rises, strict=True):
        levels[cls] = round(float(pore + rise), 6)
    return tuple(levels)


def random_params(
    rng_or_seed: np.random.Generator | int,
    ranges: Mapping[str, tuple] = DEFAULT_RANGES,
    shape: tuple[int, int] = (512, 512),
    oxidation_min: float | None = None,
    **overrides: Any,
) -> SimulationParams:
    """Simulator parameters drawn from ``ranges`` (reproducible from the seed/Generator).

    Draws happen in the fixed order of DEFAULT_RANGES' keys (a key missing from ``ranges``
    takes its default range), so one seed always gives one physics. ``oxidation_min`` given
    replaces the drawn time; ``overrides`` replace any SimulationParams field afterwards.
    """
    rng = np.random.default_rng(rng_or_seed)
    unknown = set(ranges) - set(DEFAULT_RANGES)
    if unknown:
        raise ValueError(f"unknown range name(s) {sorted(unknown)}")
    d = {k: _draw(rng, ranges.get(k, spec)) for k, spec in DEFAULT_RANGES.items()}
    d["solid_step_2"] = _draw(rng, ranges.get("solid_step", DEFAULT_RANGES["solid_step"]))
    pore_f, ni_share = d["pore_fraction"], d["ni_share_of_solids"]
    gain = d["output_gain"]
    rows = max(4, round(d["data_bar_fraction"] * shape[0]))
    p = SimulationParams(
        shape=tuple(int(s) for s in shape),
        feature_size=d["feature_size"],
        volume_fractions=(pore_f, (1 - pore_f) * ni_share, (1 - pore_f) * (1 - ni_share)),
        oxidation_min=float(d["oxidation_min"] if oxidation_min is None else oxidation_min),
        oxide_rate_px=d["oxide_rate_px"],
        oxide_roughness=d["oxide_roughness"],
        oxide_outward=d["oxide_outward"],
        grey_levels=grey_levels_from(
            d["grey_order"], d["pore_level"], d["pore_gap"], (d["solid_step"], d["solid_step_2"])
        ),
        grain_size_px=tuple(s * d["grain_size_factor"] for s in _DEFAULT.grain_size_px),
        grain_contrast=tuple(c * d["grain_contrast_factor"] for c in _DEFAULT.grain_contrast),
        pore_texture=d["pore_texture"],
        edge_brightness=d["edge_brightness"],
        edge_width_px=d["edge_width_px"],
        probe_blur_px=d["probe_blur_px"],
        sem_dose=d["sem_dose"],
        read_noise=d["read_noise"],
        gradient_max=d["gradient_max"],
        eds_downsample=d["eds_downsample"],
        eds_blur_px=d["eds_blur_px"],
        eds_dose=d["eds_dose"],
        eds_background=d["eds_background"],
        max_drift_px=d["drift_px"] * math.sqrt(2),  # simulate_sample: +-max/sqrt(2) per axis
        max_rotation_deg=d["rotation_deg"],
        oxide_law=d["oxide_law"],
        oxide_volume_cap=OXIDE_VOLUME_CAP,
        eds_pore_subsurface=d["eds_pore_subsurface"],
        max_scale_change=d["scale_change"],
        data_bar=d["data_bar"],
        data_bar_rows=rows if d["data_bar"] != "none" else 0,
        bit_depth=d["bit_depth"],
        output_gain=gain,
        output_offset=min(d["output_offset"], 1.0 - gain),
    )
    return replace(p, **overrides) if overrides else p


@dataclass(frozen=True)
class Preset:
    """A named way to get parameters: fixed ``overrides`` of the defaults, or ``ranges``."""

    overrides: Mapping[str, Any] = field(default_factory=dict)
    ranges: Mapping[str, tuple] | None = None

    def params(
        self,
        seed: int,
        shape: tuple[int, int],
        oxidation_min: float | None = None,
        **overrides: Any,
    ) -> SimulationParams:
        """The parameters of one sample (``seed`` only matters for a randomised preset)."""
        merged = {**self.overrides, **overrides}
        if self.ranges is not None:
            return random_params(param_seed(seed), self.ranges, shape, oxidation_min, **merged)
        t = {} if oxidation_min is None else {"oxidation_min": float(oxidation_min)}
        return SimulationParams(shape=tuple(shape), **t, **merged)


PRESETS: dict[str, Preset] = {
    "default": Preset(),
    "randomised": Preset(ranges=DEFAULT_RANGES),
}


def derive_seed(seed: int, index: int) -> int:
    """An independent 32-bit seed for item ``index`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def param_seed(seed: int) -> int:
    """Seed of the parameter draw of a sample simulated with ``seed`` (its own stream, so the
    physics and the noise of one sample are independent draws)."""
    return derive_seed(seed, 0x5EED)


def randomised_sample(
    seed: int,
    shape: tuple[int, int] = (512, 512),
    oxidation_min: float | None = None,
    ranges: Mapping[str, tuple] = DEFAULT_RANGES,
) -> SyntheticSample:
    """One sample with its own randomised physics: parameters from ``param_seed(seed)``,
    simulation from ``seed``."""
    return simulate_sample(random_params(param_seed(seed), ranges, shape, oxidation_min), seed)
