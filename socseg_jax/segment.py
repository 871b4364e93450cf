"""job=segment: folders of SEM images → label maps, overlays and a phase-fraction summary.

Each image is handled on its own: an unreadable, empty or truncated file gets a reason in
`summary.csv` and the batch goes on. Images are decoded on CPU threads ahead of the
predictor and outputs are written on a writer thread, so the accelerator keeps busy. Every
output is written atomically (temporary name, then rename), so an interrupted run leaves no
partial file; a re-run skips images whose outputs are complete and removes stale temporaries.
"""

from __future__ import annotations

import collections
import csv
import glob
import io as _io
import logging
import math
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from ml_collections import ConfigDict
from tqdm import tqdm

from data_prep import io, phases
from socseg_jax import checkpoints
from socseg_jax.predict import SlidingWindowPredictor, make_ensemble_apply_fn, make_model_apply_fn

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
FRACTION_FIELDS = [f"{name}_percent" for name in phases.CLASS_NAMES]
SUMMARY_FIELDS = (
    ["path", "status", "reason", "height", "width", "pixel_size_nm"]
    + FRACTION_FIELDS
    + ["mean_max_prob", "mean_entropy", "seconds"]
)
PREPROCESSING = ("percentile", "keras_l2_rows")
_SUMMARY_EVERY_S = 30.0
_MAP_DTYPES = {"proba": np.float16, "entropy": np.float16, "max_prob": np.float16}


@dataclass(frozen=True)
class ImageJob:
    """One input image and where its outputs go (relative folder kept from the input)."""

    path: Path
    relative: Path

    def outputs(self, output_dir: Path) -> tuple[Path, Path]:
        """(label TIFF, overlay PNG) paths for this image."""
        paths = self.paths(output_dir)
        return paths["labels"], paths["overlay"]

    def paths(self, output_dir: Path) -> dict[str, Path]:
        """Every output of this image: labels, overlay, proba, entropy, max_prob."""
        base = Path(output_dir) / self.relative.parent / self.relative.stem
        suffixes = {
            "labels": "_labels.tif",
            "overlay": "_overlay.png",
            "proba": "_proba.tif",
            "entropy": "_entropy.tif",
            "max_prob": "_maxprob.tif",
        }
        return {kind: base.with_name(base.name + end) for kind, end in suffixes.items()}


@dataclass(frozen=True)
class SegmentOptions:
    """How images are read and what is written (the job's config keys of the same names).

    ``data_bar_height``: rows cut from the bottom of every image (the SEM data bar); 0 = none,
    'auto' = detected per image (data_prep.io.detect_data_bar).
    ``pixel_size_nm``: used when a file has no pixel-size metadata (0 = unknown).
    ``preprocess``: 'percentile' (io.normalize_sem, as in training) or 'keras_l2_rows' (the
    study's ``keras.utils.normalize(image, axis=1)``, for imported Keras models).
    """

    label_encoding: str = "ids"
    overwrite: bool = False
    save_probabilities: bool = False
    save_uncertainty: bool = False
    preprocess: str = "percentile"
    data_bar_height: int | str = 0
    pixel_size_nm: float = 0.0
    overlay_max_size: int = 4096
    tiff_compression: str = "zlib"
    num_workers: int = 2
    prefetch: int = 2
    summary_name: str = "summary.csv"

    def __post_init__(self) -> None:
        encode_labels(np.zeros(1, np.uint8), self.label_encoding)  # reject a bad encoding
        if self.preprocess not in PREPROCESSING:
            raise ValueError(f"preprocess must be one of {PREPROCESSING}, got {self.preprocess!r}")
        _parse_data_bar(self.data_bar_height)
        if self.num_workers < 1 or self.prefetch < 1 or self.overlay_max_size < 16:
            raise ValueError("need num_workers >= 1, prefetch >= 1 and overlay_max_size >= 16")

    @property
    def map_kinds(self) -> tuple[str, ...]:
        """Maps the predictor computes for every image."""
        kinds = ["labels"]
        if self.save_probabilities:
            kinds.append("proba")
        if self.save_uncertainty:
            kinds += ["entropy", "max_prob"]
        return tuple(kinds)

    @property
    def file_kinds(self) -> tuple[str, ...]:
        """Output files every finished image has (the overlay last: it marks completion)."""
        return (*self.map_kinds, "overlay")


def discover_images(source: str | Sequence[str]) -> list[ImageJob]:
    """Images from a folder (recursive), a glob pattern, a list file (.txt) or a list of paths.

    Suffixes are matched case-insensitively; hidden files are left out. Relative output paths
    keep the folder structure below the input folder (or the glob's fixed prefix).
    """
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
        root = Path(_glob_root(source))
        jobs = []
        for p in matches:
            if p.is_file():
                rel = p.relative_to(root) if p.is_relative_to(root) else Path(p.name)
                jobs.append(ImageJob(p, rel))
        return jobs
    raise FileNotFoundError(f"input {source} is not a folder, image, list file or matching glob")


def _glob_root(pattern: str) -> str:
    """The longest leading folder of a glob pattern without wildcards."""
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next((i for i, p in enumerate(parts) if glob.has_magic(p)),
                                      len(parts))]]
    return str(Path(*fixed)) if fixed else "."


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def shard_jobs(jobs: Sequence[ImageJob], shard_index: int, num_shards: int) -> list[ImageJob]:
    """Every ``num_shards``-th job starting at ``shard_index``, to split an archive over hosts."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"need 0 <= shard_index < num_shards, got {shard_index}, {num_shards}")
    return list(jobs[shard_index::num_shards])


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


def _parse_data_bar(setting: int | str) -> int | str:
    """A row count >= 0 or 'auto' from the config value (an int, a string or 'none')."""
    if isinstance(setting, str) and setting.strip().lower() in ("auto", "none"):
        return setting.strip().lower()
    try:
        rows = int(setting)
    except (TypeError, ValueError):
        raise ValueError(
            f"data_bar_height must be a row count, 'auto' or 'none', got {setting!r}"
        ) from None
    if rows < 0:
        raise ValueError(f"data_bar_height must be >= 0, got {rows}")
    return rows


def preprocess(image: np.ndarray, method: str) -> np.ndarray:
    """Intensity normalisation as the model was trained: see :class:`SegmentOptions`."""
    if method == "percentile":
        return io.normalize_sem(image)
    if method == "keras_l2_rows":
        from socseg_jax.keras_import import keras_normalize

        return keras_normalize(image, axis=1)
    raise ValueError(f"preprocess must be one of {PREPROCESSING}, got {method!r}")


def load_image(job: ImageJob, options: SegmentOptions) -> tuple[np.ndarray, np.ndarray, float]:
    """(overlay preview, preprocessed image, pixel size in nm or nan), data bar cut off.

    The preview is the grey image subsampled by :func:`preview_step`, so that the full-size
    original need not be kept while the image is predicted.
    """
    kind = image_format(job.path)
    if kind is None and job.path.stat().st_size > 0:
        raise io.ImageReadError(f"{job.path}: not an image (content is not TIFF, PNG or JPEG)")
    try:
        grey = io.read_grey(job.path)
    except io.ImageReadError as err:
        if kind is None or "cannot read image" not in str(err):
            raise
        detail = str(err).split("cannot read image", 1)[1].strip()
        detail = detail[1:-1] if detail.startswith("(") and detail.endswith(")") else detail
        raise io.ImageReadError(f"{job.path}: corrupt or truncated {kind} ({detail})") from err
    grey, _ = io.crop_data_bar(grey, _parse_data_bar(options.data_bar_height))
    pixel_size = io.read_pixel_size_nm(job.path) or options.pixel_size_nm or math.nan
    step = preview_step(grey.shape, options.overlay_max_size)
    preview = io.normalize_sem(grey[::step, ::step])
    return preview, preprocess(grey, options.preprocess), float(pixel_size)


_MAGIC = {b"II*\0": "TIFF", b"MM\0*": "TIFF", b"II+\0": "TIFF", b"MM\0+": "TIFF",
          b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG"}


def image_format(path: Path) -> str | None:
    """'TIFF', 'PNG' or 'JPEG' from the file's first bytes (its signature), else None."""
    with open(path, "rb") as f:
        head = f.read(4)
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


def preview_step(shape: tuple[int, ...], max_size: int) -> int:
    """Subsampling step that brings the longer side of an overlay to at most ``max_size``."""
    return max(1, math.ceil(max(shape[:2]) / max_size))


def segment_images(
    predictor: SlidingWindowPredictor,
    jobs: Sequence[ImageJob],
    output_dir: str | Path,
    label_encoding: str = "ids",
    overwrite: bool = False,
    **options: Any,
) -> list[dict[str, Any]]:
    """Segments every image, writes outputs and `summary.csv`; returns the summary rows.

    Further keyword options are those of :class:`SegmentOptions`. Rows keep the input order;
    status is 'ok', 'skipped' (outputs were complete) or 'failed' (with the reason).
    """
    opts = SegmentOptions(label_encoding=label_encoding, overwrite=overwrite, **options)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary_path = output_dir / opts.summary_name
    previous = _read_summary(summary_path)
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    counts: collections.Counter[str] = collections.Counter()
    megapixels, busy_s, last_summary = 0.0, 0.0, time.monotonic()
    bar = tqdm(total=len(jobs), desc="segment", unit="img", dynamic_ncols=True)

    def done(index: int, row: dict[str, Any]) -> None:
        nonlocal megapixels, last_summary
        rows[index] = row
        counts[row["status"]] += 1
        if row["status"] == "failed":
            log.warning("failed: %s: %s", row["path"], row["reason"])
        elif row["status"] == "ok":
            megapixels += row["height"] * row["width"] / 1e6
        bar.update(1)
        rate = megapixels / busy_s if busy_s else 0.0
        bar.set_postfix(ok=counts["ok"], skipped=counts["skipped"], failed=counts["failed"],
                        mpx_s=f"{rate:.2f}", refresh=False)
        if time.monotonic() - last_summary > _SUMMARY_EVERY_S:
            _write_summary(summary_path, [r for r in rows if r is not None])
            last_summary = time.monotonic()

    readers = ThreadPoolExecutor(opts.num_workers, thread_name_prefix="segment-read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="segment-write")
    writes: collections.deque[tuple[int, Future]] = collections.deque()
    try:
        for index, job, loaded in _prefetch(jobs, output_dir, opts, previous, readers):
            if isinstance(loaded, dict):  # skipped or failed before prediction
                done(index, loaded)
                continue
            started = time.monotonic()
            try:
                preview, image, pixel_size = loaded.result()
                maps = predictor.predict_maps(image, opts.map_kinds, _MAP_DTYPES)
            except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
                done(index, _failed_row(job, err))
                continue
            del image  # the full-size input is no longer needed; keep memory bounded
            busy_s += time.monotonic() - started
            writes.append(
                (index, writer.submit(_write_outputs, job, output_dir, opts, preview, maps,
                                      pixel_size, started))
            )
            while len(writes) > 1 or (writes and writes[0][1].done()):
                done(*_finished_write(jobs, *writes.popleft()))
        while writes:
            done(*_finished_write(jobs, *writes.popleft()))
    finally:
        readers.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True)
        bar.close()
        finished = [r for r in rows if r is not None]
        _write_summary(summary_path, finished)
    log.info(
        "%d images: %d segmented, %d skipped (complete), %d failed; summary in %s",
        len(finished), counts["ok"], counts["skipped"], counts["failed"], summary_path,
    )
    return finished


def _prefetch(
    jobs: Sequence[ImageJob],
    output_dir: Path,
    opts: SegmentOptions,
    previous: dict[str, dict[str, Any]],
    readers: ThreadPoolExecutor,
) -> Iterator[tuple[int, ImageJob, Future | dict[str, Any]]]:
    """Jobs in order with a decoding future, keeping ``opts.prefetch`` decodes in flight.

    Complete images come back as a 'skipped' row (no decoding); stale temporaries of the
    others are removed first.
    """
    queue: collections.deque[tuple[int, ImageJob, Future | dict[str, Any]]] = collections.deque()
    for index, job in enumerate(jobs):
        paths = job.paths(output_dir)
        if not opts.overwrite and all(paths[k].exists() for k in opts.file_kinds):
            queue.append((index, job, _skipped_row(job, paths["labels"], opts, previous)))
        else:
            _remove_stale_temporaries(paths.values())
            queue.append((index, job, readers.submit(load_image, job, opts)))
        while sum(isinstance(item[2], Future) for item in queue) > opts.prefetch:
            yield queue.popleft()
        while queue and isinstance(queue[0][2], dict):
            yield queue.popleft()
    yield from queue


def _write_outputs(
    job: ImageJob,
    output_dir: Path,
    opts: SegmentOptions,
    preview: np.ndarray,
    maps: dict[str, np.ndarray],
    pixel_size: float,
    started: float,
) -> dict[str, Any]:
    """Writes an image's maps (atomically; the overlay last) and returns its summary row."""
    paths = job.paths(output_dir)
    labels = maps["labels"]
    compression = {"compression": opts.tiff_compression} if opts.tiff_compression else {}
    if "proba" in maps:  # planar (K, H, W): one page per class in ImageJ/Fiji
        io.write_tiff_atomic(paths["proba"], np.moveaxis(maps["proba"], -1, 0),
                             photometric="minisblack", **compression)
    for kind in ("entropy", "max_prob"):
        if kind in maps:
            io.write_tiff_atomic(paths[kind], maps[kind], **compression)
    io.write_tiff_atomic(paths["labels"], encode_labels(labels, opts.label_encoding),
                         **compression)
    step = preview_step(labels.shape, opts.overlay_max_size)
    phases.save_overlay_png(paths["overlay"], preview, labels[::step, ::step],
                            title=str(job.relative))
    row = _row(job, "ok", "", labels, pixel_size)
    if "max_prob" in maps:
        row["mean_max_prob"] = round(float(maps["max_prob"].mean(dtype=np.float64)), 4)
        row["mean_entropy"] = round(float(maps["entropy"].mean(dtype=np.float64)), 4)
    row["seconds"] = round(time.monotonic() - started, 3)
    return row


def _finished_write(
    jobs: Sequence[ImageJob], index: int, future: Future
) -> tuple[int, dict[str, Any]]:
    try:
        return index, future.result()
    except Exception as err:  # noqa: BLE001 - e.g. disk full: reported, the batch goes on
        return index, _failed_row(jobs[index], err)


def _row(
    job: ImageJob, status: str, reason: str, labels: np.ndarray | None, pixel_size: float
) -> dict[str, Any]:
    row: dict[str, Any] = {"path": str(job.path), "status": status, "reason": reason}
    if not math.isnan(pixel_size):
        row["pixel_size_nm"] = round(pixel_size, 4)
    if labels is not None:
        row.update(height=labels.shape[0], width=labels.shape[1])
        fractions = [round(f, 3) for f in label_fractions(labels)]
        row.update(zip(FRACTION_FIELDS, fractions, strict=True))
    return row


def _failed_row(job: ImageJob, err: Exception) -> dict[str, Any]:
    """A 'failed' row with a one-line reason (without repeating the path)."""
    reason = str(err).removeprefix(f"{job.path}: ") or type(err).__name__
    if not isinstance(err, io.ImageReadError | ValueError | OSError):
        reason = f"{type(err).__name__}: {reason}"
    return _row(job, "failed", " ".join(reason.split()), None, math.nan)


def _skipped_row(
    job: ImageJob, label_path: Path, opts: SegmentOptions, previous: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Row of an image whose outputs are complete: from the last summary, else re-measured."""
    old = previous.get(str(job.path))
    if old and old.get("status") in ("ok", "skipped") and old.get("height"):
        return {**old, "status": "skipped", "reason": "outputs exist"}
    try:
        labels = io.labels_from_values(
            tifffile.imread(label_path), str(label_path), opts.label_encoding
        )
        pixel_size = io.read_pixel_size_nm(job.path) or opts.pixel_size_nm or math.nan
        return _row(job, "skipped", "outputs exist", labels, float(pixel_size))
    except Exception as err:  # noqa: BLE001
        return _failed_row(job, ValueError(f"existing output {label_path} unreadable: {err}"))


def _remove_stale_temporaries(paths: Any) -> None:
    """Deletes temporaries left by a killed run for these outputs (only this image's)."""
    for path in paths:
        if path.parent.is_dir():
            for stale in path.parent.glob(glob.escape(f".{path.stem}.") + "*.tmp"):
                stale.unlink(missing_ok=True)


def _read_summary(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of an earlier run's summary by path ({} when there is none or it is unreadable)."""
    try:
        with open(path, newline="") as f:
            return {row["path"]: row for row in csv.DictReader(f)}
    except (OSError, KeyError, csv.Error):
        return {}


def _write_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    io.write_text_atomic(path, buffer.getvalue())


# -- the job ------------------------------------------------------------------------------------


def load_models(checkpoint: str) -> list[Any]:
    """Models from comma-separated checkpoints: train workdirs / Orbax steps or Keras .h5."""
    models = []
    for item in (part.strip() for part in str(checkpoint).split(",")):
        if not item:
            continue
        if Path(item).suffix.lower() in (".h5", ".hdf5"):
            from socseg_jax.keras_import import load_keras_model

            model = load_keras_model(item)
            log.info("Keras model from %s", item)
        else:
            model, _, step = checkpoints.load_model(item)
            log.info("model from %s (step %d)", item, step)
        models.append(model)
    if not models:
        raise ValueError(f"config.checkpoint names no checkpoint: {checkpoint!r}")
    return models


def build_predictor(models: Sequence[Any], predict: dict[str, Any]) -> SlidingWindowPredictor:
    """Sliding-window predictor for one model or an ensemble; ``predict`` = config.predict."""
    settings = dict(predict)
    mc_samples = int(settings.pop("mc_samples", 0))
    if len(models) == 1 and not mc_samples:
        apply_fn = make_model_apply_fn(models[0])
    else:
        apply_fn = make_ensemble_apply_fn(models, mc_samples)
    return SlidingWindowPredictor(apply_fn, **settings)


def run_segment_job(config: ConfigDict) -> list[dict[str, Any]]:
    """job=segment: config.input with config.checkpoint into config.output_dir.

    With several hosts (JAX multi-process, or config.shard_index/num_shards) each takes every
    n-th image and writes `summary-<i>-of-<n>.csv`. Raises ValueError when every image failed
    (the exit status is then non-zero).
    """
    import jax

    jobs = discover_images(config.input)
    if not jobs:
        raise FileNotFoundError(f"no images (tif, tiff, png, jpg, jpeg) found in {config.input}")
    num_shards = config.get("num_shards", 0) or jax.process_count()
    shard_index = config.get("shard_index", -1)
    shard_index = jax.process_index() if shard_index < 0 else shard_index
    summary_name = "summary.csv"
    if num_shards > 1:
        jobs = shard_jobs(jobs, shard_index, num_shards)
        summary_name = f"summary-{shard_index:05d}-of-{num_shards:05d}.csv"
    keys = [f.name for f in SegmentOptions.__dataclass_fields__.values()]
    options = {k: config[k] for k in keys if k in config and k not in ("summary_name",)}
    options["summary_name"] = summary_name
    SegmentOptions(**options)  # bad option values fail before the models load
    models = load_models(config.checkpoint)
    predictor = build_predictor(models, config.predict.to_dict())
    log.info("%d images to segment (shard %d of %d)", len(jobs), shard_index, num_shards)
    rows = segment_images(predictor, jobs, config.output_dir, **options)
    if rows and all(row["status"] == "failed" for row in rows):
        raise ValueError(f"every image failed; reasons in {config.output_dir}/{summary_name}")
    return rows
