"""Orbax checkpoints of the training state, stored together with the model config.

A checkpoint holds `state` (params, optimizer state, step, base key) and `model_config`
(JSON), so `segment` and `evaluate` rebuild the network from the checkpoint alone.
"""

from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp
from flax import nnx

from socseg_jax.models.unet import UNet, UNetConfig

CHECKPOINT_SUBDIR = "checkpoints"


def checkpoint_manager(workdir: str | Path, keep: int = 3) -> ocp.CheckpointManager:
    """A manager for `<workdir>/checkpoints` keeping the latest `keep` steps."""
    directory = Path(workdir).absolute() / CHECKPOINT_SUBDIR
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(keep),
        enable_async_checkpointing=False,
    )
    return ocp.CheckpointManager(directory, options=options)


def save(
    manager: ocp.CheckpointManager, step: int, state: Any, model_config: UNetConfig
) -> None:
    """Saves the training state and model config at `step`."""
    manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            model_config=ocp.args.JsonSave(model_config.to_dict()),
        ),
    )


def restore_state(manager: ocp.CheckpointManager, step: int, abstract_state: Any) -> Any:
    """Restores the training state saved at `step`, shaped like `abstract_state`."""
    restored = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
    )
    return restored["state"]


def resolve_checkpoint(path: str | Path) -> tuple[Path, int]:
    """Finds (checkpoints folder, step) from a train workdir, its checkpoints folder or a step."""
    path = Path(path).absolute()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    for root in (path / CHECKPOINT_SUBDIR, path):
        if root.is_dir():
            steps = ocp.utils.checkpoint_steps(root)
            if steps:
                return root, max(steps)
    if path.name.isdigit() and (path / "state").exists():
        return path.parent, int(path.name)
    raise FileNotFoundError(
        f"no checkpoint found in {path}: expected a train workdir, its 'checkpoints' folder "
        "or one step folder"
    )


def load_model(path: str | Path) -> tuple[UNet, UNetConfig, int]:
    """Rebuilds the trained U-Net (eval mode) from a checkpoint alone; returns it, config, step."""
    root, step = resolve_checkpoint(path)
    with ocp.CheckpointManager(root, options=ocp.CheckpointManagerOptions(read_only=True)) as mgr:
        meta = mgr.restore(step, args=ocp.args.Composite(model_config=ocp.args.JsonRestore()))
        config = UNetConfig.from_dict(meta["model_config"])
        model = UNet(config, rngs=nnx.Rngs(0))
        graphdef, _, rest = nnx.split(model, nnx.Param, ...)
        restored = mgr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    model = nnx.merge(graphdef, restored["state"]["params"], rest)
    model.eval()
    return model, config, step
