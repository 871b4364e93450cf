"""The archive loop: SEM images → label maps, overlays and a phase-fraction summary.

``segment_images`` is what ``job=segment`` runs and what other jobs, tests, benchmarks and the
napari widget import. Each image is handled on its own: an unreadable, empty or truncated file
gets a reason in the summary and the batch goes on. Images are decoded on CPU threads ahead of
the predictor and outputs are written on a writer thread, so the accelerator keeps busy. Every
output is written atomically (temporary name, then rename), so an interrupted run leaves no
partial file; a re-run skips images whose outputs are complete (their summary rows read back
from the records beside them) and removes stale temporaries. The output folder's run lock
(``core.run_lock``) is held throughout: a second run on the same folder stops at once.
``predict_checked`` is one image's prediction with the shift check and the grey-level
calibration, exactly as the loop does it.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from ml_collections import ConfigDict
from tqdm import tqdm

from socseg_jax.analysis.reading import LabelFile
from socseg_jax.analysis.records import Recorder
from socseg_jax.core.atomic import remove_temporaries
from socseg_jax.core.errors import UserError
from socseg_jax.core.run_lock import LOCK_NAME, run_lock
from socseg_jax.inference import composition, levels, outputs
from socseg_jax.inference.archive import ImageJob
from socseg_jax.inference.image_input import load_image, resolve_normalisation
from socseg_jax.inference.predictor import SlidingWindowPredictor
from socseg_jax.inference.shift import image_features, shift_score

log = logging.getLogger(__name__)

SUMMARY_EVERY_S = 30.0
SUMMARY_NAME = "summary.csv"  # of a whole run; a shard's: summary-<i>-of-<n>.csv


class _Progress:
    """Rows in input order, a progress bar with throughput, and a periodic summary."""

    def __init__(self, total: int, summary_path: Path):
        self.rows: list[dict[str, Any] | None] = [None] * total
        self.counts: collections.Counter[str] = collections.Counter()
        self.summary_path = summary_path
        self.megapixels = self.busy_s = 0.0
        self.last_summary = time.monotonic()
        self.bar = tqdm(total=total, desc="segment", unit="img", dynamic_ncols=True)

    def done(self, index: int, row: dict[str, Any]) -> None:
        """Records an image's row; rewrites the summary every SUMMARY_EVERY_S seconds."""
        self.rows[index] = row
        self.counts[row["status"]] += 1
        if row["status"] == "failed":
            log.warning("failed: %s: %s", row["path"], row["reason"])
        elif row.get("warning"):
            self.counts["warned"] += 1
            log.warning("%s: %s", row["path"], row["warning"])
        elif row["status"] == "ok":
            self.megapixels += row["height"] * row["width"] / 1e6
        self.bar.update(1)
        rate = self.megapixels / self.busy_s if self.busy_s else 0.0
        self.bar.set_postfix(ok=self.counts["ok"], skipped=self.counts["skipped"],
                             failed=self.counts["failed"], mpx_s=f"{rate:.2f}", refresh=False)
        if time.monotonic() - self.last_summary > SUMMARY_EVERY_S:
            try:
                outputs.write_summary(self.summary_path, self.finished())
            except UserError as err:  # tried again at the end, where it is fatal
                log.warning("%s", err)
            self.last_summary = time.monotonic()

    def finished(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r is not None]


def segment_images(
    predictor: SlidingWindowPredictor,
    jobs: Sequence[ImageJob],
    output_dir: str | Path,
    options: ConfigDict,
    summary_name: str = SUMMARY_NAME,
    reference: dict[str, Any] | None = None,
    recorder: Recorder | None = None,
    normalisation: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Segments every image, writes outputs and the summary CSV; returns the summary rows.

    ``options``: the segment job's keys (configs/segment.py, ``sections.segment_options``).
    ``reference``: the model's shift reference (``inference.shift``); images far from it get
    a warning (none is checked without one). ``recorder``: analyses each label map as it is
    written (analysis records, reused by a later job=analyze on the output folder).
    ``normalisation``: the model's SEM normalisation (``resolve_normalisation``; default:
    ``options.preprocess`` without a checkpoint). ``summary_name`` other than summary.csv:
    one shard of a run (``output_lock``), which removes only its own images' temporaries.
    Rows keep the input order; status is 'ok',
    'skipped' (outputs were complete) or 'failed' (with the reason). UserError (one line)
    when the output folder cannot be written, is in use by another run, or the summary cannot
    be written.
    """
    outputs.check_options(options)
    normalisation = normalisation or resolve_normalisation(options.preprocess, "")
    output_dir = Path(output_dir)
    with output_lock(output_dir, summary_name):
        owned = None
        if summary_name != SUMMARY_NAME:  # one shard: only its own images' temporaries
            owned = {p for job in jobs for p in job.paths(output_dir).values()}
            owned.add(output_dir / summary_name)
        stale = remove_temporaries(output_dir, skip_marker=LOCK_NAME, owned=owned)
        if stale:
            log.info("removed %d temporary files of an interrupted run in %s", stale, output_dir)
        return _segment_locked(predictor, jobs, output_dir, options, summary_name, reference,
                               recorder, normalisation)


def output_lock(output_dir: str | Path, summary_name: str = SUMMARY_NAME) -> Any:
    """The run lock of a segment output folder (``core.run_lock``): exclusive for a whole run,
    shared between the shards of one (each named by its summary, locked on its own)."""
    part = "" if summary_name == SUMMARY_NAME else Path(summary_name).stem
    return run_lock(output_dir, "segment", part)


def _segment_locked(
    predictor: SlidingWindowPredictor,
    jobs: Sequence[ImageJob],
    output_dir: Path,
    options: ConfigDict,
    summary_name: str,
    reference: dict[str, Any] | None,
    recorder: Recorder | None,
    normalisation: dict[str, Any],
) -> list[dict[str, Any]]:
    """segment_images, the output folder locked."""
    summary_path = output_dir / summary_name
    previous = outputs.read_summary(summary_path)
    progress = _Progress(len(jobs), summary_path)
    readers = ThreadPoolExecutor(options.num_workers, thread_name_prefix="segment-read")
    writer = ThreadPoolExecutor(1, thread_name_prefix="segment-write")
    writes: collections.deque[tuple[int, Future]] = collections.deque()
    write = partial(_write_and_record, recorder) if recorder else outputs.write_outputs
    try:
        for index, job, loaded in _prefetch(jobs, output_dir, options, previous, readers,
                                            partial(load_image, normalisation=normalisation)):
            if isinstance(loaded, dict):  # skipped or failed before prediction
                progress.done(index, loaded)
                continue
            started = time.monotonic()
            try:
                image, info = loaded.result()
                maps, shift = predict_checked(predictor, image, options, reference)
            except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
                progress.done(index, outputs.failed_row(job, err))
                continue
            del image  # the full-size input is no longer needed; keep memory bounded
            progress.busy_s += time.monotonic() - started
            writes.append((index, writer.submit(write, job, output_dir, options, info, maps,
                                                started, shift)))
            while len(writes) > 1 or (writes and writes[0][1].done()):
                progress.done(*_finished_write(jobs, *writes.popleft()))
        while writes:
            progress.done(*_finished_write(jobs, *writes.popleft()))
    except BaseException:
        readers.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True)
        progress.bar.close()
        try:  # what is finished, for the record; the interruption is what gets reported
            outputs.write_summary(summary_path, progress.finished())
        except UserError as err:
            log.warning("%s", err)
        raise
    readers.shutdown(wait=True)
    writer.shutdown(wait=True)
    progress.bar.close()
    outputs.write_summary(summary_path, progress.finished())
    counts = progress.counts
    log.info(
        "%d images: %d segmented (%d unlike the training images), %d skipped (complete), "
        "%d failed; summary in %s", len(progress.finished()), counts["ok"], counts["warned"],
        counts["skipped"], counts["failed"], summary_path,
    )
    return progress.finished()


def _prefetch(
    jobs: Sequence[ImageJob],
    output_dir: Path,
    options: ConfigDict,
    previous: dict[str, dict[str, Any]],
    readers: ThreadPoolExecutor,
    load: Callable[[ImageJob, ConfigDict], Any],
) -> Iterator[tuple[int, ImageJob, Future | dict[str, Any]]]:
    """Jobs in order with a decoding future, keeping ``options.prefetch`` decodes in flight.

    Complete images come back as a 'skipped' row (no decoding).
    """
    queue: collections.deque[tuple[int, ImageJob, Future | dict[str, Any]]] = collections.deque()
    kinds = outputs.file_kinds(options)
    for index, job in enumerate(jobs):
        paths = job.paths(output_dir)
        if not options.overwrite and all(paths[k].exists() for k in kinds):
            queue.append((index, job, outputs.skipped_row(job, paths, options, previous)))
        else:
            queue.append((index, job, readers.submit(load, job, options)))
        while sum(isinstance(item[2], Future) for item in queue) > options.prefetch:
            yield queue.popleft()
        while queue and isinstance(queue[0][2], dict):
            yield queue.popleft()
    yield from queue


def predict_checked(
    predictor: SlidingWindowPredictor, image: np.ndarray, options: ConfigDict,
    reference: dict[str, Any] | None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One image's maps (the kinds ``options`` asks for) and its summary columns: the phase
    fractions' half-widths ``<phase>_percent_unc`` (``inference.composition``), and with a
    reference ``shift_score``, ``warning`` and ``level_gamma``: the shift check on the image
    as read, then the grey-level calibration (``inference.levels``; maps predicted again when
    it applies), then the composition check of the final labels (its warning appended)."""
    kinds = (*outputs.map_kinds(options), "class_row_sums")
    predict = partial(predictor.predict_maps, kinds=kinds, dtypes=outputs.MAP_DTYPES)
    maps = predict(image)
    columns: dict[str, Any] = {}
    composition_ref = None
    if reference is not None:
        features = image_features(image, maps["entropy"], maps["max_prob"])
        score, feature = shift_score(features, reference)
        warning = ""
        if score > options.shift_threshold:
            warning = f"unlike the training images ({feature} {score:.1f} spreads away)"
        gamma = 1.0
        if options.calibrate_levels:
            maps, gamma = levels.calibrate(predict, image, maps, reference, features)
        columns = {"shift_score": round(score, 2), "warning": warning,
                   "level_gamma": round(gamma, 3)}
        composition_ref = reference.get("composition")
    hard, soft = composition.fraction_parts(maps["labels"], maps.pop("class_row_sums"))
    widths = composition.half_widths(hard, soft, composition_ref)
    columns.update(zip(outputs.UNCERTAINTY_FIELDS, np.round(widths, 3).tolist(), strict=True))
    if composition_ref is not None:
        columns["warning"] = composition.joined(columns["warning"], composition.composition_warning(
            hard, composition_ref, options.composition_margin_pct))
    return maps, columns


def _finished_write(
    jobs: Sequence[ImageJob], index: int, future: Future
) -> tuple[int, dict[str, Any]]:
    try:
        return index, future.result()
    except Exception as err:  # noqa: BLE001 - e.g. disk full: reported, the batch goes on
        return index, outputs.failed_row(jobs[index], err)


def _write_and_record(recorder: Recorder, job: ImageJob, output_dir: Path, options: ConfigDict,
                      info: Any, maps: dict[str, Any], *rest: Any) -> dict[str, Any]:
    """write_outputs, then the image's analysis record (the labels still in memory, the
    pixel size as summary.csv will give it). A failed analysis is logged; the final
    job=analyze tries it again and reports it."""
    row = outputs.write_outputs(job, output_dir, options, info, maps, *rest)
    label_path = job.paths(output_dir)["labels"]
    item = LabelFile(label_path, label_path.relative_to(output_dir),
                     row.get("pixel_size_nm"), maps["labels"].shape)
    try:
        recorder.record_labels(item, maps["labels"])
    except Exception as err:  # noqa: BLE001 - the segmentation is written; report it later
        log.warning("%s: analysis failed (%s); retried at the end of the run", job.path, err)
    return row
