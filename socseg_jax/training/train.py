"""job=train: the U-Net trained on prepared patches with a jit-compiled, data-parallel step.

The global batch is split over a 1-D device mesh ('data') spanning every process; parameters
and optimizer state are replicated, so XLA averages gradients across devices (the sharded-jit
successor of `pmap`). Dropout keys are derived from (seed, step) and batch `k` is a pure
function of (seed, k), so a run restarted from its latest checkpoint continues exactly.
"""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from ml_collections import ConfigDict

from data_prep.tfds_builder import dataset_metadata, open_split
from socseg_jax.core.atomic import write_json_atomic
from socseg_jax.core.errors import UserError
from socseg_jax.core.intensity import (
    NORMALISATION_FILE,
    normalisation_settings,
    to_model_input,
)
from socseg_jax.core.scores import format_scores, segmentation_scores
from socseg_jax.evaluation.device_confusion import confusion_matrix_jax
from socseg_jax.models.unet import UNet, UNetConfig
from socseg_jax.runtime import distributed
from socseg_jax.training import checkpoints, input_pipeline
from socseg_jax.training.losses import LOSSES, inverse_frequency_weights, segmentation_loss
from socseg_jax.training.optim import make_optimizer
from socseg_jax.training.shift_reference import write_shift_reference
from socseg_jax.training.training_log import TrainingLog

log = logging.getLogger(__name__)

TrainState = dict[str, Any]


@dataclass(frozen=True)
class ModelFunctions:
    """Pure functions of (params, images) for the train-mode and eval-mode network."""

    train_graphdef: Any
    eval_graphdef: Any
    rest: Any

    def logits(self, params: Any, images: jax.Array, dropout_key: jax.Array | None) -> jax.Array:
        """Logits for uint8 or float images; dropout is on iff a key is given."""
        images = to_model_input(images)
        if dropout_key is None:
            return nnx.merge(self.eval_graphdef, params, self.rest)(images)
        model = nnx.merge(self.train_graphdef, params, self.rest)
        return model(images, rngs=nnx.Rngs(dropout=dropout_key))


def init_model(config: UNetConfig, seed: int) -> tuple[ModelFunctions, Any]:
    """Builds the U-Net and returns its pure functions and initial parameters (a pure dict)."""
    model = UNet(config, rngs=nnx.Rngs(params=seed))
    model.train()
    train_graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    model.eval()
    eval_graphdef, _, _ = nnx.split(model, nnx.Param, ...)
    return ModelFunctions(train_graphdef, eval_graphdef, rest), nnx.to_pure_dict(params)


def make_train_step(
    fns: ModelFunctions,
    tx: optax.GradientTransformation,
    seed: int,
    loss_name: str = "cross_entropy",
    class_weights: jax.Array | None = None,
    label_smoothing: float = 0.0,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """A jitted step: loss, gradients (averaged over the devices by XLA), optimizer update."""
    base_key = jax.random.key(seed)

    @partial(jax.jit, donate_argnums=0)
    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        dropout_key = jax.random.fold_in(base_key, state["step"])
        labels = batch["label"].astype(jnp.int32)

        def loss_fn(params: Any) -> tuple[jax.Array, jax.Array]:
            logits = fns.logits(params, batch["image"], dropout_key)
            loss = segmentation_loss(loss_name, logits, labels, class_weights, label_smoothing)
            return loss, logits

        (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        new_state = {
            "params": optax.apply_updates(state["params"], updates),
            "opt_state": opt_state,
            "step": state["step"] + 1,
        }
        accuracy = (logits.argmax(-1) == labels).mean()
        return new_state, {"loss": loss, "accuracy": accuracy}

    return train_step


def make_eval_step(fns: ModelFunctions, num_classes: int) -> Callable:
    """A jitted step returning the confusion matrix of one (masked) batch."""

    @jax.jit
    def eval_step(params: Any, batch: dict) -> jax.Array:
        pred = fns.logits(params, batch["image"], None).argmax(-1)
        mask = jnp.broadcast_to(batch["mask"][:, None, None], pred.shape)
        return confusion_matrix_jax(batch["label"], pred, num_classes, mask=mask)

    return eval_step


def evaluate_split(
    eval_step: Callable,
    params: Any,
    dataset_dir: str,
    split: str,
    batch_size: int,
    mesh: jax.sharding.Mesh,
) -> dict[str, Any]:
    """Scores on every patch of one split; the confusion matrix is summed on device."""
    total = None
    batches = input_pipeline.eval_batches(
        dataset_dir, split, batch_size, jax.process_index(), jax.process_count()
    )
    for local in batches:
        cm = eval_step(params, distributed.global_batch(local, mesh))
        total = cm if total is None else total + cm
    if total is None:
        raise UserError(f"split '{split}' of {dataset_dir} is empty")
    return segmentation_scores(np.asarray(total))


def resolve_num_steps(config: ConfigDict, num_train_records: int) -> int:
    """config.num_epochs (if > 0) converted to steps, else config.num_train_steps."""
    epochs = config.num_epochs
    steps = math.ceil(epochs * num_train_records / config.batch_size) if epochs > 0 else (
        config.num_train_steps
    )
    if steps <= 0:
        raise UserError(f"num_train_steps={steps} must be positive (or set num_epochs > 0)")
    return int(steps)


def class_weights_from(config: ConfigDict, dataset_dir: str, num_classes: int) -> jax.Array | None:
    """Per-class loss weights: config.class_weights, or inverse train-split frequencies."""
    if config.loss != "weighted_cross_entropy":
        return None
    weights = config.class_weights
    if not weights:
        fractions = dataset_metadata(dataset_dir).get("class_fractions", {}).get("train")
        if not fractions:
            raise UserError("loss=weighted_cross_entropy needs config.class_weights or "
                             "class fractions in the dataset metadata")
        weights = inverse_frequency_weights(list(fractions))
    if len(weights) != num_classes:
        raise UserError(f"class_weights has {len(weights)} values for {num_classes} classes")
    return jnp.asarray(weights, jnp.float32)


def validate(config: ConfigDict) -> None:
    """Rejects bad training values with one clear line, before any work is done."""
    distributed.check_batch_size(config.batch_size)
    if config.loss not in LOSSES:
        raise UserError(f"loss must be one of {LOSSES}, got {config.loss!r}")
    if config.checkpoint_every_steps <= 0:
        raise UserError(f"checkpoint_every_steps={config.checkpoint_every_steps} must be > 0")


def write_normalisation(workdir: Path, dataset_dir: str) -> None:
    """``<workdir>/normalisation.json``: the SEM normalisation the dataset was prepared with
    (segment applies it); datasets from before the record were plain percentile."""
    settings = dataset_metadata(dataset_dir).get("normalisation") or normalisation_settings()
    write_json_atomic(workdir / NORMALISATION_FILE, settings)


def train_and_evaluate(config: ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Trains (resuming from the latest checkpoint in `workdir`) and returns final metrics."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    validate(config)
    dataset_dir = str(config.dataset_dir)
    num_steps = resolve_num_steps(config, len(open_split(dataset_dir, "train")))
    config = ConfigDict(config.to_dict() | {"num_train_steps": num_steps})
    model_config = UNetConfig.from_dict(config.model.to_dict())
    fns, params = init_model(model_config, config.seed)
    tx = make_optimizer(config)
    state: TrainState = {"params": params, "opt_state": tx.init(params), "step": jnp.int32(0)}

    manager = checkpoints.checkpoint_manager(
        workdir, keep=config.keep_checkpoints, keep_best=config.keep_best
    )
    if jax.process_index() == 0:
        write_normalisation(workdir, dataset_dir)
    batches = input_pipeline.train_batches(
        dataset_dir, config.batch_size, num_steps, config.seed, augment=config.augment,
        acquisition=config.acquisition,
        process_index=jax.process_index(), process_count=jax.process_count(),
    )
    restored = checkpoints.restore_latest(manager, state, model_config, batches)
    if restored is not None:
        state, start_step, has_data_position = restored
        if not has_data_position:  # batch k is a function of (seed, k): the step suffices
            batches.set_state({"next_index": start_step})
        log.info("resuming from the checkpoint at step %d", start_step)

    mesh = distributed.data_mesh()
    state = distributed.replicate(state, mesh)
    train_step = make_train_step(
        fns, tx, config.seed, config.loss,
        class_weights_from(config, dataset_dir, model_config.num_classes),
        config.label_smoothing,
    )
    eval_step = make_eval_step(fns, model_config.num_classes)
    evaluate = partial(evaluate_split, eval_step, dataset_dir=dataset_dir,
                       batch_size=config.batch_size, mesh=mesh)
    with TrainingLog(
        workdir, num_steps, config.batch_size, config.log_every_steps
    ) as training_log:
        state = _train_loop(config, state, train_step, batches, evaluate, manager, model_config,
                            training_log)
    manager.wait_until_finished()
    manager.close()

    result: dict[str, Any] = {"final_step": int(state["step"]), **training_log.summary()}
    for split in ("validation", "test"):
        try:
            scores = evaluate(state["params"], split=split)
        except ValueError as err:
            log.info("no %s evaluation: %s", split, err)
            continue
        log.info("%s patches:\n%s", split, format_scores(scores))
        result[split] = scores
    if jax.process_index() == 0:
        if config.shift_reference_images:
            write_shift_reference(workdir, dataset_dir, config.shift_reference_images,
                                  config.predict, config.seed)
        write_json_atomic(workdir / "train_result.json", result)
    return result


def _train_loop(
    config: ConfigDict,
    state: TrainState,
    train_step: Callable,
    batches: Any,
    evaluate: Callable,
    manager: Any,
    model_config: UNetConfig,
    training_log: TrainingLog,
) -> TrainState:
    """Steps, periodic validation, early stopping and checkpoints."""
    mesh = distributed.data_mesh()
    total = config.num_train_steps
    eval_every = config.eval_every_steps
    patience = config.early_stopping_patience
    best, evals_since_best = -1.0, 0
    start = int(state["step"])
    for step in range(start + 1, total + 1):
        state, metrics = train_step(state, distributed.global_batch(next(batches), mesh))
        training_log.record_step(step, metrics, first=step == start + 1)
        val_metrics = None
        if eval_every and (step % eval_every == 0 or step == total):
            scores = evaluate(state["params"], split="validation")
            val_metrics = {checkpoints.BEST_METRIC: float(scores["mean_iou"])}
            training_log.record_validation(step, scores)
            if scores["mean_iou"] > best:
                best, evals_since_best = scores["mean_iou"], 0
            else:
                evals_since_best += 1
        stop = bool(patience) and evals_since_best >= patience
        if step % config.checkpoint_every_steps == 0 or step == total or stop:
            checkpoints.save(manager, step, state, model_config, batches, val_metrics)
        if stop:
            log.info("early stopping at step %d: validation mean IoU has not improved for %d "
                     "evaluations (best %.4f)", step, patience, best)
            break
    return state
