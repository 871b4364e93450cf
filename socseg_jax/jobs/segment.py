"""job=segment: folders of SEM images → label maps, overlays and a phase-fraction summary
(the loop itself: ``socseg_jax.inference.archive_loop``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ml_collections import ConfigDict

from socseg_jax.analysis.records import Recorder
from socseg_jax.core.errors import UserError
from socseg_jax.core.run_lock import require_room
from socseg_jax.inference import outputs
from socseg_jax.inference.archive import discover_images, shard_jobs
from socseg_jax.inference.archive_loop import SUMMARY_NAME, output_lock, segment_images
from socseg_jax.inference.loading import load_for_segment
from socseg_jax.jobs.job_checks import require

log = logging.getLogger(__name__)


def run(config: ConfigDict, workdir: str | None) -> list[dict[str, Any]]:
    """config.input (folder, glob or list file) with config.checkpoint into config.output_dir.

    With several hosts (JAX multi-process, or config.shard_index/num_shards) each takes every
    n-th image and writes `summary-<i>-of-<n>.csv`. Raises UserError when every image failed
    (the exit status is then non-zero).
    """
    import jax

    require(config, "input", "output_dir", "checkpoint")
    outputs.check_options(config)  # bad option values fail before the models load
    jobs = discover_images(config.input)
    if not jobs:
        raise UserError(f"no images (tif, tiff, png, jpg, jpeg) found in {config.input}")
    num_shards = config.num_shards or jax.process_count()
    shard_index = jax.process_index() if config.shard_index < 0 else config.shard_index
    summary_name = SUMMARY_NAME
    if num_shards > 1:
        jobs = shard_jobs(jobs, shard_index, num_shards)
        summary_name = f"summary-{shard_index:05d}-of-{num_shards:05d}.csv"
    # The folder writable and ours before the models load, or stop; segment_images takes the
    # same lock again (re-entrant) for its other callers (napari, benchmarks, tests).
    with output_lock(config.output_dir, summary_name):
        require_room(config.output_dir, outputs.bytes_needed(jobs, config))
        rows = _segment(config, jobs, summary_name, shard_index, num_shards)
    if rows and all(row["status"] == "failed" for row in rows):
        raise UserError(f"every image failed; reasons in {config.output_dir}/{summary_name}")
    if config.analyze:
        _analyze_outputs(config)
    return rows


def _segment(config: ConfigDict, jobs: list, summary_name: str, shard_index: int,
             num_shards: int) -> list[dict[str, Any]]:
    """Loads the models and segments ``jobs`` (the output folder locked)."""
    predictor, normalisation, reference = load_for_segment(config)
    log.info("SEM normalisation: %s", normalisation)
    if reference is None:
        log.info("no shift reference with %s: images are not checked against the training "
                 "images", config.checkpoint)
    elif (reference_tta := reference.get("tta", "none")) != config.predict.tta:
        log.warning("the shift reference was predicted with tta=%s, this run uses tta=%s: "
                    "the uncertainty features (entropy, low-confidence area) are not "
                    "comparable and shift scores read higher", reference_tta,
                    config.predict.tta)
    log.info("%d images to segment (shard %d of %d)", len(jobs), shard_index, num_shards)
    recorder = Recorder.from_config(analysis_settings(config)) if config.analyze else None
    return segment_images(predictor, jobs, config.output_dir, config, summary_name, reference,
                          recorder, normalisation)


def analysis_settings(config: ConfigDict) -> ConfigDict:
    """job=analyze's config for this run's label maps → <output_dir>/analysis."""
    settings = ConfigDict(config.analysis.to_dict())
    settings.input = config.output_dir
    settings.output_dir = str(Path(config.output_dir) / "analysis")
    settings.pixel_size_nm = settings.pixel_size_nm or config.pixel_size_nm
    settings.label_encoding = "grey" if config.label_encoding == "grey" else "ids"
    return settings


def _analyze_outputs(config: ConfigDict) -> None:
    """job=analyze over this run's label maps (the records made while segmenting are reused)."""
    from socseg_jax.jobs import analyze

    settings = analysis_settings(config)
    log.info("analysis report of the label maps in %s", settings.output_dir)
    analyze.run(settings, None)
