"""Models for inference: trained checkpoints or the study's Keras weights, one or an ensemble.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ml_collections import ConfigDict

from socseg_jax.core.errors import UserError
from socseg_jax.inference.image_input import resolve_normalisation
from socseg_jax.inference.model_apply import make_ensemble_apply_fn, make_model_apply_fn
from socseg_jax.inference.predictor import SlidingWindowPredictor
from socseg_jax.inference.shift import read_reference
from socseg_jax.inference.windows import ApplyFn, KeyedApply
from socseg_jax.training import checkpoints

log = logging.getLogger(__name__)


def load_models(checkpoint: str) -> list[Any]:
    """Models from comma-separated checkpoints: train workdirs / Orbax steps or Keras .h5."""
    models = []
    for item in (part.strip() for part in str(checkpoint).split(",")):
        if not item:
            continue
        if Path(item).suffix.lower() in (".h5", ".hdf5"):
            from socseg_jax.models.keras_import import load_keras_model

            model = load_keras_model(item)
            log.info("Keras model from %s", item)
        else:
            model, _, step = checkpoints.load_model(item)
            log.info("model from %s (step %d)", item, step)
        models.append(model)
    if not models:
        raise UserError(f"config.checkpoint names no checkpoint: {checkpoint!r}")
    return models


def predictor_from_config(
    apply_fn: ApplyFn | KeyedApply, predict: ConfigDict, class_bias: np.ndarray | None = None
) -> SlidingWindowPredictor:
    """The sliding-window predictor a job's ``config.predict`` section describes, with the
    class calibration's offsets ``class_bias`` (``inference.class_bias``; None: none)."""
    return SlidingWindowPredictor(
        apply_fn,
        patch_size=predict.patch_size,
        stride=predict.stride,
        batch_size=predict.batch_size,
        blending=predict.blending,
        pad_mode=predict.pad_mode,
        tta=predict.tta,
        max_band_pixels=predict.max_band_pixels,
        seed=predict.seed,
        class_bias=class_bias,
    )


def build_predictor(
    models: Sequence[Any], predict: ConfigDict, reference: dict[str, Any] | None = None
) -> SlidingWindowPredictor:
    """Predictor for one model or an ensemble (with ``predict.mc_samples`` MC-dropout passes),
    calibrated by the class offsets of the model's shift ``reference`` when it has them (one
    model only: each member of an ensemble has its own)."""
    if len(models) == 1 and not predict.mc_samples:
        apply_fn = make_model_apply_fn(models[0])
    else:
        apply_fn = make_ensemble_apply_fn(models, predict.mc_samples)
    bias = reference_class_bias(reference) if len(models) == 1 else None
    if reference and reference.get("class_bias") is not None and len(models) > 1:
        log.info("class calibration not applied: an ensemble of %d models", len(models))
    return predictor_from_config(apply_fn, predict, bias)


def reference_class_bias(reference: dict[str, Any] | None) -> np.ndarray | None:
    """The class calibration's offsets stored in a shift reference (None without)."""
    found = (reference or {}).get("class_bias")
    return None if found is None else np.asarray(found, np.float64)


def load_for_segment(
    config: ConfigDict,
) -> tuple[SlidingWindowPredictor, dict[str, Any], dict[str, Any] | None]:
    """What job=segment (and the napari segment widget) sets up once: the predictor of
    ``config.predict`` over the models of ``config.checkpoint`` (class-calibrated when
    ``config.calibrate_classes``), their SEM normalisation and the shift reference of the
    first checkpoint (None without one)."""
    reference = read_reference(config.checkpoint.split(",")[0].strip())
    if config.calibrate_classes and reference is not None and "class_bias" not in reference:
        log.info("the checkpoint's shift reference has no class calibration (written before "
                 "it existed): predicting uncalibrated")
    predictor = build_predictor(load_models(config.checkpoint), config.predict,
                                reference if config.calibrate_classes else None)
    normalisation = resolve_normalisation(config.preprocess, config.checkpoint)
    return predictor, normalisation, reference
