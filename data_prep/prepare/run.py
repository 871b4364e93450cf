"""Preparing a whole raw folder: every sample, the split by image, the TFDS shards, reports."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from ml_collections import ConfigDict
from tqdm import tqdm

from data_prep.errors import ImageReadError, SampleError
from data_prep.labels.refinement import REFINEMENTS
from data_prep.patches import SPLITS, sample_origins, split_by_source
from data_prep.prepare.checks import mean_iou
from data_prep.prepare.report_html import report_html
from data_prep.prepare.sample import SampleReport, prepare_sample
from data_prep.registration.field import CONVENTIONS
from data_prep.registration.gate import OUTLIER_ACTIONS, quality_outliers
from data_prep.registration.maps import RegistrationError
from data_prep.samples.files import SampleFiles, discover_samples, read_manifest
from data_prep.tfds_builder import PreparedSample, build_dataset, remove_incomplete
from socseg_jax.core import dataset_layout
from socseg_jax.core.atomic import remove_temporaries, write_json_atomic, write_text_atomic
from socseg_jax.core.errors import UserError
from socseg_jax.core.intensity import normalisation_settings
from socseg_jax.core.phases import CLASS_NAMES, NUM_CLASSES
from socseg_jax.core.run_lock import LOCK_NAME, run_lock

log = logging.getLogger(__name__)

SAMPLE_ERRORS = (ImageReadError, SampleError, RegistrationError)
# Settings that do not change the labels or records: left out of the dataset's config hash.
NOT_HASHED = ("manifest", "n_jobs", "max_image_bytes")


def prepare(
    raw_dir: str | Path,
    output_dir: str | Path,
    settings: ConfigDict,
    seed: int = 0,
) -> dict[str, Any]:
    """Prepares every sample under `raw_dir` and writes the TFDS shards under `output_dir`.

    ``settings``: config.prepare (configs/sections.py ``prepare_config``). Returns the report
    (also saved as `<output_dir>/prepare_report.json` and `.html`). Holds the output folder's
    run lock (``core.run_lock``) and first removes what a killed run left there. Raises
    UserError when no sample could be prepared (the report, with every reason, is written).
    """
    raw_dir, output_dir = Path(raw_dir), Path(output_dir)
    _check_settings(settings)
    samples = _discover(raw_dir, settings)
    with run_lock(output_dir, "prepare"):
        leftovers = remove_temporaries(output_dir, skip_marker=LOCK_NAME)
        leftovers += remove_incomplete(output_dir)
        if leftovers:
            log.info("removed %d leftovers of an interrupted run in %s", leftovers, output_dir)
        return _prepare_samples(raw_dir, output_dir, settings, seed, samples)


def _prepare_samples(
    raw_dir: Path, output_dir: Path, settings: ConfigDict, seed: int,
    samples: list[SampleFiles],
) -> dict[str, Any]:
    prepared: dict[str, PreparedSample] = {}
    reports: list[SampleReport] = []
    bar = tqdm(samples, desc="prepare: register + label samples", unit="sample")
    for sample in bar:
        name = sample.name
        try:
            paths, report = prepare_sample(sample, output_dir, settings, seed, progress=bar)
            prepared[paths.name] = paths
        except SAMPLE_ERRORS as err:
            reason = " ".join(str(err).split())
            if f"'{name}'" not in reason and name not in reason:
                reason = f"sample '{name}': {reason}"
            log.warning("skipping %s", reason)
            report = SampleReport(name=name, status="failed", reason=reason)
        reports.append(report)
    _registration_outliers(reports, prepared, output_dir, settings)
    if prepared:
        result = _write_dataset(raw_dir, output_dir, settings, seed, prepared, reports)
    else:
        result = _run_report(raw_dir, settings, reports, None, {s: [] for s in SPLITS},
                             dict.fromkeys(SPLITS, 0), {})
    write_json_atomic(output_dir / dataset_layout.REPORT_JSON, result)
    write_text_atomic(output_dir / dataset_layout.REPORT_HTML, report_html(result, output_dir))
    if not prepared:
        raise UserError(f"no sample in {raw_dir} could be prepared; the reasons are above and "
                        f"in {output_dir / dataset_layout.REPORT_JSON}")
    if result["labels_truth_miou"] is not None:
        log.info(
            "EDS labels vs truth: pooled mean IoU %.4f (without refinement: %s)",
            result["labels_truth_miou"], result["labels_truth_miou_without_refinement"],
        )
    return result


def _write_dataset(
    raw_dir: Path,
    output_dir: Path,
    settings: ConfigDict,
    seed: int,
    prepared: dict[str, PreparedSample],
    reports: list[SampleReport],
) -> dict[str, Any]:
    """Splits the prepared samples by image, writes the shards; returns the run's report."""
    split_names = split_by_source(
        list(prepared), settings.val_fraction, settings.test_fraction, seed
    )
    splits = {s: [prepared[n] for n in split_names[s]] for s in SPLITS}
    shard_settings = {k: v for k, v in settings.to_dict().items() if k not in NOT_HASHED}
    shard_settings |= {"seed": seed, "samples": split_names}
    patch_counts = {
        s: sum(_num_patches(p, shard_settings, seed) for p in splits[s]) for s in SPLITS
    }
    metadata = {
        "class_fractions": {s: _split_class_fractions(splits[s]) for s in SPLITS if splits[s]},
        "class_names": list(CLASS_NAMES),
        "pixel_size_nm": {r.name: r.pixel_size_nm for r in reports if r.status == "ok"},
        "patches": patch_counts,
        "preparation": {k: v for k, v in shard_settings.items() if k != "samples"},
        "normalisation": normalisation_settings(int(settings.local_contrast_px)),
    }
    dataset_path = build_dataset(output_dir, shard_settings, splits, metadata)
    return _run_report(raw_dir, settings, reports, dataset_path, split_names, patch_counts,
                       metadata["class_fractions"])


def _run_report(
    raw_dir: Path,
    settings: ConfigDict,
    reports: list[SampleReport],
    dataset_path: Path | None,
    split_names: dict[str, list[str]],
    patch_counts: dict[str, int],
    class_fractions: dict[str, list[float]],
) -> dict[str, Any]:
    """The run's report (prepare_report.json); ``dataset_path`` None: no dataset written."""
    ok = [r for r in reports if r.status == "ok"]
    scored = [np.asarray(r.truth_confusion) for r in ok if r.truth_confusion is not None]
    unrefined = [
        np.asarray(r.truth_confusion_without_refinement)
        for r in ok
        if r.truth_confusion_without_refinement is not None
    ]
    return {
        "raw_dir": str(raw_dir),
        "dataset_path": str(dataset_path) if dataset_path is not None else None,
        "splits": split_names,
        "num_prepared": len(ok),
        "failed": [{"sample": r.name, "reason": r.reason} for r in reports if r.status != "ok"],
        "refused": [r.name for r in reports if r.status == "refused"],  # registration outliers
        "patches": patch_counts,
        "class_fractions": class_fractions,
        "normalisation": normalisation_settings(int(settings.local_contrast_px)),
        # pooled over the samples that have a truth.tif (simulated data)
        "labels_truth_miou": round(mean_iou(sum(scored)), 4) if scored else None,
        "labels_truth_miou_without_refinement": (
            round(mean_iou(sum(unrefined)), 4) if unrefined else None
        ),
        "samples": [asdict(r) for r in reports],
        "settings": settings.to_dict(),
    }


def _check_settings(settings: ConfigDict) -> None:
    """UserError naming a prepare setting with a value outside its choices."""
    choices = {
        "refine_labels": REFINEMENTS,
        "data_bar_convention": CONVENTIONS,
        "registration_outliers": OUTLIER_ACTIONS,
    }
    for key, allowed in choices.items():
        if settings[key] not in allowed:
            raise UserError(f"prepare.{key} must be one of {allowed}, got {settings[key]!r}")


def _registration_outliers(
    reports: list[SampleReport],
    prepared: dict[str, PreparedSample],
    output_dir: Path,
    settings: ConfigDict,
) -> None:
    """Refuses (default) or warns about samples registered far worse than the run's others.

    A refused sample's images, labels and confidence map are deleted before any shard is
    written, so nothing misregistered is left; its registration picture stays, to look at.
    """
    qualities = {
        r.name: r.registration_quality
        for r in reports
        if r.status == "ok" and r.registration_quality is not None
    }
    outliers = quality_outliers(
        qualities, float(settings.registration_outlier_spreads),
        float(settings.registration_outlier_margin),
    )
    for report in reports:
        if report.name not in outliers:
            continue
        if settings.registration_outliers == "warn":
            report.warn(outliers[report.name])
            continue
        paths = prepared.pop(report.name)
        for path in (paths.label_path, paths.confidence_path, paths.image_path,
                     *(dataset_layout.qa_path(output_dir, report.name, k)
                       for k in ("overlay", "confidence"))):
            path.unlink(missing_ok=True)
        report.status = "refused"
        report.reason = f"sample '{report.name}': {outliers[report.name]}"
        log.warning("refusing %s", report.reason)


def _discover(raw_dir: Path, settings: ConfigDict) -> list[SampleFiles]:
    if settings.manifest:
        path = Path(settings.manifest)
        return read_manifest(path if path.is_absolute() else raw_dir / path)
    return discover_samples(raw_dir)


def _num_patches(sample: PreparedSample, settings: dict[str, Any], seed: int) -> int:
    with tifffile.TiffFile(sample.label_path) as tif:
        shape = tif.pages.first.shape[:2]
    patch = int(settings["patch_size"])
    if min(shape) < patch:
        return 0
    return len(sample_origins(shape, patch, settings, sample.name, seed))


def _split_class_fractions(samples: list[PreparedSample]) -> list[float]:
    """Pixel fraction of each class over the label maps of one split."""
    counts = np.zeros(NUM_CLASSES, np.int64)
    for sample in samples:
        counts += np.bincount(tifffile.imread(sample.label_path).ravel(), minlength=len(counts))
    return (counts / max(counts.sum(), 1)).round(4).tolist()
