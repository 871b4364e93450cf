"""Reading one raw sample (SEM, EDS maps, labels or scribbles) into memory, checked for consistency.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.errors import ImageReadError, SampleError
from data_prep.readers.data_bar import crop_data_bar
from data_prep.readers.eds_maps import (
    REQUIRED_ELEMENTS,
    find_eds_maps,
    read_eds_maps,
    unnamed_map_files,
)
from data_prep.readers.h5oina import H5OINA_EXTS, H5OinaMaps, read_h5oina
from data_prep.readers.images import MAX_IMAGE_BYTES, read_grey, to_grey
from data_prep.readers.label_maps import (
    labels_from_values,
    read_label_values,
    scribbles_from_values,
)
from data_prep.readers.sem_metadata import read_pixel_size_nm, read_sem_metadata
from data_prep.samples.files import SampleFiles, sample_files

# EDS step / SEM pixel ratios taken from TIFF resolution tags; outside: not a pixel size.
MIN_EDS_SCALE, MAX_EDS_SCALE = 0.5, 32.0
# What an EDS map needs to be labelled from (checked before registration): sides of at least
# MIN_EDS_SIDE px; with the step known, a field at most MAX_EDS_COVERAGE times the SEM's;
# without it, at most MAX_EDS_COARSENESS times coarser than the SEM (a coarse sub-area); and
# counts above its background in at least MIN_EDS_SIGNAL of its pixels (a fraction, and never
# fewer than MIN_EDS_SIGNAL_PX pixels).
MIN_EDS_SIDE = 8
MAX_EDS_COVERAGE = 2.0
MAX_EDS_COARSENESS = 64
MIN_EDS_SIGNAL, MIN_EDS_SIGNAL_PX = 1e-3, 16


@dataclass
class RawSample:
    """One raw sample: SEM grey image (float32, original scale), EDS maps, optional labels."""

    name: str
    sem: np.ndarray
    eds: dict[str, np.ndarray]
    labels: np.ndarray | None
    pixel_size_nm: float | None
    metadata: dict = field(default_factory=dict)  # SEM metadata, data bar, EDS source/steps
    extra_channels: list[np.ndarray] = field(default_factory=list)  # sem2, sem3, ... detectors
    scribbles: np.ndarray | None = None  # sparse hand labels: 0 unlabelled, 1..4 = class + 1
    warnings: list[str] = field(default_factory=list)  # files found but not used, and why


def _eds_box(h5: H5OinaMaps | None, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """SEM pixel box (y0, x0, h, w) covered by H5OINA maps, None when they cover it all."""
    if h5 is None or h5.box is None:
        return None
    y0, x0, bh, bw = h5.box
    if abs(y0) < 1e-3 and abs(x0) < 1e-3 and bh > 0.999 and bw > 0.999:
        return None
    py0, px0 = round(y0 * shape[0]), round(x0 * shape[1])
    ph, pw = round(bh * shape[0]), round(bw * shape[1])
    if ph < 8 or pw < 8 or py0 < 0 or px0 < 0 or py0 + ph > shape[0] or px0 + pw > shape[1]:
        return None
    return py0, px0, ph, pw


@dataclass
class _Decoded:
    """What a sample's files hold, before the data bar, EDS box and shapes are checked."""

    sem: np.ndarray
    extra: list[np.ndarray]
    eds: dict[str, np.ndarray]
    h5: H5OinaMaps | None
    label_values: np.ndarray | None
    scribble_values: np.ndarray | None
    metadata: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # EDS files found but not used, and why


def read_raw_sample(
    sample_dir: str | os.PathLike | SampleFiles,
    data_bar: str | int = "none",
    element_pattern: str | None = None,
    label_encoding: str = "auto",
    channels: int = 1,
    max_image_bytes: int = MAX_IMAGE_BYTES,
) -> RawSample:
    """Read one raw sample (folder or SampleFiles); raise SampleError naming it and the problem.

    ``data_bar``: remove an SEM data bar (``auto``, a height in rows, or ``none``);
    ``element_pattern``: see ``element_of``; ``label_encoding``: see ``labels_from_values``;
    ``channels``: number of SEM detector images (``sem.tif``, ``sem2.tif``, ...) to read;
    ``max_image_bytes``: files declaring more decoded bytes are refused unread.
    """
    if isinstance(sample_dir, SampleFiles):
        files = sample_dir
    else:
        if not Path(sample_dir).is_dir():
            raise SampleError(f"sample '{Path(sample_dir).name}': folder {sample_dir} not found")
        files = sample_files(sample_dir)
    where = f"sample '{files.name}'"
    try:
        decoded = _decode_files(files, where, element_pattern, channels, max_image_bytes)
    except ImageReadError as exc:
        raise SampleError(f"{where}: {exc}") from exc
    try:
        sem, bar = crop_data_bar(decoded.sem, data_bar)
    except ValueError as exc:
        raise SampleError(f"{where}: {exc}") from exc
    metadata, eds, extra = decoded.metadata, decoded.eds, decoded.extra
    metadata["data_bar_rows"] = bar
    box = _eds_box(decoded.h5, sem.shape) if decoded.label_values is None else None
    if box is not None:  # maps cover part of the image: label that part only
        metadata["eds_box_px"] = list(box)
        metadata["eds_box_source"] = "H5OINA relative box"
        sem, extra = _crop(sem, box), [_crop(img, box) for img in extra]
    for i, img in enumerate(extra, start=2):
        img = img[: sem.shape[0]] if bar and img.shape[0] == sem.shape[0] + bar else img
        if img.shape != sem.shape:
            raise SampleError(
                f"{where}: SEM channel {i} shape {img.shape} differs from {sem.shape}"
            )
        extra[i - 2] = img
    labels = _labels(files, decoded.label_values, label_encoding, sem.shape, bar, where)
    warnings = list(files.notes) + decoded.notes
    if files.scribbles is not None and files.labels is not None:
        warnings.append(f"{files.scribbles.name} ignored: {files.labels.name} labels every pixel")
    scribbles = None
    if decoded.scribble_values is not None:
        scribbles = _scribbles(files, decoded.scribble_values, sem.shape, bar, box, where)
    _record_sources(files, metadata, scribbles is not None)
    pixel = files.pixel_size_nm or metadata.get("pixel_size_nm")
    h5 = decoded.h5
    if h5 is not None and pixel and all(h5.step_um):
        grid = sem.shape[1] / next(iter(eds.values())).shape[1]
        metadata["eds_scale_from_steps"] = h5.step_um[1] * 1e3 / pixel
        metadata["eds_scale_from_grid"] = grid
    elif pixel and metadata.get("eds_step_nm"):
        scale = metadata["eds_step_nm"] / pixel
        if MIN_EDS_SCALE <= scale <= MAX_EDS_SCALE:  # else a default dpi or a wrong tag
            metadata["eds_scale_from_steps"] = scale
    warnings += _check_eds(files, eds, labels is None, sem.shape, metadata, where)
    return RawSample(files.name, sem, eds, labels, pixel, metadata, extra, scribbles, warnings)


def _record_sources(files: SampleFiles, metadata: dict[str, Any], scribbled: bool) -> None:
    """Records where the sample is (``raw_folder``: where a reviewer's hand labels go) and
    which hand-made file labels it (``labels_file`` or ``scribbles_file``), for the report."""
    if files.folder is not None:
        metadata["raw_folder"] = str(files.folder.resolve())
    if files.labels is not None:
        metadata["labels_file"] = str(files.labels)
    elif scribbled:
        metadata["scribbles_file"] = str(files.scribbles)


def _crop(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    y0, x0, bh, bw = box
    return img[y0 : y0 + bh, x0 : x0 + bw]


def crop_to_box(raw: RawSample, box: tuple[int, int, int, int], source: str) -> RawSample:
    """``raw`` cut to the SEM box (y0, x0, h, w) its EDS maps cover (a sub-area), so that only
    that part is labelled; the box and how it was found go into its metadata."""
    metadata = raw.metadata | {"eds_box_px": list(box), "eds_box_source": source}
    scribbles = None if raw.scribbles is None else _crop(raw.scribbles, box)
    return replace(
        raw, sem=_crop(raw.sem, box), extra_channels=[_crop(c, box) for c in raw.extra_channels],
        scribbles=scribbles, metadata=metadata,
    )


def _decode_files(
    files: SampleFiles, where: str, element_pattern: str | None, channels: int, max_bytes: int
) -> _Decoded:
    """Reads every file of the sample (ImageReadError / SampleError name the problem)."""
    metadata: dict[str, Any] = {}
    notes: list[str] = []
    h5: H5OinaMaps | None = None
    is_h5 = files.eds is not None and files.eds.suffix.lower() in H5OINA_EXTS
    if files.sem is None and not is_h5:
        raise SampleError(
            f"{where}: missing SEM image (sem.tif/.png/.jpg or an 'Electron Image' file)"
        )
    sem = None
    if files.sem is not None:
        sem = read_grey(files.sem, max_bytes)
        metadata.update(read_sem_metadata(files.sem))
    if len(files.extra_sem) < channels - 1:
        raise SampleError(
            f"{where}: {channels} channels configured but only {1 + len(files.extra_sem)} "
            "SEM image(s) found (sem.tif, sem2.tif, ...)"
        )
    extra = [read_grey(p, max_bytes) for p in files.extra_sem[: channels - 1]]
    eds_src = files.eds
    if is_h5:
        h5 = read_h5oina(eds_src, max_bytes=max_bytes)
        eds = h5.maps
        metadata["eds_source"] = eds_src.name
        metadata["eds_step_um"] = list(h5.step_um)
        metadata["eds_valid_fraction"] = float(h5.valid.mean())
        if sem is None:  # no separate SEM file: the H5OINA's own electron image
            if h5.electron_image is None:
                raise SampleError(
                    f"{where}: missing SEM image (no sem.tif and no electron image in "
                    f"{eds_src.name})"
                )
            sem = to_grey(h5.electron_image, eds_src)
            metadata["sem_source"] = f"{eds_src.name}: electron image"
            if h5.electron_step_um and h5.electron_step_um[1] > 0:
                metadata["pixel_size_nm"] = h5.electron_step_um[1] * 1e3
    else:
        found = find_eds_maps(eds_src, element_pattern) if eds_src is not None else {}
        eds, metadata["eds_files"] = {}, {}
        for el, path in found.items():
            for page_el, page in read_eds_maps(path, el, max_bytes).items():
                if page_el not in eds:
                    eds[page_el], metadata["eds_files"][page_el] = page, path.name
        if eds_src is not None and not element_pattern:
            notes += unnamed_map_files(eds_src)
        steps = {read_pixel_size_nm(p) for p in found.values()} - {None}
        if len(steps) == 1:  # every map's TIFF resolution tags give one pixel size
            metadata["eds_step_nm"] = steps.pop()
    label_values = (
        read_label_values(files.labels, max_bytes=max_bytes) if files.labels is not None else None
    )
    use_scribbles = files.scribbles is not None and files.labels is None
    scribble_values = (
        read_label_values(files.scribbles, True, max_bytes) if use_scribbles else None
    )
    return _Decoded(sem, extra, eds, h5, label_values, scribble_values, metadata, notes)


def _labels(
    files: SampleFiles,
    values: np.ndarray | None,
    encoding: str,
    shape: tuple[int, ...],
    bar: int,
    where: str,
) -> np.ndarray | None:
    """The labels file as class ids on the SEM grid (its data-bar rows dropped), or None."""
    if values is None:
        return None
    if encoding == "auto" and files.labels.suffix.lower() in (".h5", ".hdf5"):
        encoding = "ilastik"
    labels = labels_from_values(values, f"{where}, {files.labels.name}", encoding)
    if bar and labels.shape[0] == shape[0] + bar:
        labels = labels[: shape[0]]
    if labels.shape != shape:
        raise SampleError(f"{where}: labels shape {labels.shape} differs from SEM shape {shape}")
    return labels


def _check_eds(
    files: SampleFiles,
    eds: dict[str, np.ndarray],
    needed: bool,
    shape: tuple[int, ...],
    metadata: dict[str, Any],
    where: str,
) -> list[str]:
    """Required maps present, none larger than the SEM; when the labels come from them (no
    labels file), every map usable (``_eds_problem``): a required one that is not refuses the
    sample, another one is dropped. Returns the warnings for dropped maps."""
    missing = [el for el in REQUIRED_ELEMENTS if el not in eds]
    if needed and missing:
        src = files.eds if files.eds is not None else "(no EDS given)"
        raise SampleError(
            f"{where}: missing element map(s) {', '.join(missing)} in {src} "
            f"(need {', '.join(REQUIRED_ELEMENTS)}; or provide labels.tif)"
        )
    for el, m in eds.items():
        if m.shape[0] > shape[0] or m.shape[1] > shape[1]:
            raise SampleError(
                f"{where}: EDS map {el} {m.shape} is larger than the SEM image {shape}"
            )
    notes = []
    for el in list(eds) if needed else []:
        problem = _eds_problem(eds[el], shape, metadata.get("eds_scale_from_steps"))
        if problem is None:
            continue
        source = metadata.get("eds_files", {}).get(el) or metadata.get("eds_source", "")
        what = f"EDS map {el}" + (f" ({source})" if source else "")
        if el in REQUIRED_ELEMENTS:
            raise SampleError(f"{where}: {what} {problem}")
        notes.append(f"{what} {problem}; not used")
        del eds[el]
    return notes


def _eds_problem(m: np.ndarray, shape: tuple[int, ...], scale: float | None) -> str | None:
    """Why an element map cannot be labelled from (too small, a field unlike the SEM's, empty,
    constant, too few counts), or None."""
    h, w = m.shape
    if min(h, w) < MIN_EDS_SIDE:
        return f"is {h}x{w} px: too small to register (at least {MIN_EDS_SIDE} px a side)"
    if scale:
        cover = max(h * scale / shape[0], w * scale / shape[1])
        if cover > MAX_EDS_COVERAGE:
            return (f"spans {cover:.2g}x the SEM field at its step ({scale:.3g} SEM px per EDS "
                    "px): a wrong step (pixel size) or the maps of another field")
    elif min(shape[0] / h, shape[1] / w) > MAX_EDS_COARSENESS:
        return (f"is {h}x{w} px for a {shape[0]}x{shape[1]} SEM image: over "
                f"{MAX_EDS_COARSENESS}x coarser, too coarse to label from")
    low, high = float(m.min()), float(m.max())
    if low == high:
        return "is empty (every pixel 0)" if high == 0 else (
            f"is constant (every pixel {high:g}): it carries no information")
    signal = int(np.count_nonzero(m > low))
    if signal < max(MIN_EDS_SIGNAL_PX, MIN_EDS_SIGNAL * m.size):
        return (f"has counts above its background in only {signal} of {m.size} pixels: too "
                "few to label from")
    return None


def _scribbles(
    files: SampleFiles,
    values: np.ndarray,
    shape: tuple[int, ...],
    bar: int,
    box: tuple[int, int, int, int] | None,
    where: str,
) -> np.ndarray:
    """The scribbles on the SEM grid (data-bar rows dropped, cut to the EDS box)."""
    where_file = f"{where}, {files.scribbles.name}"
    scribbles = scribbles_from_values(values, where_file)
    if bar and scribbles.shape[0] == shape[0] + bar:
        scribbles = scribbles[: shape[0]]
    if box is not None and scribbles.shape != shape:
        scribbles = scribbles[box[0] : box[0] + box[2], box[1] : box[1] + box[3]]
    if scribbles.shape != shape:
        raise SampleError(
            f"{where_file}: scribbles shape {scribbles.shape} differs from SEM {shape}"
        )
    return scribbles
