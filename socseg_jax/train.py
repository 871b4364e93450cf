"""job=train: the U-Net trained on prepared patches with a jit-compiled, data-parallel step.

The global batch is split over a 1-D device mesh ('data'); parameters and optimizer state
are replicated, so XLA averages gradients across devices. Dropout keys are derived from
(seed, step), and batch `k` is a pure function of (seed, k), so a run restarted from its
latest Orbax checkpoint continues exactly.
"""

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from ml_collections import ConfigDict

from socseg_jax import checkpoints, input_pipeline
from socseg_jax.metrics import confusion_matrix_jax, format_scores, segmentation_scores
from socseg_jax.models.unet import UNet, UNetConfig

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


def to_model_input(images: jax.Array) -> jax.Array:
    """uint8 patches → float32 in [0, 1]; float input is passed through."""
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 255.0
    return images.astype(jnp.float32)


def init_model(config: UNetConfig, seed: int) -> tuple[ModelFunctions, Any]:
    """Builds the U-Net and returns its pure functions and initial parameters (a pure dict)."""
    model = UNet(config, rngs=nnx.Rngs(params=seed))
    model.train()
    train_graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    model.eval()
    eval_graphdef, _, _ = nnx.split(model, nnx.Param, ...)
    return ModelFunctions(train_graphdef, eval_graphdef, rest), nnx.to_pure_dict(params)


def data_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh over every device of every process, axis 'data' (XLA decides the rest)."""
    return jax.make_mesh(
        (jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,)
    )


def make_train_step(
    fns: ModelFunctions, tx: optax.GradientTransformation, seed: int
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
    """A jitted step: softmax cross-entropy, gradients, optimizer update, loss/accuracy."""
    base_key = jax.random.key(seed)

    @partial(jax.jit, donate_argnums=0)
    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        dropout_key = jax.random.fold_in(base_key, state["step"])
        labels = batch["label"].astype(jnp.int32)

        def loss_fn(params: Any) -> tuple[jax.Array, jax.Array]:
            logits = fns.logits(params, batch["image"], dropout_key)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
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
    eval_step: Callable, params: Any, dataset_dir: str, split: str, batch_size: int
) -> dict[str, Any]:
    """Scores of the model on every patch of one split (confusion matrix summed on device)."""
    total = None
    for batch in input_pipeline.eval_batches(dataset_dir, split, batch_size):
        cm = eval_step(params, batch)
        total = cm if total is None else total + cm
    if total is None:
        raise ValueError(f"split '{split}' of {dataset_dir} is empty")
    return segmentation_scores(np.asarray(total))


def check_batch_size(batch_size: int) -> None:
    """The global batch must split evenly over the devices."""
    devices = jax.device_count()
    if batch_size <= 0 or batch_size % devices:
        raise ValueError(
            f"batch_size={batch_size} must be a positive multiple of the device count ({devices})"
        )


def train_and_evaluate(config: ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Trains (resuming from the latest checkpoint in `workdir`) and returns final metrics."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    check_batch_size(config.batch_size)
    if config.num_train_steps <= 0:
        raise ValueError(f"num_train_steps={config.num_train_steps} must be positive")
    dataset_dir = str(config.dataset_dir)
    model_config = UNetConfig.from_dict(config.model.to_dict())
    fns, params = init_model(model_config, config.seed)
    tx = optax.adam(config.learning_rate)
    state: TrainState = {"params": params, "opt_state": tx.init(params), "step": jnp.int32(0)}

    manager = checkpoints.checkpoint_manager(workdir)
    start_step = 0
    if manager.latest_step() is not None:
        start_step = int(manager.latest_step())
        state = checkpoints.restore_state(manager, start_step, state)
        log.info("resuming from the checkpoint at step %d", start_step)

    mesh = data_mesh()
    replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    state = jax.device_put(state, replicated)
    train_step = make_train_step(fns, tx, config.seed)
    batches = input_pipeline.train_batches(
        dataset_dir,
        config.batch_size,
        config.num_train_steps,
        config.seed,
        start_step=start_step,
        augment=config.augment,
    )
    history = _train_loop(
        config, workdir, state, train_step, batches, start_step, sharded, manager, model_config
    )
    state = history.pop("state")
    manager.wait_until_finished()
    manager.close()

    eval_step = make_eval_step(fns, model_config.num_classes)
    result: dict[str, Any] = {"final_step": int(state["step"]), **history}
    for split in ("validation", "test"):
        try:
            scores = evaluate_split(eval_step, state["params"], dataset_dir, split, 8)
        except ValueError as err:
            log.info("no %s evaluation: %s", split, err)
            continue
        log.info("%s patches:\n%s", split, format_scores(scores))
        result[split] = scores
    (workdir / "train_result.json").write_text(json.dumps(result, indent=2, default=float))
    return result


def _train_loop(
    config: ConfigDict,
    workdir: Path,
    state: TrainState,
    train_step: Callable,
    batches: Iterator[dict],
    start_step: int,
    sharding: NamedSharding,
    manager: Any,
    model_config: UNetConfig,
) -> dict[str, Any]:
    """Runs the steps, logging progress to the console and `metrics.jsonl`, saving checkpoints."""
    total = config.num_train_steps
    log_every = max(1, config.log_every_steps)
    pending: list[dict] = []
    t_start, samples_timed, first_done = time.perf_counter(), 0, False
    last_loss = float("nan")
    with open(workdir / "metrics.jsonl", "a") as metrics_file:
        for step in range(start_step + 1, total + 1):
            batch = jax.device_put(next(batches), sharding)
            state, metrics = train_step(state, batch)
            pending.append(metrics)
            if not first_done:  # exclude compilation from the throughput
                jax.block_until_ready(metrics)
                t_start, first_done = time.perf_counter(), True
            else:
                samples_timed += config.batch_size
            if step % log_every == 0 or step == total:
                means = {k: float(np.mean([m[k] for m in pending])) for k in pending[0]}
                pending.clear()
                elapsed = time.perf_counter() - t_start
                rate = samples_timed / elapsed if elapsed > 0 and samples_timed else 0.0
                eta = (total - step) * config.batch_size / rate if rate else float("nan")
                log.info(
                    "step %d/%d  loss %.4f  accuracy %.3f  %.1f samples/s  ETA %s",
                    step, total, means["loss"], means["accuracy"], rate, _format_seconds(eta),
                )
                metrics_file.write(json.dumps({"step": step, **means, "samples_per_s": rate}))
                metrics_file.write("\n")
                metrics_file.flush()
                last_loss = means["loss"]
            if step % config.checkpoint_every_steps == 0 or step == total:
                checkpoints.save(manager, step, jax.device_get(state), model_config)
    return {"state": state, "final_loss": last_loss}


def _format_seconds(seconds: float) -> str:
    """'3m05s' style durations for ETAs."""
    if not np.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"
