"""Orbax checkpoints of the training state, stored with the model config and data position.

A checkpoint holds `state` (params, optimizer state, step), `model_config` (JSON, so `segment`
and `evaluate` rebuild the network from the checkpoint alone) and `data_iterator` (the Grain
iterator state, written by Grain's own Orbax handler: one `process_<i>-of-<n>.json` per
process). Checkpoints of the earlier layout, whose `data` item held the primary process's
iterator state as JSON, still restore. Saves are asynchronous and atomic (Orbax writes to a
temporary folder and renames it), so a run killed at any point resumes from the last complete
checkpoint; an unreadable newest checkpoint is skipped with a warning.
"""

import logging
from pathlib import Path
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from flax import nnx
from orbax.checkpoint import checkpoint_managers as policies

from socseg_jax.core.errors import MissingInputError, UserError
from socseg_jax.models.unet import UNet, UNetConfig

log = logging.getLogger(__name__)

CHECKPOINT_SUBDIR = "checkpoints"
BEST_METRIC = "val_mean_iou"
DATA_ITEM = "data_iterator"  # grain.checkpoint.CheckpointHandler: one file per process
LEGACY_DATA_ITEM = "data"  # before: JSON of the primary process's iterator state


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
    data_iterator: grain.DatasetIterator | None = None,
    metrics: dict[str, float] | None = None,
) -> None:
    """Saves the training state, model config and (each process) its data iterator's state
    at `step` (the iterator's state is taken before this returns)."""
    items = {
        "state": ocp.args.StandardSave(state),
        "model_config": ocp.args.JsonSave(model_config.to_dict()),
    }
    if data_iterator is not None:
        items[DATA_ITEM] = grain.checkpoint.CheckpointSave(data_iterator)
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


def restore_data_iterator(
    manager: ocp.CheckpointManager, step: int, iterator: grain.DatasetIterator
) -> bool:
    """Sets `iterator` to this process's data position saved at `step`; False when the
    checkpoint holds none (the caller then derives it from the step)."""
    if (Path(manager.directory) / str(step) / DATA_ITEM).is_dir():
        try:
            manager.restore(step, args=ocp.args.Composite(
                **{DATA_ITEM: grain.checkpoint.CheckpointRestore(iterator)}))
            return True
        except ValueError as err:  # e.g. saved by another number of processes
            log.warning("no data position for this process at step %d (%s); using the step",
                        step, _first_line(err))
            return False
    if LEGACY_DATA_ITEM in manager.item_metadata(step):
        legacy = ocp.args.Composite(**{LEGACY_DATA_ITEM: ocp.args.JsonRestore()})
        iterator.set_state(manager.restore(step, args=legacy)[LEGACY_DATA_ITEM])
        return True
    return False


def restore_latest(
    manager: ocp.CheckpointManager,
    abstract_state: Any,
    model_config: UNetConfig,
    data_iterator: grain.DatasetIterator | None = None,
) -> tuple[Any, int, bool] | None:
    """(state, step, whether `data_iterator` was set to the saved data position) of the
    newest readable checkpoint, or None if there is none.

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
            state = restore_state(manager, step, abstract_state)
            has_data = data_iterator is not None and restore_data_iterator(
                manager, step, data_iterator
            )
            return state, step, has_data
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
            steps = ocp.path.step.checkpoint_steps(root)
            if steps:
                return root, max(steps)
    if path.name.isdigit() and (path / "state").exists():
        return path.parent, int(path.name)
    raise MissingInputError(
        f"no checkpoint found in {path}: expected a train workdir, its 'checkpoints' folder "
        "or one step folder"
    )


def companion_file(checkpoint: str | Path, name: str) -> Path | None:
    """A file training writes beside its checkpoints (``<workdir>/<name>``), found from the
    workdir, its checkpoints folder or one step folder; None when absent."""
    path = Path(checkpoint)
    for folder in (path, path.parent, path.parent.parent):
        if (folder / name).is_file():
            return folder / name
    return None


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
        try:
            config = saved_model_config(mgr, step)
            model = UNet(config, rngs=nnx.Rngs(0))
            graphdef, _, rest = nnx.split(model, nnx.Param, ...)
            target = _on_this_device(root / str(step) / "state")
            restored = mgr.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target)
            ))
            model = nnx.merge(graphdef, restored["state"]["params"], rest)
        except Exception as err:  # noqa: BLE001 - another program's or a broken checkpoint
            raise UserError(
                f"{root / str(step)}: not a socseg_jax U-Net checkpoint (its model_config and "
                f"params are needed: {_first_line(err)})"
            ) from err
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
