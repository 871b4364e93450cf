"""Orbax checkpoints of the training state, stored with the model config and data position.

A checkpoint holds `state` (params, optimizer state, step), `model_config` (JSON, so
`segment` and `evaluate` rebuild the network from the checkpoint alone) and `data` (the Grain
iterator state). Saves are asynchronous and atomic (Orbax writes to a temporary folder and
renames it), so a run killed at any point resumes from the last complete checkpoint; an
unreadable newest checkpoint is skipped with a warning.
"""

import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import nnx
from orbax.checkpoint import checkpoint_managers as policies

from socseg_jax.core.errors import MissingInputError, UserError
from socseg_jax.models.unet import UNet, UNetConfig

log = logging.getLogger(__name__)

CHECKPOINT_SUBDIR = "checkpoints"
BEST_METRIC = "val_mean_iou"


def checkpoint_manager(
    workdir: str | Path, keep: int = 3, keep_best: int = 1, asynchronous: bool = True
) -> ocp.CheckpointManager:
    """A manager for `<workdir>/checkpoints` keeping the latest `keep` steps and the
    `keep_best` steps with the highest validation mean IoU."""
    directory = Path(workdir).absolute() / CHECKPOINT_SUBDIR
    keep_rules: list[Any] = [policies.LatestN(keep)]
    if keep_best:
        keep_rules.append(
            policies.BestN(
                get_metric_fn=lambda metrics: metrics[BEST_METRIC],
                n=keep_best,
                keep_checkpoints_without_metrics=False,
            )
        )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policies.AnyPreservationPolicy(keep_rules),
        enable_async_checkpointing=asynchronous,
    )
    return ocp.CheckpointManager(directory, options=options)


def save(
    manager: ocp.CheckpointManager,
    step: int,
    state: Any,
    model_config: UNetConfig,
    data_state: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
) -> None:
    """Saves the training state, model config and data-iterator state at `step`."""
    items = {
        "state": ocp.args.StandardSave(state),
        "model_config": ocp.args.JsonSave(model_config.to_dict()),
    }
    if data_state is not None:
        items["data"] = ocp.args.JsonSave(data_state)
    manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)


def restore_state(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> Any:
    """Restores the training state saved at `step`, shaped like `abstract_state`."""
    restored = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
    )
    return restored["state"]


def saved_model_config(manager: ocp.CheckpointManager, step: int) -> UNetConfig:
    """The model config stored with the checkpoint at `step`."""
    meta = manager.restore(step, args=ocp.args.Composite(model_config=ocp.args.JsonRestore()))
    return UNetConfig.from_dict(meta["model_config"])


def saved_data_state(manager: ocp.CheckpointManager, step: int) -> dict[str, Any] | None:
    """The data-iterator state stored with the checkpoint at `step` (None if absent)."""
    if "data" not in manager.item_metadata(step):
        return None
    return manager.restore(step, args=ocp.args.Composite(data=ocp.args.JsonRestore()))["data"]


def restore_latest(
    manager: ocp.CheckpointManager, abstract_state: Any, model_config: UNetConfig
) -> tuple[Any, int, dict[str, Any] | None] | None:
    """(state, step, data state) of the newest readable checkpoint, or None if there is none.

    A checkpoint that cannot be read (partial, corrupt) is skipped with a warning; one made
    with a different model config is an error, since resuming it would silently mix runs.
    """
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            saved = saved_model_config(manager, step)
        except Exception as err:  # noqa: BLE001 - any unreadable checkpoint is skipped
            log.warning("checkpoint at step %d is unreadable (%s); trying the previous one",
                        step, _first_line(err))
            continue
        if saved != model_config:
            raise UserError(
                f"the checkpoint at step {step} in {manager.directory} was made with model "
                f"config {saved.to_dict()}, not {model_config.to_dict()}; use a new --workdir"
            )
        try:
            return restore_state(manager, step, abstract_state), step, saved_data_state(
                manager, step
            )
        except Exception as err:  # noqa: BLE001
            log.warning("checkpoint at step %d is unreadable (%s); trying the previous one",
                        step, _first_line(err))
    return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def resolve_checkpoint(path: str | Path) -> tuple[Path, int]:
    """Finds (checkpoints folder, step) from a train workdir, its checkpoints folder or a step."""
    path = Path(path).absolute()
    if not path.exists():
        raise MissingInputError(f"checkpoint {path} does not exist")
    for root in (path / CHECKPOINT_SUBDIR, path):
        if root.is_dir():
            steps = ocp.utils.checkpoint_steps(root)
            if steps:
                return root, max(steps)
    if path.name.isdigit() and (path / "state").exists():
        return path.parent, int(path.name)
    raise MissingInputError(
        f"no checkpoint found in {path}: expected a train workdir, its 'checkpoints' folder "
        "or one step folder"
    )


def _drop_read_only_notice(record: logging.LogRecord) -> bool:
    """Orbax warns 'Given directory is read only' on every read-only open, which is what
    loading a model for `segment`/`evaluate` asks for, and that a step's state folder has no
    metadata file of its own when its metadata is read: neither is worth a warning."""
    message = str(record.msg)
    return not message.startswith(("Given directory is read only", "Metadata file does not"))


def load_model(path: str | Path) -> tuple[UNet, UNetConfig, int]:
    """Rebuilds the trained U-Net (eval mode) from a checkpoint alone; returns it, config, step."""
    root, step = resolve_checkpoint(path)
    options = ocp.CheckpointManagerOptions(read_only=True, save_interval_steps=0, create=False)
    absl_log = logging.getLogger("absl")
    absl_log.addFilter(_drop_read_only_notice)
    try:
        mgr = ocp.CheckpointManager(root, options=options)
    finally:
        absl_log.removeFilter(_drop_read_only_notice)
    with mgr:
        config = saved_model_config(mgr, step)
        model = UNet(config, rngs=nnx.Rngs(0))
        graphdef, _, rest = nnx.split(model, nnx.Param, ...)
        target = _on_this_device(root / str(step) / "state")
        restored = mgr.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target)
        ))
    model = nnx.merge(graphdef, restored["state"]["params"], rest)
    model.eval()
    return model, config, step


def _on_this_device(state_dir: Path) -> Any:
    """Restore target placing every saved array on this process's first device, so a model
    trained on several devices (GPUs, CPU host devices) loads wherever it is used."""
    absl_log = logging.getLogger("absl")
    absl_log.addFilter(_drop_read_only_notice)
    try:
        metadata = ocp.StandardCheckpointer().metadata(state_dir).item_metadata
    finally:
        absl_log.removeFilter(_drop_read_only_notice)
    sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding), metadata
    )
