"""One archive image as the model sees it: read, data bar cut off, normalised as in training."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ml_collections import ConfigDict

from data_prep.errors import ImageReadError
from data_prep.readers.data_bar import crop_data_bar, parse_data_bar
from data_prep.readers.images import image_format, read_grey
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

    The preview is the grey image subsampled by :func:`preview_step`, so that the full-size
    original need not be kept while the image is predicted.
    """
    kind = image_format(job.path)
    if kind is None and job.path.stat().st_size > 0:
        raise ImageReadError(f"{job.path}: not an image (content is not TIFF, PNG or JPEG)")
    try:
        grey = read_grey(job.path)
    except ImageReadError as err:
        if kind is None or "cannot read image" not in str(err):
            raise
        detail = str(err).split("cannot read image", 1)[1].strip()
        detail = detail[1:-1] if detail.startswith("(") and detail.endswith(")") else detail
        raise ImageReadError(f"{job.path}: corrupt or truncated {kind} ({detail})") from err
    grey, bar = crop_data_bar(grey, parse_data_bar(options.data_bar))
    pixel_size = read_pixel_size_nm(job.path) or options.pixel_size_nm or math.nan
    step = preview_step(grey.shape, options.overlay_max_size)
    preview = normalize_sem(grey[::step, ::step])
    return preprocess(grey, options.preprocess), ImageInfo(preview, float(pixel_size), bar)


def preview_step(shape: tuple[int, ...], max_size: int) -> int:
    """Subsampling step that brings the longer side of an overlay to at most ``max_size``."""
    return max(1, math.ceil(max(shape[:2]) / max_size))
