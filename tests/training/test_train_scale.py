"""Training at scale: 4 devices = 1 device, two processes agree, SIGKILL + restart is exact,
a corrupt newest checkpoint is skipped, an incompatible checkpoint is refused."""

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from socseg_jax.models.unet import UNetConfig
from socseg_jax.training import checkpoints
from socseg_jax.training.optim import make_optimizer
from socseg_jax.training.train import init_model, train_and_evaluate
from tests.training.test_train import TINY_MODEL, tiny_config

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def worker(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.training.train_worker", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: int = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def load_params(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_four_devices_equal_one_device():
    proc = worker("--equality", env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    out = finish(proc)
    assert proc.returncode == 0, out
    assert "EQUAL" in out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_to_identical_parameters(tiny_dataset, tmp_path):
    port = str(free_port())
    procs = [
        worker(str(tiny_dataset), str(tmp_path), "3", "--process", str(i), "--of", "2",
               "--port", port)
        for i in range(2)
    ]
    outs = [finish(p) for p in procs]
    for proc, out in zip(procs, outs, strict=True):
        assert proc.returncode == 0, out
    assert_bitwise_equal(
        load_params(tmp_path / "final_params_0.npz"), load_params(tmp_path / "final_params_1.npz")
    )


def test_sigkill_during_save_and_mid_run_then_restart_is_bitwise_exact(tiny_dataset, tmp_path):
    """The uninterrupted run (its own workdir) runs beside the killed and restarted ones."""
    straight = worker(str(tiny_dataset), str(tmp_path / "straight"), "8")

    killed_dir = tmp_path / "killed"
    first = worker(str(tiny_dataset), str(killed_dir), "8", "--kill-during-save", "4")
    finish(first)
    assert first.returncode == -9  # SIGKILL while the step-4 checkpoint was being written
    second = worker(str(tiny_dataset), str(killed_dir), "8", "--kill-after-step", "7")
    finish(second)
    assert second.returncode == -9  # SIGKILL mid-run, between the checkpoints of steps 6 and 8
    last = worker(str(tiny_dataset), str(killed_dir), "8")
    out = finish(last)
    assert last.returncode == 0, out
    assert "resuming from the checkpoint" in out
    out = finish(straight)
    assert straight.returncode == 0, out
    assert_bitwise_equal(
        load_params(tmp_path / "straight" / "final_params_0.npz"),
        load_params(killed_dir / "final_params_0.npz"),
    )


def test_corrupt_newest_checkpoint_is_skipped(tiny_dataset, tmp_path, caplog):
    config = tiny_config(tiny_dataset, steps=4)
    config.checkpoint_every_steps = 2
    train_and_evaluate(config, tmp_path)
    newest = tmp_path / "checkpoints" / "4"
    for path in (newest / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    shutil.rmtree(newest / "model_config", ignore_errors=True)
    manager = checkpoints.checkpoint_manager(tmp_path)
    _, params = init_model(UNetConfig.from_dict(TINY_MODEL), seed=0)
    tx = make_optimizer(config)
    template = {"params": params, "opt_state": tx.init(params), "step": jnp.int32(0)}
    with caplog.at_level("WARNING"):
        state, step, _ = checkpoints.restore_latest(
            manager, template, UNetConfig.from_dict(TINY_MODEL)
        )
    assert step == 2 and int(state["step"]) == 2
    assert "step 4 is unreadable" in caplog.text


def test_incompatible_checkpoint_is_refused(tiny_dataset, tmp_path):
    train_and_evaluate(tiny_config(tiny_dataset, steps=2), tmp_path)
    other = tiny_config(tiny_dataset, steps=4)
    other.model.features = (4, 16)
    with pytest.raises(ValueError, match="use a new --workdir"):
        train_and_evaluate(other, tmp_path)


def test_model_trained_on_four_devices_loads_on_one(tiny_dataset, tmp_path):
    """A checkpoint saved from 4 devices restores in a process with another device count."""
    import jax
    from flax import nnx

    from socseg_jax.training import checkpoints

    proc = worker(str(tiny_dataset), str(tmp_path), "3",
                  env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
    out = finish(proc)
    assert proc.returncode == 0, out
    assert jax.device_count() != 4
    model, _, step = checkpoints.load_model(tmp_path)
    assert step == 3
    saved = load_params(tmp_path / "final_params_0.npz")
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    loaded = {jax.tree_util.keystr(k): np.asarray(v)
              for k, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    assert_bitwise_equal(saved, loaded)
