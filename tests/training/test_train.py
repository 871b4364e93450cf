"""Training: the loss goes down, checkpoints round-trip, a restarted run continues exactly."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from ml_collections import ConfigDict
from socseg_jax.configs.sections import train_config

from socseg_jax.core.intensity import NORMALISATION_FILE, normalisation_settings
from socseg_jax.models.unet import UNetConfig
from socseg_jax.runtime.distributed import check_batch_size
from socseg_jax.training import checkpoints
from socseg_jax.training.input_pipeline import train_batches
from socseg_jax.training.optim import make_optimizer
from socseg_jax.training.train import init_model, make_train_step, train_and_evaluate

TINY_MODEL = {
    "features": (4, 8),
    "encoder_dropout": (0.1, 0.1),
    "decoder_dropout": (0.1,),
    "in_channels": 1,
    "num_classes": 4,
    "compute_dtype": "float32",
}


def tiny_config(dataset_dir, steps=6) -> ConfigDict:
    """The training keys of configs/sections.py on a tiny model and a few steps."""
    config = ConfigDict()
    train_config(config)
    config.update(
        {
            "dataset_dir": str(dataset_dir),
            "model": dict(TINY_MODEL),
            "batch_size": 4,
            "num_train_steps": steps,
            "learning_rate": 1e-2,
            "checkpoint_every_steps": 3,
            "log_every_steps": 2,
            "eval_every_steps": 0,
            "augment": True,
            "seed": 0,
            "shift_reference_images": 0,
        }
    )
    return config


def test_train_steps_lower_the_loss_on_a_fixed_batch(tiny_dataset):
    fns, params = init_model(UNetConfig.from_dict(TINY_MODEL), seed=0)
    tx = optax.adam(1e-2)
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.int32(0)}
    step = make_train_step(fns, tx, seed=0)
    batch = next(train_batches(str(tiny_dataset), 4, num_steps=1, seed=0))
    losses = []
    for _ in range(15):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.7 * losses[0]
    assert int(state["step"]) == 15


def test_checkpoint_round_trip_and_model_rebuilt_from_checkpoint_alone(tiny_dataset, tmp_path):
    config = tiny_config(tiny_dataset, steps=3)
    result = train_and_evaluate(config, tmp_path)
    assert result["final_step"] == 3 and np.isfinite(result["final_loss"])
    model, model_config, step = checkpoints.load_model(tmp_path)
    assert step == 3 and model_config == UNetConfig.from_dict(TINY_MODEL)
    # the dataset predates the normalisation record: plain percentile travels with the model
    saved = json.loads((tmp_path / NORMALISATION_FILE).read_text())
    assert saved == normalisation_settings()
    manager = checkpoints.checkpoint_manager(tmp_path)
    _, params = init_model(model_config, seed=123)
    tx = make_optimizer(config)
    template = {"params": params, "opt_state": tx.init(params), "step": jnp.int32(0)}
    state = checkpoints.restore_state(manager, 3, template)
    restored_kernel = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    jax.tree.map(np.testing.assert_array_equal, restored_kernel, state["params"])
    assert int(state["step"]) == 3


def test_restarted_run_continues_exactly(tiny_dataset, tmp_path):
    straight = train_and_evaluate(tiny_config(tiny_dataset, steps=6), tmp_path / "a")
    train_and_evaluate(tiny_config(tiny_dataset, steps=3), tmp_path / "b")
    resumed = train_and_evaluate(tiny_config(tiny_dataset, steps=6), tmp_path / "b")
    assert resumed["final_step"] == straight["final_step"] == 6
    a, _, _ = checkpoints.load_model(tmp_path / "a")
    b, _, _ = checkpoints.load_model(tmp_path / "b")
    jax.tree.map(
        np.testing.assert_array_equal,
        nnx.to_pure_dict(nnx.state(a, nnx.Param)),
        nnx.to_pure_dict(nnx.state(b, nnx.Param)),
    )


def test_batch_size_must_split_over_devices():
    with pytest.raises(ValueError, match="multiple of the device count"):
        check_batch_size(0)
