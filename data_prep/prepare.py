"""job=prepare: raw SEM + EDS samples → registered EDS-guided labels → patches → TFDS shards.

Per sample it writes the normalised SEM image, the full-size label map
(`labels/<sample>_labels.tif`, uint8 class ids), a confidence map and QA overlays; then it
splits the samples by source image and writes the shards. A sample that fails is reported
in one line and listed in `prepare_report.json` (plus `prepare_report.html`); the others are
still prepared.

Settings (`configs/prepare.py`; all but the first five optional, read with defaults):
patch_size, stride, val_fraction, test_fraction, min_registration_quality;
manifest (CSV naming the files, else one folder per sample), data_bar (`auto`, rows, `none`),
element_pattern (regex for EDS file names), label_encoding (`auto`, `ids`, `grey`, `ilastik`),
registration (`translation`, `similarity`, `affine`), refine_labels (`mean_field`, `forest`,
`none`),
label_thresholds (dict, see `labels.eds_evidence`), sampler (`grid`, `random`),
patches_per_image, max_patch_iou, augment_to (train records after offline augmentation),
image_dtype (`uint8`, `uint16`), channels (SEM detectors: sem.tif, sem2.tif, ...), n_jobs.
"""

import html
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data_prep import align, io, labels, phases, qa_pictures
from data_prep.patches import SPLITS, sample_origins, split_by_source
from data_prep.tfds_builder import PreparedSample, build_dataset

log = logging.getLogger(__name__)

QA_MAX_SIDE = 1536  # longest side (px) of the QA pictures
SAMPLE_ERRORS = (io.ImageReadError, io.SampleError, align.RegistrationError)
# Settings that change the labels or records: part of the dataset's config hash.
_SHARD_KEYS = (
    "patch_size",
    "stride",
    "val_fraction",
    "test_fraction",
    "min_registration_quality",
    "data_bar",
    "element_pattern",
    "label_encoding",
    "registration",
    "refine_labels",
    "label_thresholds",
    "sampler",
    "patches_per_image",
    "max_patch_iou",
    "augment_to",
    "image_dtype",
    "channels",
)
DEFAULTS: dict[str, Any] = {
    "manifest": "",
    "data_bar": "auto",
    "element_pattern": "",
    "label_encoding": "auto",
    "registration": "similarity",
    "refine_labels": "mean_field",
    "label_thresholds": {},
    "sampler": "grid",
    "patches_per_image": 0,
    "max_patch_iou": 0.25,
    "augment_to": 0,
    "image_dtype": "uint8",
    "n_jobs": 2,
    "channels": 1,
}


# EDS grid (or H5OINA step) this many times coarser than the SEM pixel: warn. On simulated
# data the labels' mIoU is 0.90 at 2x, 0.87 at 4x and 0.75 at 8x with a 3 px interaction blur
# (benchmarks/label_quality.py; nothing measured in between, so the line sits past 4x).
COARSE_EDS_SCALE = 4.5


@dataclass
class SampleReport:
    """What preparation did with one sample (or why it failed)."""

    name: str
    status: str
    reason: str = ""
    shift_yx: tuple[float, float] | None = None
    rotation_deg: float | None = None
    zoom: float | None = None
    registration_quality: float | None = None
    label_source: str = ""
    class_fractions: list[float] = field(default_factory=list)
    pixel_size_nm: float | None = None
    mean_confidence: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    truth_miou: float | None = None  # only when a truth.tif is present (simulated data)
    truth_miou_without_refinement: float | None = None
    truth_confusion: list[list[int]] | None = None
    truth_confusion_without_refinement: list[list[int]] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def confusion(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Confusion matrix (rows truth, columns prediction) of class-id maps."""
    n = phases.NUM_CLASSES
    cm = np.bincount(truth.ravel().astype(np.int64) * n + pred.ravel(), minlength=n * n)
    return cm.reshape(n, n)


def mean_iou(truth: np.ndarray, pred: np.ndarray | None = None) -> float:
    """Mean IoU over the classes present in truth or prediction (or of a confusion matrix)."""
    cm = np.asarray(truth) if pred is None else confusion(truth, pred)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    return float(np.mean(inter[union > 0] / union[union > 0]))


def _setting(settings: Mapping[str, Any], key: str) -> Any:
    value = settings.get(key, DEFAULTS.get(key))
    return DEFAULTS.get(key) if value is None else value


def prepare_sample(
    sample: Path | io.SampleFiles,
    output_dir: Path,
    min_quality: float,
    settings: Mapping[str, Any] | None = None,
    seed: int = 0,
    progress: Any = None,
) -> tuple[PreparedSample, SampleReport]:
    """Reads, registers and labels one sample; writes its full-size maps and QA overlays.

    ``progress`` (a tqdm bar) shows the current step, which matters on large images.
    """
    settings = settings or {}

    def step(name: str) -> float:
        if progress is not None:
            progress.set_postfix_str(f"{getattr(sample, 'name', sample)}: {name}")
        return time.perf_counter()

    t0 = step("read")
    raw = io.read_raw_sample(
        sample,
        data_bar=_setting(settings, "data_bar"),
        element_pattern=_setting(settings, "element_pattern") or None,
        label_encoding=_setting(settings, "label_encoding"),
        channels=int(_setting(settings, "channels")),
    )
    sem = io.normalize_sem(raw.sem)
    report = SampleReport(
        name=raw.name, status="ok", pixel_size_nm=raw.pixel_size_nm, metadata=raw.metadata
    )

    def warn(message: str) -> None:
        report.warnings.append(message)
        log.warning("sample '%s': %s", raw.name, message)

    for message in raw.warnings:
        warn(message)
    report.seconds["read"] = time.perf_counter() - t0
    stage_a = None
    aligned = None
    if raw.labels is not None:
        label_map = raw.labels.astype(np.uint8)
        confidence = np.ones(label_map.shape, np.float32)
        report.label_source = "labels file"
    else:
        t = step("register")
        aligned, registration = align.register_eds(
            sem, raw.eds, min_quality=min_quality, transform=_setting(settings, "registration")
        )
        report.seconds["register"] = time.perf_counter() - t
        report.shift_yx = tuple(float(s) for s in registration.shift_yx)
        report.rotation_deg = registration.rotation_deg
        report.zoom = registration.zoom
        report.registration_quality = float(registration.quality)
        report.metadata["registration_matrix"] = registration.matrix
        for message in _eds_resolution_warnings(max(registration.scale), raw):
            warn(message)
        t = step("label")
        thresholds = dict(_setting(settings, "label_thresholds"))
        evidence = labels.eds_evidence(sem, aligned, thresholds=thresholds)
        label_map, confidence = labels.eds_labels(sem, aligned, evidence=evidence)
        report.label_source = "EDS"
        refinement = _setting(settings, "refine_labels")
        if raw.scribbles is not None:  # the user's hand labels teach the forest
            stage_a = label_map
            try:
                label_map, confidence, notes = labels.label_from_scribbles(
                    sem,
                    evidence,
                    label_map,
                    confidence,
                    raw.scribbles,
                    seed=seed,
                    n_jobs=int(_setting(settings, "n_jobs")),
                )
            except labels.ScribbleError as err:
                raise io.SampleError(f"sample '{raw.name}', scribbles: {err}") from err
            report.label_source = "EDS + scribbles forest"
            for message in notes:
                warn(message)
        elif refinement != "none":
            stage_a = label_map
            if refinement == "mean_field":
                label_map, confidence = labels.refine_mean_field(
                    sem, evidence, label_map, confidence
                )
            else:
                label_map, confidence = labels.refine_labels(
                    sem,
                    evidence,
                    label_map,
                    confidence,
                    seed=seed,
                    n_jobs=int(_setting(settings, "n_jobs")),
                )
            report.label_source = f"EDS + {refinement.replace('_', '-')} refinement"
        report.seconds["label"] = time.perf_counter() - t
    counts = np.bincount(label_map.ravel(), minlength=phases.NUM_CLASSES)
    report.class_fractions = (counts / counts.sum()).round(4).tolist()
    report.mean_confidence = round(float(confidence.mean()), 4)
    _score_against_truth(sample, raw, label_map, stage_a, report)

    t = step("write")
    paths = PreparedSample(
        name=raw.name,
        image_path=output_dir / "images" / f"{raw.name}.tif",
        label_path=output_dir / "labels" / f"{raw.name}_labels.tif",
        confidence_path=output_dir / "labels" / f"{raw.name}_confidence.tif",
    )
    image = sem
    if raw.extra_channels:  # further detectors, each normalised like the first
        image = np.stack([sem] + [io.normalize_sem(c) for c in raw.extra_channels], axis=-1)
    if _setting(settings, "image_dtype") == "uint16":
        image = np.round(image * 65535).astype(np.uint16)
    else:
        image = np.round(image * 255).astype(np.uint8)
    io.write_tiff_atomic(paths.image_path, image)
    io.write_tiff_atomic(paths.label_path, label_map)
    io.write_tiff_atomic(paths.confidence_path, np.round(confidence * 255).astype(np.uint8))
    qa = output_dir / "qa"
    step = max(1, math.ceil(max(sem.shape) / QA_MAX_SIDE))  # previews: quick on huge images
    view = (slice(None, None, step), slice(None, None, step))
    title = f"{raw.name} labels" + (f" (1:{step} preview)" if step > 1 else "")
    phases.save_overlay_png(qa / f"{raw.name}_overlay.png", sem[view], label_map[view], title)
    qa_pictures.save_confidence_png(qa / f"{raw.name}_confidence.png", confidence[view], raw.name)
    if aligned is not None:
        rot = report.rotation_deg or 0.0
        qa_pictures.save_registration_png(
            qa / f"{raw.name}_registration.png",
            sem[view],
            {el: m[view] for el, m in aligned.items()},
            f"{raw.name}: EDS shift ({report.shift_yx[0]:.1f}, {report.shift_yx[1]:.1f}) px, "
            f"rotation {rot:.2f}°, quality {report.registration_quality:.2f}",
        )
    report.seconds["write"] = time.perf_counter() - t
    report.seconds = {k: round(v, 3) for k, v in report.seconds.items()}
    return paths, report


def _eds_resolution_warnings(grid_scale: float, raw: io.RawSample) -> list[str]:
    """Warnings about EDS maps too coarse for thin phases, or a pixel size that disagrees
    with the H5OINA step. ``grid_scale``: SEM pixels per EDS pixel of the registration."""
    messages = []
    coarse = grid_scale
    from_steps = raw.metadata.get("eds_scale_from_steps")
    if from_steps and 0.5 < from_steps / coarse < 2.0:
        coarse = max(coarse, from_steps)  # maps exported on a finer grid than acquired
    elif from_steps:
        messages.append(
            f"the pixel size ({raw.pixel_size_nm:g} nm) and the EDS step give maps "
            f"{from_steps:.3g}x coarser than the SEM, the grids {coarse:.3g}x: check the "
            "pixel size"
        )
    if coarse > COARSE_EDS_SCALE:
        advice = (
            ""
            if raw.scribbles is not None
            else ", or add scribbles.png (a few strokes in each phase)"
        )
        messages.append(
            f"EDS maps are {coarse:.1f}x coarser than the SEM image: phases narrower than "
            f"~{coarse:.0f} px (thin NiO shells, small Ni cores) get unreliable labels; "
            f"check the QA overlay{advice}"
        )
    return messages


def _score_against_truth(
    sample: Path | io.SampleFiles,
    raw: io.RawSample,
    label_map: np.ndarray,
    stage_a: np.ndarray | None,
    report: SampleReport,
) -> None:
    """Mean IoU against `truth.tif` when the sample folder has one (simulated data)."""
    folder = sample if isinstance(sample, Path) else sample.folder
    truth_path = folder / "truth.tif" if folder is not None else None
    if truth_path is None or not truth_path.is_file():
        return
    try:
        truth = io.read_grey(truth_path).astype(np.uint8)[: label_map.shape[0]]
    except io.ImageReadError:
        return
    if truth.shape != label_map.shape or truth.max() >= phases.NUM_CLASSES:
        return
    cm = confusion(truth, label_map)
    report.truth_miou = round(mean_iou(cm), 4)
    report.truth_confusion = cm.tolist()
    if stage_a is not None:
        cm_a = confusion(truth, stage_a)
        report.truth_miou_without_refinement = round(mean_iou(cm_a), 4)
        report.truth_confusion_without_refinement = cm_a.tolist()


def _discover(raw_dir: Path, settings: Mapping[str, Any]) -> list[io.SampleFiles]:
    manifest = _setting(settings, "manifest")
    if manifest:
        path = Path(manifest)
        return io.read_manifest(path if path.is_absolute() else raw_dir / path)
    return io.discover_samples(raw_dir)


def prepare(
    raw_dir: str | Path,
    output_dir: str | Path,
    settings: Mapping[str, Any],
    seed: int = 0,
) -> dict[str, Any]:
    """Prepares every sample under `raw_dir` and writes the TFDS shards under `output_dir`.

    Returns the report (also saved as `<output_dir>/prepare_report.json` and `.html`). Raises
    ValueError when no sample could be prepared.
    """
    raw_dir, output_dir = Path(raw_dir), Path(output_dir)
    refinement = _setting(settings, "refine_labels")
    if refinement not in labels.REFINEMENTS:
        raise ValueError(
            f"prepare.refine_labels must be one of {labels.REFINEMENTS}, got {refinement!r}"
        )
    samples = _discover(raw_dir, settings)
    for sub in ("images", "labels", "qa"):
        (output_dir / sub).mkdir(parents=True, exist_ok=True)

    prepared: dict[str, PreparedSample] = {}
    reports: list[SampleReport] = []
    min_quality = float(settings.get("min_registration_quality", 0.3))
    bar = tqdm(samples, desc="prepare: register + label samples", unit="sample")
    for sample in bar:
        name = sample.name
        try:
            paths, report = prepare_sample(
                sample, output_dir, min_quality, settings, seed, progress=bar
            )
            prepared[paths.name] = paths
        except SAMPLE_ERRORS as err:
            reason = " ".join(str(err).split())
            if f"'{name}'" not in reason and name not in reason:
                reason = f"sample '{name}': {reason}"
            log.warning("skipping %s", reason)
            report = SampleReport(name=name, status="failed", reason=reason)
        reports.append(report)
    if not prepared:
        raise ValueError(f"no sample in {raw_dir} could be prepared; see the messages above")

    split_names = split_by_source(
        list(prepared), settings["val_fraction"], settings["test_fraction"], seed
    )
    splits = {s: [prepared[n] for n in split_names[s]] for s in SPLITS}
    shard_settings = {
        k: _setting(settings, k) for k in _SHARD_KEYS if k in settings or k in DEFAULTS
    }
    shard_settings |= {"seed": seed, "samples": split_names}
    patch_counts = {
        s: sum(_num_patches(p, shard_settings, seed) for p in splits[s]) for s in SPLITS
    }
    metadata = {
        "class_fractions": {s: _split_class_fractions(splits[s]) for s in SPLITS if splits[s]},
        "class_names": list(phases.CLASS_NAMES),
        "pixel_size_nm": {r.name: r.pixel_size_nm for r in reports if r.status == "ok"},
        "patches": patch_counts,
        "preparation": {k: v for k, v in shard_settings.items() if k != "samples"},
    }
    dataset_path = build_dataset(output_dir, shard_settings, splits, metadata)

    ok = [r for r in reports if r.status == "ok"]
    scored = [np.asarray(r.truth_confusion) for r in ok if r.truth_confusion is not None]
    unrefined = [
        np.asarray(r.truth_confusion_without_refinement)
        for r in ok
        if r.truth_confusion_without_refinement is not None
    ]
    result = {
        "raw_dir": str(raw_dir),
        "dataset_path": str(dataset_path),
        "splits": split_names,
        "num_prepared": len(prepared),
        "failed": [{"sample": r.name, "reason": r.reason} for r in reports if r.status != "ok"],
        "patches": patch_counts,
        "class_fractions": metadata["class_fractions"],
        # pooled over the samples that have a truth.tif (simulated data)
        "labels_truth_miou": round(mean_iou(sum(scored)), 4) if scored else None,
        "labels_truth_miou_without_refinement": (
            round(mean_iou(sum(unrefined)), 4) if unrefined else None
        ),
        "samples": [asdict(r) for r in reports],
        "settings": dict(settings),
    }
    io.write_json_atomic(output_dir / "prepare_report.json", result)
    io.write_text_atomic(output_dir / "prepare_report.html", _report_html(result))
    if scored:
        log.info(
            "EDS labels vs truth: pooled mean IoU %.4f over %d samples (without refinement: %s)",
            result["labels_truth_miou"],
            len(scored),
            result["labels_truth_miou_without_refinement"],
        )
    return result


def _num_patches(sample: PreparedSample, settings: Mapping[str, Any], seed: int) -> int:
    import tifffile

    with tifffile.TiffFile(sample.label_path) as tif:
        shape = tif.pages.first.shape[:2]
    patch = int(settings["patch_size"])
    if min(shape) < patch:
        return 0
    return len(sample_origins(shape, patch, settings, sample.name, seed))


def _report_html(result: Mapping[str, Any]) -> str:
    """A one-page HTML summary: per-sample status, registration, labels, QA pictures."""
    esc = html.escape
    rows = []
    for s in result["samples"]:
        fr = " / ".join(f"{100 * f:.1f}" for f in s["class_fractions"]) or "-"
        reg = "-"
        if s["registration_quality"] is not None:
            reg = (
                f"shift ({s['shift_yx'][0]:.2f}, {s['shift_yx'][1]:.2f}) px, "
                f"rot {s['rotation_deg']:.2f}°, q {s['registration_quality']:.3f}"
            )
        miou = "-" if s["truth_miou"] is None else f"{s['truth_miou']:.4f}"
        img = (
            f'<img src="qa/{esc(s["name"])}_overlay.png" height="160">'
            f'<img src="qa/{esc(s["name"])}_confidence.png" height="160">'
            + (
                f'<img src="qa/{esc(s["name"])}_registration.png" height="160">'
                if s["registration_quality"] is not None
                else ""
            )
            if s["status"] == "ok"
            else ""
        )
        rows.append(
            f"<tr><td>{esc(s['name'])}</td><td>{esc(s['status'])}</td>"
            f"<td>{esc(s['label_source'] or '-')}</td>"
            f"<td>{esc(s['reason'] or '; '.join(s['warnings']))}</td><td>{esc(reg)}</td>"
            f"<td>{fr}</td><td>{miou}</td>"
            f"<td>{img}</td></tr>"
        )
    miou = result.get("labels_truth_miou")
    summary = (
        f"<p>{result['num_prepared']} prepared, {len(result['failed'])} failed; patches "
        f"{esc(json.dumps(result['patches']))}; dataset {esc(result['dataset_path'])}</p>"
    )
    if miou is not None and not math.isnan(miou):
        summary += f"<p>EDS labels vs truth: pooled mean IoU {miou:.4f}</p>"
    return (
        "<!doctype html><meta charset='utf-8'><title>prepare report</title>"
        "<h1>socseg_jax prepare report</h1>"
        + summary
        + "<table border=1 cellpadding=4><tr><th>sample</th><th>status</th><th>labels from</th>"
        "<th>reason or warning</th><th>registration</th><th>pore/NiO/Ni/YSZ %</th>"
        "<th>mIoU vs truth</th><th>QA</th></tr>" + "".join(rows) + "</table>"
    )


def _split_class_fractions(samples: list[PreparedSample]) -> list[float]:
    """Pixel fraction of each class over the label maps of one split."""
    import tifffile

    counts = np.zeros(phases.NUM_CLASSES, np.int64)
    for sample in samples:
        counts += np.bincount(tifffile.imread(sample.label_path).ravel(), minlength=len(counts))
    return (counts / max(counts.sum(), 1)).round(4).tolist()
