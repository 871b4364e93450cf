"""Intensity scaling, one function per step, used identically by prepare, training, evaluation
and segmentation: raw SEM values -> [0, 1] (normalize_sem) and stored records -> model input.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def normalize_sem(image: np.ndarray) -> np.ndarray:
    """Robust 0.5-99.5 % percentile stretch to float32 [0, 1].

    Used identically at data preparation and at segmentation time, so that the network sees
    the same intensity distribution whatever the detector gain/offset was. Above 4 Mpx the
    percentiles come from an even subsample and the stretch runs in one output buffer, so a
    16k × 16k image costs one extra float32 copy, not several.
    """
    img = np.asarray(image, dtype=np.float32)
    step = -(-img.size // PERCENTILE_SAMPLE)
    sample = img.reshape(-1)[::step]
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if not hi > lo:
        lo, hi = float(img.min()), float(img.max())
    if not hi > lo:
        return np.zeros_like(img, dtype=np.float32)
    out = np.subtract(img, lo, dtype=np.float32)
    out *= np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out)


PERCENTILE_SAMPLE = 1 << 22  # pixels used for the stretch percentiles of large images


def to_model_input(images: Any) -> Any:
    """Stored records -> network input: uint8 / uint16 scaled by the dtype maximum to float32
    in [0, 1]; float input is passed through as float32. Works on NumPy and JAX arrays (also
    traced), so training, evaluation and prediction scale the same way."""
    dtype = np.dtype(images.dtype)
    if np.issubdtype(dtype, np.integer):
        return images.astype(np.float32) / float(np.iinfo(dtype).max)
    return images.astype(np.float32)
