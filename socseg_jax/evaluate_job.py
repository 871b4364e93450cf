"""job=evaluate: scores a checkpoint on a prepared split or on full images with references."""

import logging
from pathlib import Path
from typing import Any

import numpy as np
from ml_collections import ConfigDict

from data_prep import io
from socseg_jax import checkpoints, input_pipeline, segment
from socseg_jax.evaluate import find_truth, read_label_map, score_pairs
from socseg_jax.metrics import confusion_matrix, format_scores, segmentation_scores
from socseg_jax.predict import SlidingWindowPredictor, make_model_apply_fn

log = logging.getLogger(__name__)


def evaluate_checkpoint(config: ConfigDict, workdir: str | None) -> dict[str, Any]:
    """Patch-level scores on config.split of config.dataset_dir, or full-image scores of
    config.input against config.truth_dir; saved to `<workdir>/evaluation.json` if given."""
    model, model_config, step = checkpoints.load_model(config.checkpoint)
    apply_fn = make_model_apply_fn(model)
    if config.get("dataset_dir"):
        total = np.zeros((model_config.num_classes,) * 2, np.int64)
        batch_size = config.predict.batch_size
        for batch in input_pipeline.eval_batches(config.dataset_dir, config.split, batch_size):
            probs = np.asarray(apply_fn(batch["image"].astype(np.float32) / 255.0))
            keep = batch["mask"]
            total += confusion_matrix(batch["label"][keep], probs[keep].argmax(-1),
                                      model_config.num_classes)
        scores = segmentation_scores(total)
        scope = f"{config.dataset_dir} split {config.split}"
    else:
        predictor = SlidingWindowPredictor(apply_fn, **config.predict.to_dict())
        truth_dir = Path(config.truth_dir)
        if not truth_dir.is_dir():
            raise FileNotFoundError(f"truth_dir {truth_dir} is not a folder")
        pairs = []
        for job in segment.discover_images(config.input):
            truth = read_label_map(find_truth(truth_dir, job.path))
            pred = predictor.predict(io.normalize_sem(io.read_grey(job.path)))
            pairs.append((truth, pred))
        if not pairs:
            raise FileNotFoundError(f"no images found in {config.input}")
        scores = score_pairs(pairs, model_config.num_classes)
        scope = f"{len(pairs)} images of {config.input}"
    log.info("checkpoint step %d on %s:\n%s", step, scope, format_scores(scores))
    if workdir:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        io.write_json_atomic(
            Path(workdir) / "evaluation.json", {"scope": scope, "step": step, **scores}
        )
    return scores
