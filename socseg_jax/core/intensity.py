"""Intensity scaling, one function per step, used identically by prepare, training, evaluation
and segmentation: raw SEM values -> [0, 1] (normalize_sem) and stored records -> model input.

The settings of the SEM normalisation travel with the data: prepare writes them into its
report, training copies them next to its checkpoints (``NORMALISATION_FILE``), and segment
applies what the checkpoint says (``preprocess="auto"``), so a model never sees images
scaled unlike its training images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from socseg_jax.core.errors import UserError

NORMALISATION_FILE = "normalisation.json"
PERCENTILES = (0.5, 99.5)
# CLAHE clip limit: skimage's 0.01 left 70 % of a 5x shading at 32-px tiles, 0.03 28 % (test)
CLAHE_CLIP_LIMIT = 0.03


def normalisation_settings(local_contrast_px: int = 0) -> dict[str, Any]:
    """The record of :func:`normalize_sem`'s settings (prepare report, checkpoints)."""
    return {"method": "percentile", "percentiles": list(PERCENTILES),
            "local_contrast_px": int(local_contrast_px), "clip_limit": CLAHE_CLIP_LIMIT}


def apply_normalisation(image: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """``normalize_sem`` with recorded settings (a record's own percentiles and clip limit are
    honoured, so models trained by another version keep their scaling); UserError for a
    method it does not know."""
    if settings.get("method") != "percentile":
        raise UserError(f"unknown SEM normalisation {settings.get('method')!r} (percentile)")
    return normalize_sem(image, int(settings.get("local_contrast_px", 0)),
                         float(settings.get("clip_limit", CLAHE_CLIP_LIMIT)),
                         tuple(settings.get("percentiles", PERCENTILES)))


def normalize_sem(
    image: np.ndarray,
    local_contrast_px: int = 0,
    clip_limit: float = CLAHE_CLIP_LIMIT,
    percentiles: tuple[float, float] = PERCENTILES,
) -> np.ndarray:
    """Robust 0.5-99.5 % (``percentiles``) stretch to float32 [0, 1]; with
    ``local_contrast_px`` > 0, then adaptive histogram equalisation (CLAHE, skimage, with
    ``clip_limit``) over tiles of that size.

    Used identically at data preparation and at segmentation time, so that the network sees
    the same intensity distribution whatever the detector gain/offset was; the local contrast
    option also evens out slow brightness gradients and detector shading. Above 4 Mpx the
    percentiles come from an even subsample and the stretch runs in one output buffer, so a
    16k × 16k image costs one extra float32 copy, not several.
    """
    img = np.asarray(image, dtype=np.float32)
    step = -(-img.size // PERCENTILE_SAMPLE)
    sample = img.reshape(-1)[::step]
    lo, hi = (float(v) for v in np.percentile(sample, percentiles))
    if not hi > lo:
        lo, hi = float(img.min()), float(img.max())
    if not hi > lo:
        return np.zeros_like(img, dtype=np.float32)
    out = np.subtract(img, lo, dtype=np.float32)
    out *= np.float32(1.0 / (hi - lo))
    np.clip(out, 0.0, 1.0, out=out)
    if local_contrast_px > 0:
        from skimage.exposure import equalize_adapthist

        out = equalize_adapthist(out, kernel_size=int(local_contrast_px),
                                 clip_limit=clip_limit).astype(np.float32, copy=False)
    return out


PERCENTILE_SAMPLE = 1 << 22  # pixels used for the stretch percentiles of large images


def to_model_input(images: Any) -> Any:
    """Stored records -> network input: uint8 / uint16 scaled by the dtype maximum to float32
    in [0, 1]; float input is passed through as float32. Works on NumPy and JAX arrays (also
    traced), so training, evaluation and prediction scale the same way."""
    dtype = np.dtype(images.dtype)
    if np.issubdtype(dtype, np.integer):
        return images.astype(np.float32) / float(np.iinfo(dtype).max)
    return images.astype(np.float32)
