"""The jobs `socseg` / `launch.py` dispatch on (config.job): one module per job, each with
``run(config, workdir)``, registered in one table."""

from __future__ import annotations

import importlib
from typing import Any

from ml_collections import ConfigDict

from socseg_jax.core.errors import UserError

# job name -> module under socseg_jax.jobs (imported on use: a job loads only what it needs)
JOBS = ("prepare", "train", "evaluate", "segment", "analyze", "quickstart", "benchmark")


def run_job(config: ConfigDict, workdir: str | None) -> Any:
    """Runs config.job (after JAX's multi-host initialisation, when configured)."""
    job = config.get("job")
    if job not in JOBS:
        raise UserError(f"unknown job {job!r} in config.job; choose one of {sorted(JOBS)}")
    from socseg_jax.runtime.distributed import maybe_initialize

    maybe_initialize(config)
    return importlib.import_module(f"socseg_jax.jobs.{job}").run(config, workdir)
