"""One archive image as the model sees it: read, data bar cut off, normalised as in training."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from ml_collections import ConfigDict

from data_prep.readers.data_bar import crop_data_bar
from data_prep.readers.images import read_grey
from data_prep.readers.sem_metadata import read_pixel_size_nm
from socseg_jax.core.errors import UserError
from socseg_jax.core.intensity import (
    NORMALISATION_FILE,
    apply_normalisation,
    normalisation_settings,
    normalize_sem,
)
from socseg_jax.inference.archive import ImageJob
from socseg_jax.training.checkpoints import companion_file

# auto: what the checkpoint's normalisation.json says (percentile, possibly with local
# contrast), else percentile; keras_l2_rows: the study's Keras preprocessing.
PREPROCESSING = ("auto", "percentile", "keras_l2_rows")
KERAS_L2_ROWS = {"method": "keras_l2_rows"}


@dataclass(frozen=True)
class ImageInfo:
    """What the outputs of an image need besides its maps (small: the full image can go)."""

    preview: np.ndarray  # normalised grey, subsampled by preview_step (for the overlay)
    pixel_size_nm: float  # nan when unknown
    data_bar_rows: int


def resolve_normalisation(preprocess: str, checkpoint: str) -> dict[str, Any]:
    """The SEM normalisation settings segment applies: for ``auto`` the record every model of
    ``checkpoint`` (comma-separated) was trained with (models without one: plain percentile),
    UserError when the models disagree; else the named method with default settings."""
    if preprocess == "keras_l2_rows":
        return KERAS_L2_ROWS
    if preprocess == "percentile":
        return normalisation_settings()
    if preprocess != "auto":
        raise UserError(f"preprocess must be one of {PREPROCESSING}, got {preprocess!r}")
    records = []
    for item in (part.strip() for part in str(checkpoint).split(",") if part.strip()):
        found = companion_file(item, NORMALISATION_FILE)
        records.append(json.loads(found.read_text()) if found else normalisation_settings())
    if any(r != records[0] for r in records[1:]):
        raise UserError(f"the models of {checkpoint} were trained with different SEM "
                        f"normalisations ({records}): ensemble models of one dataset")
    return records[0] if records else normalisation_settings()


def preprocess(image: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """Intensity normalisation as the model was trained: recorded percentile settings
    (``apply_normalisation``, as prepare) or the study's ``keras.utils.normalize(image,
    axis=1)`` (``KERAS_L2_ROWS``)."""
    if settings == KERAS_L2_ROWS:
        from socseg_jax.models.keras_import import keras_normalize

        return keras_normalize(image, axis=1)
    return apply_normalisation(image, settings)


def load_image(
    job: ImageJob, options: ConfigDict, normalisation: dict[str, Any]
) -> tuple[np.ndarray, ImageInfo]:
    """(model input, info) of ``job.path``: read, data bar cut (``options.data_bar``: auto,
    none or rows), normalised as the model was trained (``resolve_normalisation``).

    Images larger than ``options.max_image_bytes`` decoded are refused unread. The preview is
    the grey image subsampled by :func:`preview_step`, so that the full-size
    original need not be kept while the image is predicted.
    """
    grey = read_grey(job.path, options.max_image_bytes)
    grey, bar = crop_data_bar(grey, options.data_bar)
    pixel_size = read_pixel_size_nm(job.path) or options.pixel_size_nm or math.nan
    step = preview_step(grey.shape, options.overlay_max_size)
    preview = normalize_sem(grey[::step, ::step])
    return preprocess(grey, normalisation), ImageInfo(preview, float(pixel_size), bar)


def preview_step(shape: tuple[int, ...], max_size: int) -> int:
    """Subsampling step that brings the longer side of an overlay to at most ``max_size``."""
    return max(1, math.ceil(max(shape[:2]) / max_size))
