"""napari's writer for Labels layers: a uint8 class-id TIFF whose resolution tags carry the
layer's pixel size, so that prepare, segment and analyze read it back (``read_pixel_size_nm``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from socseg_jax.analysis.label_field import NOT_SAMPLE
from socseg_jax.core.atomic import write_tiff_atomic
from socseg_jax.core.errors import UserError
from socseg_jax.core.phases import NUM_CLASSES
from socseg_jax.napari import layer_data


def write_class_ids(path: str | Path, labels: np.ndarray, pixel_size_nm: float | None) -> Path:
    """``labels`` (ids 0..3, 255 = not sample) as a uint8 TIFF with resolution tags in pixels
    per cm when the pixel size is known (atomic write)."""
    labels = np.asarray(labels)
    bad = np.setdiff1d(np.unique(labels), [*range(NUM_CLASSES), NOT_SAMPLE])
    if labels.ndim != 2 or bad.size:
        raise UserError(f"{path}: a class-id map is 2-D with values 0..{NUM_CLASSES - 1} or "
                        f"{NOT_SAMPLE}; got shape {labels.shape}, values {bad[:8].tolist()}")
    tags: dict[str, Any] = {}
    if pixel_size_nm:
        per_cm = 1e7 / float(pixel_size_nm)
        tags = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
    path = Path(path)
    write_tiff_atomic(path, labels.astype(np.uint8), **tags)
    return path


def napari_write_labels(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """napari's single-layer writer contribution: the layer's scale (µm) is its pixel size."""
    pixel_size_nm = layer_data.pixel_size_nm_of(attributes.get("scale"))
    return [str(write_class_ids(path, data, pixel_size_nm))]
