"""What `segment` writes per image (label TIFF, optional maps, its summary row, overlay) and
the summary CSV.

Every file is written atomically, the overlay last: an image is complete when all the files
of :func:`file_kinds` exist. Its summary row (``<stem>_summary.json``, written just before the
overlay) survives a killed run, so a resumed run's summary has every column of every image.
An image whose writing fails loses all its outputs. ``options`` is the segment job's config
(configs/segment.py).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from ml_collections import ConfigDict

from data_prep.errors import ImageReadError
from data_prep.readers.data_bar import parse_data_bar
from data_prep.readers.label_maps import labels_from_values
from data_prep.readers.sem_metadata import read_pixel_size_nm
from socseg_jax.core.atomic import write_json_atomic, write_text_atomic, write_tiff_atomic
from socseg_jax.core.errors import UserError
from socseg_jax.core.overlays import save_overlay_png
from socseg_jax.core.phases import CLASS_NAMES, NUM_CLASSES, encode_labels, label_fractions
from socseg_jax.inference.archive import ImageJob
from socseg_jax.inference.image_input import PREPROCESSING, ImageInfo, preview_step

FRACTION_FIELDS = [f"{name}_percent" for name in CLASS_NAMES]
# Half-width (pp) of each fraction's interval (inference.composition), beside its fraction.
UNCERTAINTY_FIELDS = [f"{field}_unc" for field in FRACTION_FIELDS]
SUMMARY_FIELDS = (
    ["path", "status", "reason", "height", "width", "pixel_size_nm", "data_bar_rows"]
    + [f for pair in zip(FRACTION_FIELDS, UNCERTAINTY_FIELDS, strict=True) for f in pair]
    + ["mean_max_prob", "mean_entropy", "shift_score", "warning", "level_gamma", "seconds"]
)
MAP_DTYPES = {"proba": np.float16, "entropy": np.float16, "max_prob": np.float16}
ROOM_SAMPLE = 64  # inputs whose sizes give the room one image needs (bytes_needed)


def check_options(options: ConfigDict) -> None:
    """Fails with one line on a bad output or reading option, before any model loads."""
    encode_labels(np.zeros(1, np.uint8), options.label_encoding)  # rejects a bad encoding
    if options.preprocess not in PREPROCESSING:
        raise UserError(f"preprocess must be one of {PREPROCESSING}, got {options.preprocess!r}")
    parse_data_bar(options.data_bar)
    if options.num_workers < 1 or options.prefetch < 1 or options.overlay_max_size < 16:
        raise UserError("need num_workers >= 1, prefetch >= 1 and overlay_max_size >= 16")


def map_kinds(options: ConfigDict) -> tuple[str, ...]:
    """Maps the predictor computes for every image (the uncertainty maps always: the summary
    and the shift check use them)."""
    return ("labels", "entropy", "max_prob") + (("proba",) if options.save_probabilities else ())


def file_kinds(options: ConfigDict) -> tuple[str, ...]:
    """Output files every finished image has (the overlay last: it marks completion)."""
    kinds = ["labels"]
    if options.save_probabilities:
        kinds.append("proba")
    if options.save_uncertainty:
        kinds += ["entropy", "max_prob"]
    return (*kinds, "overlay")


def bytes_needed(jobs: Sequence[ImageJob], options: ConfigDict) -> int:
    """A floor on the bytes one image's outputs take: the largest input file (of the first
    ROOM_SAMPLE) times the bytes written per input byte (labels, overlay, the optional maps:
    float16 probabilities per class and two uncertainty maps), at least 1 MiB."""
    sizes = [j.path.stat().st_size for j in jobs[:ROOM_SAMPLE] if j.path.is_file()]
    per_byte = 2 + 2 * NUM_CLASSES * options.save_probabilities + 4 * options.save_uncertainty
    return max(1 << 20, max(sizes, default=0) * per_byte)


def write_outputs(
    job: ImageJob,
    output_dir: Path,
    options: ConfigDict,
    info: ImageInfo,
    maps: dict[str, np.ndarray],
    started: float,
    shift: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes an image's maps and summary row (atomically; the overlay last) and returns the
    row. When a write fails (disk full, folder gone) every output of the image is removed and
    the error raised, so the image is reported failed, not left half-done.

    ``shift``: the row's columns from ``archive_loop.predict_checked``: ``shift_score``,
    ``warning`` (empty: like training), ``level_gamma`` (the grey-level calibration applied,
    1 for none) and the fractions' half-widths ``<phase>_percent_unc``.
    """
    paths = job.paths(output_dir)
    try:
        return _write_files(job, paths, options, info, maps, started, shift)
    except BaseException:
        for path in paths.values():
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        raise


def _write_files(
    job: ImageJob,
    paths: dict[str, Path],
    options: ConfigDict,
    info: ImageInfo,
    maps: dict[str, np.ndarray],
    started: float,
    shift: dict[str, Any] | None,
) -> dict[str, Any]:
    labels = maps["labels"]
    compression = {"compression": options.tiff_compression} if options.tiff_compression else {}
    if "proba" in maps:  # planar (K, H, W): one page per class in ImageJ/Fiji
        write_tiff_atomic(paths["proba"], np.moveaxis(maps["proba"], -1, 0),
                          photometric="minisblack", **compression)
    if options.save_uncertainty:
        for kind in ("entropy", "max_prob"):
            write_tiff_atomic(paths[kind], maps[kind], **compression)
    write_tiff_atomic(paths["labels"], encode_labels(labels, options.label_encoding),
                      **compression)
    row = summary_row(job, "ok", "", labels, info.pixel_size_nm)
    row["data_bar_rows"] = info.data_bar_rows
    row["mean_max_prob"] = round(float(maps["max_prob"].mean(dtype=np.float64)), 4)
    row["mean_entropy"] = round(float(maps["entropy"].mean(dtype=np.float64)), 4)
    row.update(shift or {})
    row["seconds"] = round(time.monotonic() - started, 3)
    write_json_atomic(paths["record"], row)
    step = preview_step(labels.shape, options.overlay_max_size)
    title = str(job.relative)
    if shift and shift.get("warning"):
        title += f"\nWARNING: {shift['warning']}"
    save_overlay_png(paths["overlay"], info.preview, labels[::step, ::step], title=title)
    return row


def summary_row(
    job: ImageJob, status: str, reason: str, labels: np.ndarray | None, pixel_size: float
) -> dict[str, Any]:
    """One summary row: path, status, reason, and size and phase fractions when labelled."""
    row: dict[str, Any] = {"path": str(job.path), "status": status, "reason": reason}
    if not math.isnan(pixel_size):
        row["pixel_size_nm"] = round(pixel_size, 4)
    if labels is not None:
        row.update(height=labels.shape[0], width=labels.shape[1])
        fractions = [round(f, 3) for f in label_fractions(labels)]
        row.update(zip(FRACTION_FIELDS, fractions, strict=True))
    return row


def failed_row(job: ImageJob, err: Exception) -> dict[str, Any]:
    """A 'failed' row with a one-line reason (without repeating the path)."""
    reason = str(err).removeprefix(f"{job.path}: ") or type(err).__name__
    if not isinstance(err, ImageReadError | ValueError | OSError):
        reason = f"{type(err).__name__}: {reason}"
    return summary_row(job, "failed", " ".join(reason.split()), None, math.nan)


def skipped_row(
    job: ImageJob, paths: dict[str, Path], options: ConfigDict,
    previous: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Row of an image whose outputs are complete: its record, else the last summary's row,
    else re-measured from its label map (outputs of an older version)."""
    old = _read_record(paths["record"], job) or previous.get(str(job.path))
    if old and old.get("status") in ("ok", "skipped") and old.get("height"):
        return {**old, "status": "skipped", "reason": "outputs exist"}
    label_path = paths["labels"]
    try:
        labels = labels_from_values(
            tifffile.imread(label_path), str(label_path), options.label_encoding
        )
        pixel_size = read_pixel_size_nm(job.path) or options.pixel_size_nm or math.nan
        return summary_row(job, "skipped", "outputs exist", labels, float(pixel_size))
    except Exception as err:  # noqa: BLE001
        return failed_row(job, ValueError(f"existing output {label_path} unreadable: {err}"))


def _read_record(path: Path, job: ImageJob) -> dict[str, Any] | None:
    """The summary row written beside an image's outputs (None: none, unreadable, not its)."""
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return row if isinstance(row, dict) and row.get("path") == str(job.path) else None


def read_summary(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of an earlier run's summary by path ({} when there is none or it is unreadable)."""
    try:
        with open(path, newline="") as f:
            return {row["path"]: row for row in csv.DictReader(f)}
    except (OSError, KeyError, csv.Error):
        return {}


def write_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    """The summary CSV (one row per image, SUMMARY_FIELDS), written atomically; UserError (one
    line) when it cannot be written."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    try:
        write_text_atomic(path, buffer.getvalue())
    except OSError as err:
        raise UserError(f"cannot write the summary {path}: {err.strerror or err}") from None
