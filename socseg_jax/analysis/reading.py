"""Finding and reading label maps for the analysis, and their pixel sizes.

Input: a folder (recursive), a glob, a .txt list of paths or a list of paths of label maps
(class ids 0..3 or the study's grey 0/85/170/255; 255 in an id map = not sample). A
``segment`` output folder (it has ``summary.csv``) gives its ``<rel>/<stem>_labels.tif``
maps only, with the pixel size, image size and phase fractions' half-widths (the model's
uncertainty, ``inference.composition``) of the summary row of the same image.
Pixel size: that summary, else the TIFF metadata, else ``config.pixel_size_nm``, else None
(results in px; the job warns once).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.readers.label_maps import read_label_values
from data_prep.readers.sem_metadata import read_pixel_size_nm
from socseg_jax.analysis.label_field import NOT_SAMPLE
from socseg_jax.core.errors import MissingInputError, UserError
from socseg_jax.core.phases import CLASS_NAMES, STUDY_GREY
from socseg_jax.inference.archive import discover_images
from socseg_jax.inference.outputs import UNCERTAINTY_FIELDS

LABEL_SUFFIX = "_labels.tif"
ENCODINGS = ("auto", "ids", "grey")


@dataclass(frozen=True)
class LabelFile:
    """One label map to analyse, with what its segment summary says about it."""

    path: Path
    relative: Path
    pixel_size_nm: float | None = None  # from summary.csv
    shape: tuple[int, int] | None = None  # (height, width) of the segmented image
    # half-width (pp) of each phase fraction's interval, from summary.csv (pore, NiO, Ni, YSZ)
    model_unc_pct: tuple[float, ...] | None = None

    def with_model_uncertainty(self, row: dict[str, Any]) -> dict[str, Any]:
        """An analysis row with ``<phase>_area_model_unc_pct`` (the segmenting model's
        half-width, pp) after each phase's ``<phase>_area_se_pct`` (unchanged when unknown)."""
        if self.model_unc_pct is None:
            return row
        unc = dict(zip(CLASS_NAMES, self.model_unc_pct, strict=True))
        out: dict[str, Any] = {}
        for key, value in row.items():
            out[key] = value
            phase = key.removesuffix("_area_se_pct")
            if phase in unc:
                out[f"{phase}_area_model_unc_pct"] = unc[phase]
        return out


def _summary_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "summary.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("status") in ("ok", "skipped")]


def _float(value: str | None) -> float | None:
    try:
        v = float(value) if value not in (None, "") else math.nan
    except ValueError:
        return None
    return v if math.isfinite(v) and v > 0 else None


def _uncertainty(row: dict[str, str]) -> tuple[float, ...] | None:
    """The row's fraction half-widths (a summary written before they existed: None)."""
    try:
        values = tuple(float(row[field]) for field in UNCERTAINTY_FIELDS)
    except (KeyError, TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values) else None


def segment_folder_files(folder: Path) -> list[LabelFile]:
    """The label maps of a segment output folder, matched to their summary rows by the
    image's stem and the tail of its folder."""
    rows = _summary_rows(folder)
    files = []
    for label in sorted(folder.rglob(f"*{LABEL_SUFFIX}")):
        rel = label.relative_to(folder)
        stem = label.name[: -len(LABEL_SUFFIX)]
        parts = rel.parent.parts
        match = next(
            (r for r in rows if Path(r["path"]).stem == stem
             and Path(r["path"]).parent.parts[len(Path(r["path"]).parent.parts) - len(parts):]
             == parts), None,
        )
        px, shape, unc = None, None, None
        if match:
            px = _float(match.get("pixel_size_nm"))
            h, w = _float(match.get("height")), _float(match.get("width"))
            shape = (int(h), int(w)) if h and w else None
            unc = _uncertainty(match)
        files.append(LabelFile(label, rel, px, shape, unc))
    return files


def find_label_files(source: str | list[str]) -> list[LabelFile]:
    """Label maps named by ``source`` (see the module doc); FileNotFoundError if none."""
    folder = Path(source) if isinstance(source, str) else None
    if folder is not None and folder.is_dir() and (folder / "summary.csv").is_file():
        files = segment_folder_files(folder)
    else:
        files = [LabelFile(j.path, j.relative) for j in discover_images(source)]
    if not files:
        raise MissingInputError(f"input {source}: no label maps found")
    return files


def decode_labels(values: np.ndarray, encoding: str) -> np.ndarray:
    """Raw values -> class ids 0..3 with 255 = not sample, or ValueError naming bad values.

    ``auto``: ids (0..3, 255) when no value is 85 or 170, else the study's grey encoding
    (where 255 is YSZ, so a grey map cannot carry a not-sample mask).
    """
    if encoding not in ENCODINGS:
        raise UserError(f"label_encoding must be one of {ENCODINGS}, not {encoding!r}")
    vals = np.rint(np.asarray(values)).astype(np.int64)
    uniq = np.unique(vals)
    grey = encoding == "grey" or (encoding == "auto" and bool(np.isin([85, 170], uniq).any()))
    allowed = np.array(STUDY_GREY) if grey else np.array([0, 1, 2, 3, NOT_SAMPLE])
    bad = [int(v) for v in uniq if v not in allowed]
    if bad:
        want = f"grey {list(STUDY_GREY)}" if grey else "class ids 0..3 or 255 (not sample)"
        raise UserError(f"label values {bad[:8]} are not {want}")
    if not grey:
        return vals.astype(np.uint8)
    lut = np.zeros(256, np.uint8)
    lut[list(STUDY_GREY)] = np.arange(4)
    return lut[vals]


def read_labels(item: LabelFile, encoding: str) -> np.ndarray:
    """Decoded label map of ``item``; ValueError when its size differs from its image's."""
    labels = decode_labels(read_label_values(item.path), encoding)
    if item.shape is not None and labels.shape != item.shape:
        raise UserError(
            f"label map is {labels.shape[0]}x{labels.shape[1]} but its image is "
            f"{item.shape[0]}x{item.shape[1]} (summary.csv)"
        )
    return labels


def pixel_size_of(item: LabelFile, fallback_nm: float) -> float | None:
    """nm per pixel: summary.csv, else the file's TIFF metadata, else ``fallback_nm`` (> 0)."""
    if item.pixel_size_nm:
        return item.pixel_size_nm
    try:
        found = read_pixel_size_nm(item.path)
    except Exception:  # noqa: BLE001 - unreadable metadata: fall back
        found = None
    if found and found > 0:
        return float(found)
    return float(fallback_nm) if fallback_nm and fallback_nm > 0 else None
