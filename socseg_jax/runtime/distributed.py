"""Multi-host setup and the global batch: one mesh over every device of every process.

Each process reads only its own slice of every global batch; `global_batch` assembles the
slices into one array sharded along the mesh's 'data' axis.
"""

import logging
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from ml_collections import ConfigDict

from socseg_jax.core.errors import UserError

log = logging.getLogger(__name__)


def maybe_initialize(config: ConfigDict) -> None:
    """Calls jax.distributed.initialize when the config or environment asks for it.

    Set config.distributed.coordinator_address / num_processes / process_id, or the
    JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID environment variables
    (clusters such as SLURM or Cloud TPU are detected by JAX itself with `auto=True`).
    """
    dist = config.get("distributed") or ConfigDict()
    address = dist.get("coordinator_address") or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if not address and not dist.get("auto", False):
        return
    kwargs: dict[str, Any] = {}
    if address:
        kwargs["coordinator_address"] = address
        kwargs["num_processes"] = int(
            dist.get("num_processes") or os.environ.get("JAX_NUM_PROCESSES", "1")
        )
        kwargs["process_id"] = int(
            dist.get("process_id", -1) if dist.get("process_id", -1) >= 0
            else os.environ.get("JAX_PROCESS_ID", "0")
        )
    jax.distributed.initialize(**kwargs)
    log.info(
        "process %d of %d, %d local of %d devices",
        jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count(),
    )


def data_mesh() -> Mesh:
    """A 1-D mesh over every device of every process, axis 'data' (XLA decides the rest)."""
    return jax.make_mesh(
        (jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,)
    )


def check_batch_size(batch_size: int) -> None:
    """The global batch must split evenly over the devices (and so over the processes)."""
    devices = jax.device_count()
    if batch_size <= 0 or batch_size % devices:
        raise UserError(
            f"batch_size={batch_size} must be a positive multiple of the device count ({devices})"
        )


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's slice of the global batch → global arrays sharded along 'data'."""
    sharding = NamedSharding(mesh, P("data"))
    return {
        key: jax.make_array_from_process_local_data(sharding, value)
        for key, value in local.items()
    }


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Places a pytree (params, optimizer state) on every device of the mesh."""
    return jax.device_put(tree, NamedSharding(mesh, P()))
