"""One archive image as the model sees it: read, data bar cut off, normalised as in training."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ml_collections import ConfigDict

from data_prep.readers.data_bar import crop_data_bar
from data_prep.readers.images import read_grey
from data_prep.readers.sem_metadata import read_pixel_size_nm
from socseg_jax.core.errors import UserError
from socseg_jax.core.intensity import normalize_sem
from socseg_jax.inference.archive import ImageJob

PREPROCESSING = ("percentile", "keras_l2_rows")


@dataclass(frozen=True)
class ImageInfo:
    """What the outputs of an image need besides its maps (small: the full image can go)."""

    preview: np.ndarray  # normalised grey, subsampled by preview_step (for the overlay)
    pixel_size_nm: float  # nan when unknown
    data_bar_rows: int


def preprocess(image: np.ndarray, method: str) -> np.ndarray:
    """Intensity normalisation as the model was trained: 'percentile' (``normalize_sem``, as
    prepare) or 'keras_l2_rows' (the study's ``keras.utils.normalize(image, axis=1)``)."""
    if method == "percentile":
        return normalize_sem(image)
    if method == "keras_l2_rows":
        from socseg_jax.models.keras_import import keras_normalize

        return keras_normalize(image, axis=1)
    raise UserError(f"preprocess must be one of {PREPROCESSING}, got {method!r}")


def load_image(job: ImageJob, options: ConfigDict) -> tuple[np.ndarray, ImageInfo]:
    """(model input, info) of ``job.path``: read, data bar cut (``options.data_bar``: auto,
    none or rows), preprocessed as the model was trained (``options.preprocess``).

    Images larger than ``options.max_image_bytes`` decoded are refused unread. The preview is
    the grey image subsampled by :func:`preview_step`, so that the full-size
    original need not be kept while the image is predicted.
    """
    grey = read_grey(job.path, options.max_image_bytes)
    grey, bar = crop_data_bar(grey, options.data_bar)
    pixel_size = read_pixel_size_nm(job.path) or options.pixel_size_nm or math.nan
    step = preview_step(grey.shape, options.overlay_max_size)
    preview = normalize_sem(grey[::step, ::step])
    return preprocess(grey, options.preprocess), ImageInfo(preview, float(pixel_size), bar)


def preview_step(shape: tuple[int, ...], max_size: int) -> int:
    """Subsampling step that brings the longer side of an overlay to at most ``max_size``."""
    return max(1, math.ceil(max(shape[:2]) / max_size))
