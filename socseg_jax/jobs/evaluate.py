"""job=evaluate: scores a checkpoint on a prepared split or on full images with references."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from ml_collections import ConfigDict

from data_prep.readers.images import read_grey
from socseg_jax.core.atomic import write_json_atomic
from socseg_jax.core.errors import UserError
from socseg_jax.core.intensity import to_model_input
from socseg_jax.core.scores import confusion_matrix, format_scores, segmentation_scores
from socseg_jax.evaluation.references import find_truth, read_label_map, score_pairs
from socseg_jax.inference.archive import discover_images
from socseg_jax.inference.class_bias import class_weights
from socseg_jax.inference.image_input import preprocess, resolve_normalisation
from socseg_jax.inference.loading import predictor_from_config, reference_class_bias
from socseg_jax.inference.model_apply import make_model_apply_fn
from socseg_jax.inference.shift import read_reference
from socseg_jax.jobs.job_checks import require
from socseg_jax.training import checkpoints, input_pipeline

log = logging.getLogger(__name__)


def run(config: ConfigDict, workdir: str | None) -> dict[str, Any]:
    """Patch-level scores on config.split of config.dataset_dir, or full-image scores of
    config.input against config.truth_dir; saved to `<workdir>/evaluation.json` if given."""
    require(config, "checkpoint")
    if not config.dataset_dir and not (config.input and config.truth_dir):
        raise UserError("job=evaluate needs config.dataset_dir, or config.input and truth_dir")
    model, model_config, step = checkpoints.load_model(config.checkpoint)
    apply_fn = make_model_apply_fn(model)
    bias = reference_class_bias(read_reference(config.checkpoint))  # as segment applies it
    if bias is not None:
        log.info("class calibration offsets %s", np.round(bias, 3).tolist())
    if config.dataset_dir:
        scores = split_scores(apply_fn, config.dataset_dir, config.split,
                              config.predict.batch_size, model_config.num_classes, bias)
        scope = f"{config.dataset_dir} split {config.split}"
    else:
        truth_dir = Path(config.truth_dir)
        if not truth_dir.is_dir():
            raise UserError(f"truth_dir {truth_dir} is not a folder")
        predictor = predictor_from_config(apply_fn, config.predict, bias)
        normalisation = resolve_normalisation("auto", config.checkpoint)  # as trained
        pairs = []
        for job in discover_images(config.input):
            truth = read_label_map(find_truth(truth_dir, job.path))
            image = preprocess(read_grey(job.path), normalisation)
            pairs.append((truth, predictor.predict(image)))
        if not pairs:
            raise UserError(f"no images found in {config.input}")
        scores = score_pairs(pairs, model_config.num_classes)
        scope = f"{len(pairs)} images of {config.input}"
    log.info("checkpoint step %d on %s:\n%s", step, scope, format_scores(scores))
    if workdir:
        write_json_atomic(Path(workdir) / "evaluation.json",
                          {"scope": scope, "step": step, **scores})
    return scores


def split_scores(
    apply_fn: Any, dataset_dir: str, split: str, batch_size: int, num_classes: int,
    class_bias: np.ndarray | None = None,
) -> dict[str, Any]:
    """Scores of every patch of a prepared split, the records scaled as training scales them
    (``to_model_input``: by the dtype maximum, so uint8 and uint16 datasets both work), the
    probabilities class-calibrated by ``class_bias`` (``inference.class_bias``) when given."""
    total = np.zeros((num_classes,) * 2, np.int64)
    weights = class_weights(class_bias, num_classes)
    for batch in input_pipeline.eval_batches(dataset_dir, split, batch_size):
        probs = np.asarray(apply_fn(to_model_input(batch["image"]))) * weights
        keep = batch["mask"]
        total += confusion_matrix(batch["label"][keep], probs[keep].argmax(-1), num_classes)
    return segmentation_scores(total)
