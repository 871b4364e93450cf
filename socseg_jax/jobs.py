"""The jobs `launch.py` dispatches on (config.job), each checking its keys before work starts."""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml_collections import ConfigDict

log = logging.getLogger(__name__)


def _require(config: ConfigDict, *keys: str) -> None:
    """Fails with one clear line when a key the job needs is missing or empty."""
    for key in keys:
        if not config.get(key):
            raise ValueError(f"config.{key} is required for job={config.job}")


def _require_workdir(config: ConfigDict, workdir: str | None) -> Path:
    if not workdir:
        raise ValueError(f"--workdir is required for job={config.job}")
    path = Path(workdir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_prepare(config: ConfigDict, workdir: str | None) -> Any:
    """Raw SEM + EDS samples in config.raw_dir → TFDS shards in config.output_dir."""
    from data_prep.prepare import prepare

    _require(config, "raw_dir", "output_dir")
    report = prepare(config.raw_dir, config.output_dir, config.prepare.to_dict(), config.seed)
    log.info(
        "prepared %d samples (%d failed) → %s",
        report["num_prepared"], len(report["failed"]), report["dataset_path"],
    )
    return report


def run_train(config: ConfigDict, workdir: str | None) -> Any:
    """Trains on config.dataset_dir, checkpoints and logs in --workdir."""
    from data_prep.tfds_builder import resolve_dataset_dir
    from socseg_jax.train import train_and_evaluate

    _require(config, "dataset_dir")
    resolve_dataset_dir(config.dataset_dir)
    return train_and_evaluate(config, _require_workdir(config, workdir))


def run_evaluate(config: ConfigDict, workdir: str | None) -> Any:
    """Scores a checkpoint on a dataset split, or on full images against reference labels."""
    from socseg_jax.evaluate_job import evaluate_checkpoint

    _require(config, "checkpoint")
    if not config.get("dataset_dir") and not (config.get("input") and config.get("truth_dir")):
        raise ValueError("job=evaluate needs config.dataset_dir, or config.input and truth_dir")
    return evaluate_checkpoint(config, workdir)


def run_segment(config: ConfigDict, workdir: str | None) -> Any:
    """Segments config.input (folder, glob or list file) with config.checkpoint."""
    from socseg_jax.segment import run_segment_job

    _require(config, "input", "output_dir", "checkpoint")
    return run_segment_job(config)


def run_quickstart(config: ConfigDict, workdir: str | None) -> Any:
    """The whole pipeline on simulated data, in --workdir."""
    from socseg_jax.quickstart import run_quickstart as quickstart

    return quickstart(config, _require_workdir(config, workdir))


def run_benchmark(config: ConfigDict, workdir: str | None) -> Any:
    """Throughput of the U-Net on this machine's devices → <workdir>/benchmark.json + a table."""
    from socseg_jax.benchmark import run_benchmark as benchmark

    return benchmark(config, _require_workdir(config, workdir))


JOBS: dict[str, Callable[[ConfigDict, str | None], Any]] = {
    "prepare": run_prepare,
    "train": run_train,
    "evaluate": run_evaluate,
    "segment": run_segment,
    "quickstart": run_quickstart,
    "benchmark": run_benchmark,
}


def run_job(config: ConfigDict, workdir: str | None) -> Any:
    """Dispatches on config.job."""
    job = config.get("job")
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r} in config.job; choose one of {sorted(JOBS)}")
    from socseg_jax.distributed import maybe_initialize

    maybe_initialize(config)
    return JOBS[job](config, workdir)
