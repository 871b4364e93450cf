"""Simulator knobs (``SimulationParams``), the simulated sample (``SyntheticSample``) and constants.

Why a frozen dataclass: one value records every physical choice of a sample, so it can be
written to ``simulation.json``, drawn at random (``randomised.random_params``) and compared.
The defaults are the project's original tuned point (preset ``"default"``); every knob added
for the randomised test bed defaults to "off", so the default output stays bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

ELEMENTS = ("Ni", "O", "Zr", "Y")
EDS_FILE_NAMES = {"Ni": "Ni Ka1.tif", "O": "O Ka1.tif", "Zr": "Zr La1.tif", "Y": "Y La1.tif"}
OXIDE_LAWS = ("parabolic", "linear", "logarithmic")
DATA_BARS = ("none", "overlay", "appended")
# Growth laws are scaled to give the same shell at OXIDE_T_REF minutes (see oxide_thickness_px).
OXIDE_T_REF = 30.0
OXIDE_LOG_TAU = 2.0  # minutes: time constant of the logarithmic law

# Relative X-ray count rates per phase (rows pore, NiO, Ni, YSZ; columns Ni, O, Zr, Y).
# O in NiO ~ 0.75 x O in YSZ, following the O atom fractions (0.50 vs ~0.66).
EDS_RATES = np.array(
    [
        [0.00, 0.04, 0.00, 0.00],
        [0.78, 0.45, 0.00, 0.00],
        [1.00, 0.01, 0.00, 0.00],
        [0.00, 0.60, 0.85, 0.13],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class SimulationParams:
    """All knobs of the simulator; defaults give a 512x512 micrograph at 40 nm/px."""

    shape: tuple[int, int] = (512, 512)
    feature_size: float = 5.0  # Gaussian sigma (px) of the random fields; particles ~3-5x
    volume_fractions: tuple[float, float, float] = (0.3, 0.3, 0.4)  # pore, Ni, YSZ (unoxidised)
    oxidation_min: float = 0.0
    oxide_rate_px: float = 1.4  # NiO shell thickness (px) per sqrt(minute) (parabolic law)
    oxide_roughness: float = 0.35  # relative local variation of the shell thickness
    oxide_outward: float = 0.45  # outward growth into pores, as a fraction of the inward shell
    # SEM contrast (fractions of full scale before per-image gain/offset)
    grey_levels: tuple[float, float, float, float] = (0.10, 0.40, 0.55, 0.70)
    grain_size_px: tuple[float, float, float] = (3.0, 14.0, 6.0)  # NiO, Ni, YSZ
    grain_contrast: tuple[float, float, float] = (0.04, 0.05, 0.04)  # NiO, Ni, YSZ (std)
    pore_texture: float = 0.12  # brightness of dim sub-surface features seen in pores
    edge_brightness: float = 0.12
    edge_width_px: float = 1.5
    probe_blur_px: float = 1.0
    sem_dose: float = 120.0  # electrons per pixel at full scale (shot noise)
    read_noise: float = 0.015
    gradient_max: float = 0.2  # max relative brightness change across the image
    brightness_jitter: float = 0.06
    contrast_jitter: float = 0.15
    # EDS
    eds_downsample: int = 2
    eds_blur_px: float = 1.5  # interaction-volume sigma in SEM px
    eds_dose: float = 30.0  # counts per EDS pixel for a pure-element rate of 1
    eds_background: float = 0.4  # bremsstrahlung counts per EDS pixel and element
    max_drift_px: float = 4.0
    max_rotation_deg: float = 0.0
    pixel_size_nm: float = 40.0
    # Added for the randomised test bed; these defaults reproduce the original simulator.
    oxide_law: str = "parabolic"  # parabolic, linear or logarithmic (OXIDE_LAWS)
    oxide_volume_cap: float = 0.0  # outward NiO <= this x oxidised Ni area (0 = no cap)
    eds_pore_subsurface: float = 0.0  # pore X-ray signal from material below, x local solid
    max_scale_change: float = 0.0  # EDS field scale drawn in 1 +- this (e.g. 0.02 = 2 %)
    data_bar: str = "none"  # none, overlay (Zeiss) or appended (FEI/Thermo) (DATA_BARS)
    data_bar_rows: int = 0
    bit_depth: int = 8  # 8 or 16 bit SEM output
    output_gain: float = 1.0  # digitised value = offset + gain * signal (fractions of full)
    output_offset: float = 0.0

    def __post_init__(self) -> None:
        if self.oxide_law not in OXIDE_LAWS:
            raise ValueError(f"oxide_law must be one of {OXIDE_LAWS}, not {self.oxide_law!r}")
        if self.data_bar not in DATA_BARS:
            raise ValueError(f"data_bar must be one of {DATA_BARS}, not {self.data_bar!r}")
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, not {self.bit_depth}")
        if self.data_bar != "none" and not 0 < self.data_bar_rows < self.shape[0] // 2:
            top = self.shape[0] // 2 - 1
            raise ValueError(f"data_bar_rows {self.data_bar_rows} must be in 1..{top}")


def oxide_thickness_px(p: SimulationParams) -> float:
    """Mean NiO shell thickness (px) after ``p.oxidation_min`` minutes under ``p.oxide_law``.

    parabolic: rate * sqrt(t) (diffusion-limited, the original model); linear: rate * t /
    sqrt(T_REF) (interface-limited); logarithmic: rate * sqrt(T_REF) * ln(1 + t/tau) /
    ln(1 + T_REF/tau) (fast then saturating, thin-film). All three agree at T_REF = 30 min,
    so ``oxide_rate_px`` keeps one meaning across laws.
    """
    t = p.oxidation_min
    if p.oxide_law == "parabolic":
        return p.oxide_rate_px * math.sqrt(t)
    if p.oxide_law == "linear":
        return p.oxide_rate_px * t / math.sqrt(OXIDE_T_REF)
    ref = math.sqrt(OXIDE_T_REF) / math.log1p(OXIDE_T_REF / OXIDE_LOG_TAU)
    return p.oxide_rate_px * ref * math.log1p(t / OXIDE_LOG_TAU)


def eds_grid(p: SimulationParams) -> tuple[tuple[int, int], tuple[float, float]]:
    """EDS map shape and pitch (SEM px per EDS px, y and x) over the scanned field.

    The maps cover the whole scanned field; when ``eds_downsample`` does not divide the
    field the pitch is the field over the pixel count (non-integer, as on real instruments).
    """
    h, w = p.shape
    ds = p.eds_downsample
    he, we = h // ds, w // ds
    py = ds if h % ds == 0 else h / he
    px = ds if w % ds == 0 else w / we
    return (he, we), (py, px)


@dataclass
class SyntheticSample:
    """One simulated sample: SEM image, EDS count maps, true phases and acquisition facts.

    ``sem`` is the image as the instrument writes it (uint8 or uint16), including a data bar:
    ``overlay`` replaces its bottom ``data_bar_rows`` rows, ``appended`` adds them below
    (the SEM is then taller than the scanned field). ``phases`` is the truth of the whole
    scanned field (``params.shape``, also under an overlay bar), which the EDS maps cover.
    ``drift_yx``, ``rotation_deg`` and ``scale`` are the true EDS displacement.
    """

    sem: np.ndarray  # uint8/uint16 (H, W), (H + bar, W) with an appended bar
    eds: dict[str, np.ndarray]  # float32 counts (H/ds, W/ds) keyed Ni, O, Zr, Y
    phases: np.ndarray  # uint8 (H, W) class ids of the scanned field
    drift_yx: tuple[float, float]
    rotation_deg: float
    eds_downsample: int
    pixel_size_nm: float
    oxidation_min: float
    params: SimulationParams = field(repr=False, default_factory=SimulationParams)
    scale: float = 1.0
    data_bar: str = "none"
    data_bar_rows: int = 0

    def true_matrix(self) -> np.ndarray:
        """2x3 matrix mapping a scanned-field pixel (y, x) to the position of its content in
        the EDS maps' frame (SEM px, EDS pixel i centred at (i + 0.5) * pitch - 0.5): the
        convention of ``align.RegistrationResult.matrix``. Inverse of the simulated
        displacement: content at EDS position q is the truth at c + scale * R (q - c) - drift.
        """
        h, w = self.phases.shape
        c = np.array([(h - 1) / 2, (w - 1) / 2])
        th = math.radians(self.rotation_deg)
        rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        a = rot.T / self.scale
        t = c + a @ (np.asarray(self.drift_yx) - c)
        return np.concatenate([a, t[:, None]], axis=1)

    def eds_pitch(self) -> tuple[float, float]:
        """SEM pixels per EDS pixel (y, x) over the scanned field."""
        (he, we) = next(iter(self.eds.values())).shape
        h, w = self.phases.shape
        return h / he, w / we
