"""Tests of the one-device-per-core CPU setup that launch.py applies before importing jax."""

import subprocess
import sys
from pathlib import Path

import pytest
from ml_collections import ConfigDict

from socseg_jax.runtime import host_devices

ROOT = Path(__file__).resolve().parents[2]


def test_batch_sizes_found_at_any_depth():
    config = ConfigDict({"batch_size": 8, "predict": {"batch_size": 6}, "bench": {"x": 3}})
    config.benchmark = ConfigDict({"train_batch_size": 4, "name": "batch_size"})
    assert sorted(host_devices.batch_sizes(config)) == [4, 6, 8]


@pytest.mark.parametrize(
    ("cores", "sizes", "processes", "expected"),
    [(2, [8], 1, 2), (16, [8], 1, 8), (16, [8, 6], 1, 2), (4, [7], 1, 1), (4, [8], 2, 4),
     (4, [8], 4, 2), (3, [], 1, 3), (1, [8], 1, 1)],
)
def test_host_device_count_splits_every_batch(cores, sizes, processes, expected):
    assert host_devices.host_device_count(cores, sizes, processes) == expected


def _configure_in_child(env_flags: str, config: str, before: str = "") -> str:
    code = (
        f"{before}import os; from ml_collections import ConfigDict;"
        "from socseg_jax.runtime import host_devices;"
        f"n = host_devices.configure(ConfigDict({config}), cores=4);"
        "import jax; print(n, jax.device_count(), jax.config.jax_num_cpu_devices)"
    )
    env = {"PATH": "/usr/bin:/bin", "XLA_FLAGS": env_flags, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_configure_sets_the_device_count_before_jax_starts():
    out = _configure_in_child("", "{'batch_size': 6}")  # 4 cores: 3 devices split 6
    assert out == "3 3 3"  # set through jax.config (jax_num_cpu_devices)
    assert _configure_in_child("", "{'batch_size': 8, 'cpu_devices': 1}").startswith("1 1")
    # A count the user already put in XLA_FLAGS wins.
    user = "--xla_force_host_platform_device_count=2"
    assert _configure_in_child(user, "{'batch_size': 8}").startswith("2 2 ")
    # jax imported first is fine; only started backends are too late (a warning, 0).
    assert _configure_in_child("", "{'batch_size': 8}", "import jax;") == "4 4 4"
    late = "import jax; jax.devices();"
    assert _configure_in_child("", "{'batch_size': 8}", late).startswith("0 1 ")


def test_negative_count_is_refused():
    with pytest.raises(ValueError, match="cpu_devices"):
        host_devices.configure(ConfigDict({"cpu_devices": -1}))
