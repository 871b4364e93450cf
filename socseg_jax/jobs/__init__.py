"""The jobs `socseg` / `launch.py` dispatch on (config.job): one module per job, each with
``run(config, workdir)``, registered in one table."""

from __future__ import annotations

import importlib
from typing import Any

from ml_collections import ConfigDict

from socseg_jax.core.errors import UserError, suggest

# job name (a module under socseg_jax.jobs, imported on use: a job loads only what it needs)
# -> what it does, in one line (`socseg --help`)
JOBS: dict[str, str] = {
    "prepare": "raw SEM + EDS samples -> EDS-guided labels, QA pictures, TFDS shards",
    "train": "train the U-Net on prepared shards (one CPU, GPUs, TPUs, many hosts)",
    "evaluate": "score a checkpoint on a prepared split or on images with reference labels",
    "segment": "an archive of SEM images -> label maps, overlays, phase fractions (summary.csv)",
    "analyze": "label maps -> microstructure metrics, groups, series plots, report.html",
    "quickstart": "simulate, prepare, train, segment and score the embedded data (CPU, minutes)",
    "benchmark": "training, inference and input-pipeline throughput on this machine",
}


def run_job(config: ConfigDict, workdir: str | None) -> Any:
    """Runs config.job (after JAX's multi-host initialisation, when configured)."""
    job = config.get("job")
    if job not in JOBS:
        raise UserError(f"unknown job {job!r} in config.job{suggest(str(job), JOBS)}")
    from socseg_jax.runtime.distributed import maybe_initialize

    maybe_initialize(config)
    return importlib.import_module(f"socseg_jax.jobs.{job}").run(config, workdir)
