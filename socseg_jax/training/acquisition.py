"""Training-time augmentation for acquisition changes: what another microscope, session or
detector does to the same microstructure.

Applied per record on the host inside the Grain pipeline (``grain.MapDataset.random_map``), so
it is seeded by the record's position and a resumed run sees the same batches. On top of the
D4 transforms, on a share ``apply_prob`` of the records (the others pass unchanged, as
acquired), in this order (each off when its setting is 0, see ``config.acquisition``):

- ``scale``: zoom by a factor in [1/(1+s), 1+s] about the patch centre (the study used
  shift-scale-rotate); the label is resampled with nearest neighbour, so it stays aligned;
- ``blur_sigma``: Gaussian probe blur, sigma uniform in [0, blur_sigma] px, with probability
  ``blur_prob``;
- ``gamma``: intensity ** g with log g uniform in [-log gamma, log gamma];
- ``contrast`` / ``brightness``: (x - 0.5) * (1 + c) + 0.5 + b, c and b uniform in ±setting;
- ``gradient``: a linear brightness ramp in a random direction (slow illumination changes),
  of amplitude uniform in ±gradient across a patch of ``RAMP_REFERENCE_PX`` or more and
  proportionally less across a smaller one: its slope never exceeds that of the 128-px
  patches it was chosen for (on 64-px patches the full ramp taught the network to find Ni by
  its NiO shell; benchmarks/RESULTS.md, "Oxidation series: longer training, the
  brightness-ramp augmentation and a 0-min test");
- ``noise_sigma``: Gaussian noise of standard deviation uniform in [0, noise_sigma].

Intensities are handled in [0, 1] and written back in the record's dtype (uint8 or uint16).
"""

from __future__ import annotations

import math
from typing import Any

import grain
import numpy as np
from ml_collections import ConfigDict
from scipy import ndimage as ndi

from socseg_jax.core.errors import UserError

RAMP_REFERENCE_PX = 128  # the patch side over which the ramp reaches ±gradient (see above)


SETTINGS = ("scale", "blur_sigma", "blur_prob", "gamma", "contrast", "brightness", "gradient",
            "noise_sigma")


class AcquisitionAugment(grain.transforms.RandomMap):
    """The augmentation of one record ``{"image": (P, P, C), "label": (P, P)}``."""

    def __init__(self, settings: ConfigDict):
        unknown = set(settings) - {"enabled", "apply_prob", *SETTINGS}
        if unknown:
            raise UserError(f"acquisition: unknown setting(s) {sorted(unknown)}")
        if any(settings[k] < 0 for k in SETTINGS) or settings.gamma and settings.gamma < 1:
            raise UserError("acquisition settings must be >= 0 (gamma >= 1, or 0 for off)")
        self.apply_prob = float(settings.get("apply_prob", 1.0))
        if not 0 < self.apply_prob <= 1 or settings.blur_prob > 1:
            raise UserError("acquisition apply_prob must be in (0, 1], blur_prob <= 1")
        self.settings = settings

    def random_map(self, element: dict[str, np.ndarray], rng: np.random.Generator) -> Any:
        s = self.settings
        image, label = element["image"], element["label"]
        if self.apply_prob < 1 and rng.random() >= self.apply_prob:  # at 1: no draw
            return element
        top = float(np.iinfo(image.dtype).max) if image.dtype.kind in "ui" else 1.0
        x = image.astype(np.float32) / top
        if s.scale:
            x, label = _zoom(x, label, math.exp(rng.uniform(-1, 1) * math.log1p(s.scale)))
        if s.blur_sigma and rng.random() < s.blur_prob:
            sigma = rng.uniform(0.0, s.blur_sigma)
            x = ndi.gaussian_filter(x, (sigma, sigma, 0))
        if s.gamma:
            x = np.power(np.clip(x, 0.0, 1.0), math.exp(rng.uniform(-1, 1) * math.log(s.gamma)))
        if s.contrast or s.brightness:
            contrast = 1.0 + rng.uniform(-1, 1) * s.contrast
            x = (x - 0.5) * contrast + 0.5 + rng.uniform(-1, 1) * s.brightness
        if s.gradient:
            most = s.gradient * min(1.0, max(x.shape[:2]) / RAMP_REFERENCE_PX)
            x = x + _ramp(x.shape[:2], rng.uniform(-1, 1) * most, rng.uniform(0, 2 * np.pi))
        if s.noise_sigma:
            x = x + rng.normal(0.0, rng.uniform(0.0, s.noise_sigma), x.shape).astype(np.float32)
        out = np.clip(np.rint(np.clip(x, 0.0, 1.0) * top), 0, top).astype(image.dtype)
        return {**element, "image": out, "label": np.ascontiguousarray(label)}


def _zoom(image: np.ndarray, label: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Image (linear) and label (nearest) zoomed by ``factor`` about the centre, same size."""
    size = np.asarray(label.shape, np.float64)
    centre = (size - 1) / 2
    matrix = np.eye(2) / factor
    offset = centre - matrix @ centre
    zoomed = np.stack(
        [ndi.affine_transform(image[..., c], matrix, offset, order=1, mode="reflect")
         for c in range(image.shape[-1])], axis=-1,
    )
    return zoomed, ndi.affine_transform(label, matrix, offset, order=0, mode="reflect")


def _ramp(shape: tuple[int, int], amplitude: float, angle: float) -> np.ndarray:
    """(H, W, 1) linear ramp along ``angle``, reaching ±amplitude at the patch corners."""
    yy, xx = np.meshgrid(np.linspace(-0.5, 0.5, shape[0]), np.linspace(-0.5, 0.5, shape[1]),
                         indexing="ij")
    ramp = amplitude * (np.cos(angle) * xx + np.sin(angle) * yy) / math.sqrt(0.5)
    return ramp.astype(np.float32)[..., None]
