"""job=prepare: raw SEM + EDS samples in config.raw_dir → TFDS shards in config.output_dir."""

from __future__ import annotations

import logging
from typing import Any

from ml_collections import ConfigDict

from socseg_jax.jobs.job_checks import require

log = logging.getLogger(__name__)


def run(config: ConfigDict, workdir: str | None) -> dict[str, Any]:
    """Prepares every sample (see data_prep.prepare); returns the report."""
    from data_prep.prepare.run import prepare

    require(config, "raw_dir", "output_dir")
    report = prepare(config.raw_dir, config.output_dir, config.prepare, config.seed)
    log.info(
        "prepared %d samples (%d failed) → %s",
        report["num_prepared"], len(report["failed"]), report["dataset_path"],
    )
    return report
