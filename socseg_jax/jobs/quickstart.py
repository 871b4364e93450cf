"""job=quickstart: the whole pipeline on simulated data, scored against the true phases.

simulate raw SEM + EDS → prepare (register, EDS labels, patches, TFDS) → train the U-Net →
segment the held-out test images → score them against the TRUE phase maps and the EDS
labels, next to a multi-Otsu baseline → `<workdir>/report/metrics.json`, figures, CSV.
"""

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from ml_collections import ConfigDict

from data_prep import synthetic
from data_prep.prepare.run import prepare
from data_prep.readers.images import read_grey
from socseg_jax.analysis.records import Recorder
from socseg_jax.core import dataset_layout
from socseg_jax.core.atomic import write_json_atomic
from socseg_jax.core.intensity import normalize_sem, to_model_input
from socseg_jax.core.phases import CLASS_NAMES, label_fractions
from socseg_jax.evaluation import baselines, figures
from socseg_jax.evaluation.references import score_pairs
from socseg_jax.inference.archive import ImageJob
from socseg_jax.inference.archive_loop import segment_images
from socseg_jax.inference.image_input import resolve_normalisation
from socseg_jax.inference.loading import build_predictor
from socseg_jax.inference.shift import read_reference
from socseg_jax.jobs import analyze
from socseg_jax.jobs.job_checks import require_workdir
from socseg_jax.training import checkpoints
from socseg_jax.training.train import train_and_evaluate

log = logging.getLogger(__name__)


def run(config: ConfigDict, workdir: str | None) -> dict[str, Any]:
    """Runs every stage into `workdir` and returns the metrics written to the report."""
    workdir = require_workdir(config, workdir)
    raw_dir, data_dir = workdir / "raw", workdir / "data"
    train_dir, segment_dir, report_dir = workdir / "train", workdir / "segment", workdir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)

    log.info("1/5 simulating %d SEM + EDS samples in %s", config.synthetic.num_samples, raw_dir)
    synthetic.write_raw_dataset(
        raw_dir,
        num_samples=config.synthetic.num_samples,
        seed=config.seed,
        shape=tuple(config.synthetic.shape),
        oxidation_times=tuple(config.synthetic.oxidation_times),
    )
    log.info("2/5 preparing EDS-guided labels and TFDS shards in %s", data_dir)
    prepared = prepare(raw_dir, data_dir, config.prepare, seed=config.seed)
    test_names = prepared["splits"]["test"]

    log.info("3/5 training the U-Net for %d steps in %s", config.num_train_steps, train_dir)
    train_config = ConfigDict(config.to_dict())
    train_config.dataset_dir = str(data_dir)
    train_and_evaluate(train_config, train_dir)

    log.info("4/5 segmenting the %d held-out test images into %s", len(test_names), segment_dir)
    model, _, _ = checkpoints.load_model(train_dir)
    reference = read_reference(train_dir)
    predictor = build_predictor([model], config.predict,
                                reference if config.segment.calibrate_classes else None)
    jobs = [ImageJob(raw_dir / n / "sem.tif", Path(n) / "sem.tif") for n in test_names]
    analysis = ConfigDict(config.analysis.to_dict())
    analysis.input, analysis.output_dir = str(segment_dir), str(report_dir / "analysis")
    analysis.label_encoding = "ids"
    segment_images(predictor, jobs, segment_dir, config.segment, "summary.csv",
                   reference, Recorder.from_config(analysis),
                   resolve_normalisation("auto", str(train_dir)))

    log.info("5/5 scoring against the true phases, the EDS labels and multi-Otsu")
    metrics = score_test_images(raw_dir, data_dir, segment_dir, prepared, jobs)
    write_json_atomic(report_dir / "metrics.json", metrics)
    log.info("microstructure of the segmented test images → %s", analysis.output_dir)
    analyze.run(analysis, None)
    print(summary_table(metrics))
    log.info("report written to %s", report_dir)
    return metrics


def score_test_images(
    raw_dir: Path, data_dir: Path, segment_dir: Path, prepared: dict, jobs: list
) -> dict[str, Any]:
    """Scores U-Net, EDS labels and multi-Otsu on the test images; writes figure and CSV."""
    train_names = prepared["splits"]["train"]
    grey_order = baselines.class_grey_order(
        [to_model_input(tifffile.imread(dataset_layout.image_path(data_dir, n)))
         for n in train_names],
        [tifffile.imread(dataset_layout.label_path(data_dir, n)) for n in train_names],
    )
    pairs: dict[str, list] = {"unet": [], "unet_vs_eds": [], "otsu": [], "eds_labels": []}
    figure_rows, fraction_rows = [], []
    for job in jobs:
        name = job.relative.parent.name
        truth = tifffile.imread(raw_dir / name / "truth.tif")
        eds = tifffile.imread(dataset_layout.label_path(data_dir, name))
        unet = tifffile.imread(job.outputs(segment_dir)[0])
        image = normalize_sem(read_grey(job.path))
        otsu = baselines.multi_otsu_labels(image, grey_order)
        pairs["unet"].append((truth, unet))
        pairs["unet_vs_eds"].append((eds, unet))
        pairs["otsu"].append((truth, otsu))
        pairs["eds_labels"].append((truth, eds))
        figure_rows.append(
            (name, image, {"true phases": truth, "EDS labels": eds, "U-Net": unet,
                           "multi-Otsu": otsu})
        )
        for source, labels in (("truth", truth), ("eds", eds), ("unet", unet), ("otsu", otsu)):
            fraction_rows.append([name, source] + label_fractions(labels))
    report_dir = segment_dir.parent / "report"
    figures.save_comparison(report_dir / "test_comparison.png", figure_rows)
    _write_fractions(report_dir / "phase_fractions.csv", fraction_rows)
    metrics = {key: _brief(score_pairs(p)) for key, p in pairs.items()}
    metrics["test_images"] = [job.relative.parent.name for job in jobs]
    return metrics


def _brief(scores: dict[str, Any]) -> dict[str, Any]:
    keys = ("mean_iou", "per_class_iou", "pixel_accuracy", "mean_dice", "per_class_dice")
    return {k: _jsonable(scores[k]) for k in keys}


def _jsonable(value: Any) -> Any:
    if isinstance(value, list | tuple | np.ndarray):
        return [None if np.isnan(v) else round(float(v), 4) for v in value]
    return round(float(value), 4)


def _write_fractions(path: Path, rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "source"] + [f"{c}_percent" for c in CLASS_NAMES])
        writer.writerows([r[:2] + [round(v, 3) for v in r[2:]] for r in rows])


def summary_table(metrics: dict[str, Any]) -> str:
    """The headline numbers, one line per method, per-class IoU in the phase order."""
    header = f"{'held-out test images vs true phases':<38}{'mIoU':>7}{'acc':>7}  " + "".join(
        f"{c:>7}" for c in CLASS_NAMES
    )
    lines = [header, "-" * len(header)]
    labels = {
        "unet": "U-Net (socseg_jax)",
        "eds_labels": "EDS labels (training targets)",
        "otsu": "multi-Otsu baseline",
        "unet_vs_eds": "U-Net vs EDS labels",
    }
    for key, text in labels.items():
        m = metrics[key]
        per_class = "".join(f"{v:>7.3f}" if v is not None else f"{'-':>7}"
                            for v in m["per_class_iou"])
        lines.append(f"{text:<38}{m['mean_iou']:>7.3f}{m['pixel_accuracy']:>7.3f}  {per_class}")
    return "\n".join(lines)

