"""Runs a tiny training in a subprocess for the multi-device, multi-process and kill tests.

python -m tests.training.train_worker DATASET WORKDIR STEPS
    [--kill-during-save N] [--kill-after-step N]
    [--process I --of P --port PORT]   → WORKDIR/final_params_<process>.npz
python -m tests.training.train_worker --equality
"""

import argparse
import os
import signal
import sys

import numpy as np


def tiny_config(dataset_dir: str, steps: int):
    """The tests' tiny training config, checkpointing every 2 steps and logging every step."""
    from tests.training.test_train import tiny_config as base

    config = base(dataset_dir, steps)
    config.checkpoint_every_steps = 2
    config.log_every_steps = 1
    return config


def save_params(path: str, params) -> None:
    import jax

    flat = {
        jax.tree_util.keystr(k): np.asarray(v)
        for k, v in jax.tree_util.tree_flatten_with_path(params)[0]
    }
    np.savez(path, **flat)


def kill_during_save(step_to_kill: int) -> None:
    """Makes checkpoints.save start the (asynchronous) save of `step_to_kill`, then SIGKILL."""
    from socseg_jax.training import checkpoints

    original = checkpoints.save

    def save_then_die(manager, step, *args, **kwargs):
        original(manager, step, *args, **kwargs)
        if step == step_to_kill:
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoints.save = save_then_die


def kill_after_step(step_to_kill: int) -> None:
    """SIGKILLs the process right after training step `step_to_kill` (between checkpoints)."""
    from socseg_jax.training.training_log import TrainingLog

    original = TrainingLog.record_step

    def record_then_die(self, step, metrics, first):
        original(self, step, metrics, first)
        if step == step_to_kill:
            os.kill(os.getpid(), signal.SIGKILL)

    TrainingLog.record_step = record_then_die


def equality_check() -> None:
    """One step on a 4-device mesh equals the same step on 1 device (same global batch)."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from socseg_jax.models.unet import UNetConfig
    from socseg_jax.training.optim import make_optimizer
    from socseg_jax.training.train import init_model, make_train_step
    from tests.training.test_train import TINY_MODEL

    assert jax.device_count() == 4, jax.devices()
    config = tiny_config("", 1)
    fns, params = init_model(UNetConfig.from_dict(TINY_MODEL), seed=0)
    params = jax.device_get(params)  # host copies: the step donates its device buffers
    tx = make_optimizer(config)
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.integers(0, 255, (8, 32, 32, 1), dtype=np.uint8),
        "label": rng.integers(0, 4, (8, 32, 32), dtype=np.uint8),
    }
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = Mesh(np.array(devices), ("data",))
        state = {"params": params, "opt_state": tx.init(params), "step": jnp.int32(0)}
        state = jax.device_put(state, NamedSharding(mesh, P()))
        sharded = jax.device_put(batch, NamedSharding(mesh, P("data")))
        step = make_train_step(fns, tx, seed=0)
        new_state, metrics = step(state, sharded)
        results.append((float(metrics["loss"]), jax.device_get(new_state["params"])))
    (loss1, params1), (loss4, params4) = results
    np.testing.assert_allclose(loss1, loss4, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 params1, params4)
    print("EQUAL", loss1, loss4)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", nargs="?")
    parser.add_argument("workdir", nargs="?")
    parser.add_argument("steps", nargs="?", type=int)
    parser.add_argument("--kill-during-save", type=int, default=0)
    parser.add_argument("--kill-after-step", type=int, default=0)
    parser.add_argument("--process", type=int, default=0)
    parser.add_argument("--of", type=int, default=1)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--equality", action="store_true")
    args = parser.parse_args()
    if args.equality:
        equality_check()
        return
    import logging

    import jax

    logging.basicConfig(level=logging.INFO)
    if args.of > 1:
        jax.distributed.initialize(
            coordinator_address=f"127.0.0.1:{args.port}",
            num_processes=args.of,
            process_id=args.process,
        )
    if args.kill_during_save:
        kill_during_save(args.kill_during_save)
    if args.kill_after_step:
        kill_after_step(args.kill_after_step)
    from socseg_jax.training.train import train_and_evaluate
    from tests.training.test_train import TINY_MODEL  # noqa: F401 - same tiny model everywhere

    train_and_evaluate(tiny_config(args.dataset, args.steps), args.workdir)
    from socseg_jax.training import checkpoints

    model, _, _ = checkpoints.load_model(args.workdir)
    from flax import nnx

    save_params(os.path.join(args.workdir, f"final_params_{args.process}.npz"),
                nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    sys.exit(0)


if __name__ == "__main__":
    main()
