"""Preparing one sample: read, register the EDS maps, label, write its maps and QA pictures."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ml_collections import ConfigDict

from data_prep import qa_pictures
from data_prep.errors import SampleError
from data_prep.labels.eds_rules import eds_evidence, eds_labels
from data_prep.labels.refinement import refine
from data_prep.labels.scribbles import ScribbleError
from data_prep.prepare.checks import mean_iou, truth_confusions
from data_prep.registration.field import bar_frames, locate_eds_field, same_aspect_sub_area
from data_prep.registration.gate import eds_resolution_warnings
from data_prep.registration.maps import RegistrationError, register_eds
from data_prep.samples.files import SampleFiles
from data_prep.samples.raw_sample import RawSample, read_raw_sample
from data_prep.tfds_builder import PreparedSample
from socseg_jax.core import dataset_layout
from socseg_jax.core.atomic import write_tiff_atomic
from socseg_jax.core.intensity import normalize_sem
from socseg_jax.core.overlays import save_overlay_png
from socseg_jax.core.phases import NUM_CLASSES

log = logging.getLogger(__name__)

QA_MAX_SIDE = 1536  # longest side (px) of the QA pictures


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

    def warn(self, message: str) -> None:
        """Records a warning and logs it with the sample's name."""
        self.warnings.append(message)
        log.warning("sample '%s': %s", self.name, message)


@dataclass
class _Labelled:
    """A sample's label map, its confidence, the stage-(a) map and the registered maps."""

    labels: np.ndarray
    confidence: np.ndarray
    stage_a: np.ndarray | None = None
    aligned: dict[str, np.ndarray] | None = None


def prepare_sample(
    sample: Path | SampleFiles,
    output_dir: Path,
    settings: ConfigDict,
    seed: int = 0,
    progress: Any = None,
) -> tuple[PreparedSample, SampleReport]:
    """Reads, registers and labels one sample; writes its full-size maps and QA pictures.

    ``settings``: config.prepare. ``progress`` (a tqdm bar) shows the current step, which
    matters on large images.
    """

    def step(name: str) -> float:
        if progress is not None:
            progress.set_postfix_str(f"{getattr(sample, 'name', sample)}: {name}")
        return time.perf_counter()

    t0 = step("read")
    raw = read_raw_sample(
        sample,
        data_bar=settings.data_bar,
        element_pattern=settings.element_pattern or None,
        label_encoding=settings.labels_file_encoding,
        channels=int(settings.channels),
        max_image_bytes=int(settings.max_image_bytes),
    )
    if raw.labels is None:
        raw = locate_eds_field(raw, float(settings.eds_step_nm))
    sem = normalize_sem(raw.sem, int(settings.local_contrast_px))
    report = SampleReport(
        name=raw.name, status="ok", pixel_size_nm=raw.pixel_size_nm, metadata=raw.metadata
    )
    for message in raw.warnings:
        report.warn(message)
    report.seconds["read"] = time.perf_counter() - t0
    if raw.labels is not None:
        result = _Labelled(raw.labels.astype(np.uint8), np.ones(raw.labels.shape, np.float32))
        report.label_source = "labels file"
    else:
        try:
            result = _label_from_eds(raw, sem, settings, seed, report, step)
        except RegistrationError as whole_field:
            located = same_aspect_sub_area(raw)
            if located is None:
                raise
            sem = normalize_sem(located.sem, int(settings.local_contrast_px))
            report.metadata = located.metadata
            try:
                result = _label_from_eds(located, sem, settings, seed, report, step)
            except RegistrationError:
                raise whole_field from None  # the whole field's reason is the one to read
            raw = located
            report.warn(f"the EDS maps did not register on the whole field; they cover a "
                        f"sub-area of its aspect, {raw.metadata['eds_box_source']}")
    counts = np.bincount(result.labels.ravel(), minlength=NUM_CLASSES)
    report.class_fractions = (counts / counts.sum()).round(4).tolist()
    report.mean_confidence = round(float(result.confidence.mean()), 4)
    _score_against_truth(sample, result, report)
    t = step("write")
    paths = _write_sample(raw, sem, result, output_dir, settings, report)
    report.seconds["write"] = time.perf_counter() - t
    report.seconds = {k: round(v, 3) for k, v in report.seconds.items()}
    return paths, report


def _label_from_eds(
    raw: RawSample, sem: np.ndarray, settings: ConfigDict, seed: int, report: SampleReport,
    step: Any,
) -> _Labelled:
    """Registers the EDS maps to the SEM and labels the sample from them (stages a-c)."""
    t = step("register")
    if "eds_box_px" in raw.metadata:  # a located sub-area: the SEM was cut to it
        frames = {"sub-area": sem.shape}
    else:
        bar = int(raw.metadata.get("data_bar_rows", 0))
        frames = bar_frames(sem.shape, bar, settings.data_bar_convention)
    aligned, registration = register_eds(
        sem, raw.eds, min_quality=float(settings.min_registration_quality),
        transform=settings.registration, frames=frames,
    )
    report.seconds["register"] = time.perf_counter() - t
    report.shift_yx = tuple(float(s) for s in registration.shift_yx)
    report.rotation_deg = registration.rotation_deg
    report.zoom = registration.zoom
    report.registration_quality = float(registration.quality)
    report.metadata["registration_matrix"] = registration.matrix
    report.metadata["data_bar_convention"] = registration.frame
    report.metadata["registration_qualities"] = registration.qualities
    if registration.resampled:
        report.warn(
            f"EDS map(s) {', '.join(registration.resampled)} on a coarser grid than the "
            "others: resampled to the finest grid"
        )
    for message in eds_resolution_warnings(max(registration.scale), raw):
        report.warn(message)
    t = step("label")
    evidence = eds_evidence(sem, aligned, thresholds=dict(settings.label_thresholds))
    stage_a, confidence = eds_labels(sem, aligned, evidence=evidence)
    try:
        labels, confidence, report.label_source, notes = refine(
            settings.refine_labels, sem, evidence, stage_a, confidence, raw.scribbles,
            seed=seed, n_jobs=int(settings.n_jobs), aligned_eds=aligned,
            eds_pitch=max(registration.scale), eds_model_sweeps=int(settings.eds_model_sweeps),
        )
    except ScribbleError as err:
        raise SampleError(f"sample '{raw.name}', scribbles: {err}") from err
    for message in notes:
        report.warn(message)
    report.seconds["label"] = time.perf_counter() - t
    refined = raw.scribbles is not None or settings.refine_labels != "none"
    return _Labelled(labels, confidence, stage_a if refined else None, aligned)


def _score_against_truth(
    sample: Path | SampleFiles, result: _Labelled, report: SampleReport
) -> None:
    """Mean IoU against `truth.tif` when the sample folder has one (simulated data)."""
    confusions = truth_confusions(sample, [result.labels, result.stage_a])
    if confusions is None:
        return
    final, unrefined = confusions
    report.truth_miou = round(mean_iou(final), 4)
    report.truth_confusion = final.tolist()
    if unrefined is not None:
        report.truth_miou_without_refinement = round(mean_iou(unrefined), 4)
        report.truth_confusion_without_refinement = unrefined.tolist()


def _write_sample(
    raw: RawSample,
    sem: np.ndarray,
    result: _Labelled,
    output_dir: Path,
    settings: ConfigDict,
    report: SampleReport,
) -> PreparedSample:
    """The sample's image, label and confidence TIFFs and its QA pictures (atomic writes)."""
    paths = PreparedSample(
        name=raw.name,
        image_path=dataset_layout.image_path(output_dir, raw.name),
        label_path=dataset_layout.label_path(output_dir, raw.name),
        confidence_path=dataset_layout.confidence_path(output_dir, raw.name),
    )
    image = sem
    if raw.extra_channels:  # further detectors, each normalised like the first
        image = np.stack([sem] + [normalize_sem(c) for c in raw.extra_channels], axis=-1)
    if settings.image_dtype == "uint16":
        image = np.round(image * 65535).astype(np.uint16)
    else:
        image = np.round(image * 255).astype(np.uint8)
    write_tiff_atomic(paths.image_path, image)
    write_tiff_atomic(paths.label_path, result.labels)
    write_tiff_atomic(paths.confidence_path, np.round(result.confidence * 255).astype(np.uint8))
    step = max(1, math.ceil(max(sem.shape) / QA_MAX_SIDE))  # previews: quick on huge images
    view = (slice(None, None, step), slice(None, None, step))
    title = f"{raw.name} labels" + (f" (1:{step} preview)" if step > 1 else "")
    save_overlay_png(dataset_layout.qa_path(output_dir, raw.name, "overlay"), sem[view],
                     result.labels[view], title)
    qa_pictures.save_confidence_png(dataset_layout.qa_path(output_dir, raw.name, "confidence"),
                                    result.confidence[view], raw.name)
    if result.aligned is not None:
        qa_pictures.save_eds_maps(dataset_layout.eds_maps_path(output_dir, raw.name),
                                  result.aligned)
        rot = report.rotation_deg or 0.0
        qa_pictures.save_registration_png(
            dataset_layout.qa_path(output_dir, raw.name, "registration"),
            sem,
            result.aligned,
            f"{raw.name} (bar: {report.metadata.get('data_bar_convention')}): EDS shift "
            f"({report.shift_yx[0]:.1f}, {report.shift_yx[1]:.1f}) px, rotation {rot:.2f}°, "
            f"quality {report.registration_quality:.2f}",
            max_side=QA_MAX_SIDE,
        )
    return paths
