"""Checkpoint layout: Grain's handler stores the data position; the old JSON layout restores."""

import grain
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from socseg_jax.models.unet import UNetConfig
from socseg_jax.training import checkpoints

CONFIG = UNetConfig(features=(4, 8), encoder_dropout=(0.1, 0.1), decoder_dropout=(0.1,))
STATE = {"params": {"w": jnp.arange(4.0)}, "step": jnp.int32(0)}


def iterator() -> grain.DatasetIterator:
    return iter(grain.MapDataset.range(40).batch(2).to_iter_dataset())


def save_old_layout(workdir, step: int, data_state: dict) -> None:
    """A checkpoint as checkpoints.save wrote it before Grain's handler: the data position
    as a JSON item named 'data', written by the primary process only."""
    manager = checkpoints.checkpoint_manager(workdir, asynchronous=False)
    items = {"state": ocp.args.StandardSave(STATE | {"step": jnp.int32(step)}),
             "model_config": ocp.args.JsonSave(CONFIG.to_dict()),
             "data": ocp.args.JsonSave(data_state)}
    manager.save(step, args=ocp.args.Composite(**items), force=True)
    manager.wait_until_finished()


def test_old_layout_still_restores(tmp_path):
    old = iterator()
    for _ in range(3):
        next(old)
    save_old_layout(tmp_path, 3, old.get_state())
    resumed = iterator()
    state, step, has_data = checkpoints.restore_latest(
        checkpoints.checkpoint_manager(tmp_path), STATE, CONFIG, resumed
    )
    assert step == 3 and has_data and int(state["step"]) == 3
    np.testing.assert_array_equal(next(resumed), next(old))


def test_each_process_writes_its_data_position_when_saved(tmp_path):
    batches = iterator()
    for _ in range(5):
        next(batches)
    manager = checkpoints.checkpoint_manager(tmp_path)
    checkpoints.save(manager, 5, STATE, CONFIG, batches)
    expected = next(batches)  # advancing after save() must not change what was saved
    manager.wait_until_finished()
    assert (tmp_path / "checkpoints" / "5" / "data_iterator" / "process_0-of-1.json").is_file()
    resumed = iterator()
    _, step, has_data = checkpoints.restore_latest(manager, STATE, CONFIG, resumed)
    assert step == 5 and has_data
    np.testing.assert_array_equal(next(resumed), expected)
    assert checkpoints.resolve_checkpoint(tmp_path) == (tmp_path / "checkpoints", 5)
