"""job=prepare: raw SEM + EDS samples → registered EDS-guided labels → patches → TFDS shards.

Per sample it writes the normalised SEM image, the full-size label map
(`labels/<sample>_labels.tif`, uint8 class ids), a confidence map and a QA overlay; then it
splits the samples by source image and writes the shards. A sample that fails is reported
in one line and listed in `prepare_report.json`; the others are still prepared.
"""

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from data_prep import align, io, labels, phases
from data_prep.patches import SPLITS, split_by_source
from data_prep.tfds_builder import PreparedSample, build_dataset

log = logging.getLogger(__name__)

SAMPLE_ERRORS = (io.ImageReadError, io.SampleError, align.RegistrationError)


@dataclass
class SampleReport:
    """What preparation did with one sample (or why it failed)."""

    name: str
    status: str
    reason: str = ""
    shift_yx: tuple[float, float] | None = None
    registration_quality: float | None = None
    label_source: str = ""
    class_fractions: list[float] = field(default_factory=list)
    pixel_size_nm: float | None = None


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Writes JSON under a temporary name, then renames: never a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2, default=str)
    os.replace(tmp, path)


def prepare_sample(
    sample_dir: Path, output_dir: Path, min_quality: float
) -> tuple[PreparedSample, SampleReport]:
    """Reads, registers and labels one sample; writes its full-size maps and QA overlay."""
    raw = io.read_raw_sample(sample_dir)
    sem = io.normalize_sem(raw.sem)
    report = SampleReport(name=raw.name, status="ok", pixel_size_nm=raw.pixel_size_nm)
    if raw.labels is not None:
        label_map = raw.labels.astype(np.uint8)
        confidence = np.ones(label_map.shape, np.float32)
        report.label_source = "labels file"
    else:
        aligned, registration = align.register_eds(sem, raw.eds, min_quality=min_quality)
        label_map, confidence = labels.eds_labels(sem, aligned)
        report.label_source = "EDS"
        report.shift_yx = tuple(float(s) for s in registration.shift_yx)
        report.registration_quality = float(registration.quality)
    counts = np.bincount(label_map.ravel(), minlength=phases.NUM_CLASSES)
    report.class_fractions = (counts / counts.sum()).round(4).tolist()

    paths = PreparedSample(
        name=raw.name,
        image_path=output_dir / "images" / f"{raw.name}.tif",
        label_path=output_dir / "labels" / f"{raw.name}_labels.tif",
        confidence_path=output_dir / "labels" / f"{raw.name}_confidence.tif",
    )
    io.write_tiff_atomic(paths.image_path, np.round(sem * 255).astype(np.uint8))
    io.write_tiff_atomic(paths.label_path, label_map)
    io.write_tiff_atomic(paths.confidence_path, np.round(confidence * 255).astype(np.uint8))
    phases.save_overlay_png(
        output_dir / "qa" / f"{raw.name}_overlay.png", sem, label_map, title=f"{raw.name} labels"
    )
    return paths, report


def prepare(
    raw_dir: str | Path,
    output_dir: str | Path,
    settings: Mapping[str, Any],
    seed: int = 0,
) -> dict[str, Any]:
    """Prepares every sample under `raw_dir` and writes the TFDS shards under `output_dir`.

    Returns the report (also saved as `<output_dir>/prepare_report.json`). Raises
    ValueError when no sample could be prepared.
    """
    raw_dir, output_dir = Path(raw_dir), Path(output_dir)
    sample_dirs = io.discover_samples(raw_dir)
    for sub in ("images", "labels", "qa"):
        (output_dir / sub).mkdir(parents=True, exist_ok=True)

    prepared: dict[str, PreparedSample] = {}
    reports: list[SampleReport] = []
    for sample_dir in tqdm(sample_dirs, desc="prepare: label samples", unit="sample"):
        try:
            paths, report = prepare_sample(
                sample_dir, output_dir, float(settings["min_registration_quality"])
            )
            prepared[paths.name] = paths
        except SAMPLE_ERRORS as err:
            log.warning("skipping sample %s: %s", sample_dir.name, err)
            report = SampleReport(name=sample_dir.name, status="failed", reason=str(err))
        reports.append(report)
    if not prepared:
        raise ValueError(f"no sample in {raw_dir} could be prepared; see the messages above")

    split_names = split_by_source(
        list(prepared), settings["val_fraction"], settings["test_fraction"], seed
    )
    splits = {s: [prepared[n] for n in split_names[s]] for s in SPLITS}
    shard_settings = {
        k: settings[k] for k in ("patch_size", "stride", "val_fraction", "test_fraction")
    } | {"seed": seed, "samples": split_names, "channels": 1}
    metadata = {
        "class_fractions": {
            s: _split_class_fractions(splits[s]) for s in SPLITS if splits[s]
        },
        "pixel_size_nm": {r.name: r.pixel_size_nm for r in reports if r.status == "ok"},
    }
    dataset_path = build_dataset(output_dir, shard_settings, splits, metadata)

    result = {
        "raw_dir": str(raw_dir),
        "dataset_path": str(dataset_path),
        "splits": split_names,
        "num_prepared": len(prepared),
        "failed": [{"sample": r.name, "reason": r.reason} for r in reports if r.status != "ok"],
        "samples": [asdict(r) for r in reports],
        "settings": dict(settings),
    }
    write_json_atomic(output_dir / "prepare_report.json", result)
    return result


def _split_class_fractions(samples: list[PreparedSample]) -> list[float]:
    """Pixel fraction of each class over the label maps of one split."""
    import tifffile

    counts = np.zeros(phases.NUM_CLASSES, np.int64)
    for sample in samples:
        counts += np.bincount(tifffile.imread(sample.label_path).ravel(), minlength=len(counts))
    return (counts / max(counts.sum(), 1)).round(4).tolist()
