"""job=train: trains on config.dataset_dir; checkpoints and logs in --workdir."""

from __future__ import annotations

from typing import Any

from ml_collections import ConfigDict

from socseg_jax.jobs.job_checks import require, require_workdir


def run(config: ConfigDict, workdir: str | None) -> dict[str, Any]:
    """Checks the dataset, then ``training.train.train_and_evaluate``."""
    from data_prep.tfds_builder import resolve_dataset_dir
    from socseg_jax.training.train import train_and_evaluate

    require(config, "dataset_dir")
    resolve_dataset_dir(config.dataset_dir)
    return train_and_evaluate(config, require_workdir(config, workdir))
