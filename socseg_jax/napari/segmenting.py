"""Segmenting one image held in the viewer exactly as job=segment segments a file: the data bar
cut (``crop_data_bar``), the models' SEM normalisation (``resolve_normalisation`` /
``preprocess``), the predictor of ``config.predict`` (TTA, ensemble) and the shift check with
the grey-level calibration (``archive_loop.predict_checked``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ml_collections import ConfigDict

from data_prep.readers.data_bar import crop_data_bar
from data_prep.readers.images import to_grey
from socseg_jax.core.phases import label_fractions
from socseg_jax.inference import outputs
from socseg_jax.inference.archive_loop import predict_checked
from socseg_jax.inference.image_input import preprocess
from socseg_jax.inference.loading import load_for_segment


@dataclass(frozen=True)
class Segmentation:
    """One image's label and entropy maps (the data bar's rows cut off), phase fractions (%),
    the shift check's columns (score, warning, grey-level gamma; {} without a reference)."""

    labels: np.ndarray
    entropy: np.ndarray
    fractions: list[float]
    shift: dict[str, Any]
    data_bar_rows: int


def segment_config(checkpoint: str, **overrides: Any) -> ConfigDict:
    """job=segment's config (configs/segment.py) for ``checkpoint`` (comma-separated for an
    ensemble), with ``overrides`` of its top-level keys or ``predict`` (a dict)."""
    from socseg_jax.configs.segment import get_config

    config = get_config()
    config.checkpoint = checkpoint
    predict = overrides.pop("predict", {})
    config.update(overrides)
    config.predict.update(predict)
    outputs.check_options(config)
    return config


@dataclass(frozen=True)
class Segmenter:
    """What job=segment sets up once for a run: the predictor of ``config.predict`` over the
    models of ``config.checkpoint``, their SEM normalisation and shift reference."""

    config: ConfigDict
    predictor: Any
    normalisation: dict[str, Any]
    reference: dict[str, Any] | None

    @classmethod
    def load(cls, config: ConfigDict) -> Segmenter:
        """Loads the models (UserError naming a bad checkpoint)."""
        return cls(config, *load_for_segment(config))

    def segment(self, image: np.ndarray) -> Segmentation:
        """Segments ``image`` (grey or RGB, any scale) as job=segment does a file with that
        content."""
        grey = to_grey(np.asarray(image), "the image layer").astype(np.float32)
        grey, bar = crop_data_bar(grey, self.config.data_bar)
        maps, shift = predict_checked(self.predictor, preprocess(grey, self.normalisation),
                                      self.config, self.reference)
        labels = np.asarray(maps["labels"], np.uint8)
        return Segmentation(labels, np.asarray(maps["entropy"], np.float32),
                            label_fractions(labels), shift, bar)
