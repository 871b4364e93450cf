"""Tests of the one-device-per-core CPU setup that launch.py applies before importing jax."""

import sys
from pathlib import Path

import pytest
from ml_collections import ConfigDict

from socseg_jax.runtime import host_devices
from tests.processes import run_side_by_side

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


def _configure_in_children(*cases: tuple[str, str, str]) -> list[str]:
    """For each (XLA_FLAGS, config, code run first): a fresh process that configures the
    devices, then prints the count chosen, jax's device count and jax_num_cpu_devices. The
    processes run side by side."""
    commands, envs = [], []
    for env_flags, config, before in cases:
        commands.append([sys.executable, "-c", (
            f"{before}import os; from ml_collections import ConfigDict;"
            "from socseg_jax.runtime import host_devices;"
            f"n = host_devices.configure(ConfigDict({config}), cores=4);"
            "import jax; print(n, jax.device_count(), jax.config.jax_num_cpu_devices)"
        )])
        envs.append({"PATH": "/usr/bin:/bin", "XLA_FLAGS": env_flags, "JAX_PLATFORMS": "cpu"})
    outs = []
    for proc in run_side_by_side(commands, envs, cwd=ROOT):
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(proc.stdout.strip())
    return outs


def test_configure_sets_the_device_count_before_jax_starts():
    user = "--xla_force_host_platform_device_count=2"
    late = "import jax; jax.devices();"
    auto, one, users, imported, started = _configure_in_children(
        ("", "{'batch_size': 6}", ""),
        ("", "{'batch_size': 8, 'cpu_devices': 1}", ""),
        (user, "{'batch_size': 8}", ""),
        ("", "{'batch_size': 8}", "import jax;"),
        ("", "{'batch_size': 8}", late),
    )
    assert auto == "3 3 3"  # 4 cores: 3 devices split 6; set through jax.config
    assert one.startswith("1 1")
    assert users.startswith("2 2 ")  # a count the user already put in XLA_FLAGS wins
    # jax imported first is fine; only started backends are too late (a warning, 0).
    assert imported == "4 4 4"
    assert started.startswith("0 1 ")


def test_negative_count_is_refused():
    with pytest.raises(ValueError, match="cpu_devices"):
        host_devices.configure(ConfigDict({"cpu_devices": -1}))
