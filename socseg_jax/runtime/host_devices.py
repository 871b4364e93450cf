"""One XLA CPU device per core, so that CPU jobs run data-parallel over the cores.

Why: on CPU, XLA splits every operation over all cores, and the small convolutions of a
U-Net (one 256x256 window, 16 channels) split badly. Presenting each core as its own device
and sharding the batch over them trains the study U-Net and runs sliding windows faster on a
2-core machine (figures in benchmarks/RESULTS.md). The count is set with
``jax.config.update("jax_num_cpu_devices", n)``, which must run before JAX's backends start
(the first computation or device query); ``launch.py`` and the benchmarks call
:func:`configure` first. Accelerator backends are unaffected (it only shapes the CPU platform).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from socseg_jax.core.errors import UserError

FLAG = "--xla_force_host_platform_device_count"
log = logging.getLogger(__name__)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under taskset or SLURM)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def batch_sizes(config: Mapping[str, Any]) -> list[int]:
    """Every positive int under a key ending in ``batch_size``, at any depth of the config."""
    found: list[int] = []
    for key, value in config.items():
        if hasattr(value, "items"):  # dicts and ConfigDicts (not a registered Mapping)
            found += batch_sizes(value)
        elif str(key).endswith("batch_size") and isinstance(value, int) and value > 0:
            found.append(value)
    return found


def host_device_count(cores: int, sizes: Iterable[int], processes: int = 1) -> int:
    """Largest device count <= ``cores`` that splits every global batch evenly.

    Each of ``processes`` processes gets that many devices, so every batch size must be a
    multiple of ``count * processes``.
    """
    sizes = list(sizes)
    for count in range(max(cores, 1), 0, -1):
        if all(size % (count * processes) == 0 for size in sizes):
            return count
    return 1


def configure(config: Mapping[str, Any], cores: int | None = None) -> int:
    """Sets the host device count for this process from ``config.cpu_devices`` (0 = auto).

    Auto uses one device per usable core, reduced until every batch size of the config splits
    evenly; 1 keeps XLA's default (one device, every op threaded). A count the user set
    (``--xla_force_host_platform_device_count`` in ``XLA_FLAGS`` or ``JAX_NUM_CPU_DEVICES``) is
    respected. Returns the count that applies (0 when JAX's backends had already started and
    the count can no longer take effect).
    """
    requested = int(config.get("cpu_devices", 0) or 0)
    if requested < 0:
        raise UserError(f"cpu_devices must be >= 0 (0 = one per core), got {requested}")
    flags = os.environ.get("XLA_FLAGS", "")
    if FLAG in flags:
        return int(flags.split(FLAG + "=")[1].split()[0])
    if os.environ.get("JAX_NUM_CPU_DEVICES"):
        return int(os.environ["JAX_NUM_CPU_DEVICES"])
    distributed = config.get("distributed") or {}
    processes = int(
        distributed.get("num_processes", 0) or os.environ.get("JAX_NUM_PROCESSES", "1") or 1
    )
    count = requested or host_device_count(
        cores or usable_cores(), batch_sizes(config), max(processes, 1)
    )
    if count > 1:
        import jax

        try:
            jax.config.update("jax_num_cpu_devices", count)
        except RuntimeError:  # the backends started already: too late for this process
            log.warning("JAX's backends already started: jax_num_cpu_devices cannot be set")
            return 0
    return count
