"""job=segment: folders of SEM images → label maps, overlays and a phase-fraction summary.

Each image is handled on its own: an unreadable or empty file gets a reason in
`summary.csv` and the batch goes on. Outputs are written atomically, so an interrupted
run leaves no partial file, and a re-run skips images whose outputs are complete.
"""

import csv
import glob
import io as _io
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from ml_collections import ConfigDict
from tqdm import tqdm

from data_prep import io, phases
from socseg_jax import checkpoints
from socseg_jax.predict import SlidingWindowPredictor, make_model_apply_fn

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
SUMMARY_FIELDS = ["path", "status", "reason", "height", "width", "pixel_size_nm"] + [
    f"{name}_percent" for name in phases.CLASS_NAMES
]


@dataclass(frozen=True)
class ImageJob:
    """One input image and where its outputs go (relative folder kept from the input)."""

    path: Path
    relative: Path

    def outputs(self, output_dir: Path) -> tuple[Path, Path]:
        """(label TIFF, overlay PNG) paths for this image."""
        base = output_dir / self.relative.parent / self.relative.stem
        return base.with_name(base.name + "_labels.tif"), base.with_name(base.name + "_overlay.png")


def discover_images(source: str | Sequence[str]) -> list[ImageJob]:
    """Images from a folder (recursive), a glob pattern, a list file (.txt) or a list of paths."""
    if not isinstance(source, str):
        return [ImageJob(Path(p), Path(Path(p).name)) for p in source]
    path = Path(source)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and _is_image(p))
        return [ImageJob(p, p.relative_to(path)) for p in found]
    if path.is_file() and path.suffix.lower() == ".txt":
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        return [ImageJob(Path(ln), Path(Path(ln).name)) for ln in lines if ln]
    if path.is_file():
        return [ImageJob(path, Path(path.name))]
    matches = sorted(Path(p) for p in glob.glob(source, recursive=True))
    if matches:
        return [ImageJob(p, Path(p.name)) for p in matches if p.is_file()]
    raise FileNotFoundError(f"input {source} is not a folder, image, list file or matching glob")


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def label_fractions(labels: np.ndarray) -> list[float]:
    """Area fraction of each phase in percent."""
    counts = np.bincount(labels.ravel(), minlength=phases.NUM_CLASSES)[: phases.NUM_CLASSES]
    return (100.0 * counts / max(labels.size, 1)).tolist()


def encode_labels(labels: np.ndarray, encoding: str) -> np.ndarray:
    """Class ids as written to disk: 'ids' (0..3) or the study's 'grey' (0, 85, 170, 255)."""
    if encoding == "ids":
        return labels.astype(np.uint8)
    if encoding == "grey":
        return np.asarray(phases.STUDY_GREY, np.uint8)[labels]
    raise ValueError(f"label_encoding must be 'ids' or 'grey', got {encoding!r}")


def segment_images(
    predictor: SlidingWindowPredictor,
    jobs: Sequence[ImageJob],
    output_dir: str | Path,
    label_encoding: str = "ids",
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Segments every image, writes outputs and `summary.csv`; returns the summary rows."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    encode_labels(np.zeros(1, np.uint8), label_encoding)  # reject a bad encoding up front
    rows = []
    for job in tqdm(jobs, desc="segment", unit="image"):
        rows.append(_segment_one(predictor, job, output_dir, label_encoding, overwrite))
    _write_summary(output_dir / "summary.csv", rows)
    failed = [r for r in rows if r["status"] == "failed"]
    for row in failed:
        log.warning("failed: %s: %s", row["path"], row["reason"])
    log.info(
        "segmented %d of %d images into %s (%d failed)",
        len(rows) - len(failed), len(rows), output_dir, len(failed),
    )
    return rows


def run_segment_job(config: ConfigDict) -> list[dict[str, Any]]:
    """job=segment: config.input with config.checkpoint into config.output_dir.

    Raises ValueError when every image failed (the exit status is then non-zero).
    """
    jobs = discover_images(config.input)
    if not jobs:
        raise FileNotFoundError(f"no images (tif, tiff, png, jpg, jpeg) found in {config.input}")
    model, _, step = checkpoints.load_model(config.checkpoint)
    log.info("model from %s (step %d); %d images to segment", config.checkpoint, step, len(jobs))
    predictor = SlidingWindowPredictor(make_model_apply_fn(model), **config.predict.to_dict())
    rows = segment_images(
        predictor, jobs, config.output_dir, config.label_encoding, config.overwrite
    )
    if all(row["status"] == "failed" for row in rows):
        raise ValueError(f"every image failed; reasons in {config.output_dir}/summary.csv")
    return rows


def _segment_one(
    predictor: SlidingWindowPredictor,
    job: ImageJob,
    output_dir: Path,
    label_encoding: str,
    overwrite: bool,
) -> dict[str, Any]:
    row: dict[str, Any] = {"path": str(job.path), "status": "ok", "reason": ""}
    label_path, overlay_path = job.outputs(output_dir)
    try:
        if not overwrite and label_path.exists() and overlay_path.exists():
            labels = _decode_labels(tifffile.imread(label_path), label_encoding)
            row["status"] = "skipped"
            row["reason"] = "outputs exist"
        else:
            image = io.normalize_sem(io.read_grey(job.path))
            labels = predictor.predict(image)
            label_path.parent.mkdir(parents=True, exist_ok=True)
            io.write_tiff_atomic(label_path, encode_labels(labels, label_encoding))
            phases.save_overlay_png(overlay_path, image, labels, title=job.relative.name)
        row.update(height=labels.shape[0], width=labels.shape[1])
        fractions = [round(f, 3) for f in label_fractions(labels)]
        row.update(zip(SUMMARY_FIELDS[6:], fractions, strict=True))
    except (io.ImageReadError, ValueError, OSError) as err:
        row.update(status="failed", reason=str(err))
    return row


def _decode_labels(stored: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "grey":
        return np.searchsorted(np.asarray(phases.STUDY_GREY), stored).astype(np.uint8)
    return stored


def _write_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".summary.", suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as f:
        f.write(buffer.getvalue())
    os.replace(tmp, path)
