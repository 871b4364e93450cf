"""`prepare` and `segment` outputs as napari layer data: plain arrays and keyword dicts.

napari's reader contract is a list of ``(data, kwargs, layer_type)`` tuples, so nothing here
imports napari or Qt: the layers are testable as arrays, and the viewer only displays them.
Every layer's ``metadata["socseg"]`` says what it is (kind, sample, prepare or segment folder),
which the review widget and the writer read back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from data_prep import qa_pictures
from data_prep.readers.images import read_grey
from data_prep.readers.label_maps import labels_from_values, read_label_values
from data_prep.readers.sem_metadata import read_pixel_size_nm
from socseg_jax.core import dataset_layout
from socseg_jax.core.errors import UserError
from socseg_jax.core.phases import CLASS_COLORS, CLASS_NAMES
from socseg_jax.napari.review import review_order

LayerData = tuple[Any, dict[str, Any], str]
LABEL_SUFFIX = "_labels.tif"
# Colours of the registered element maps (additive over the SEM); others: grey.
ELEMENT_COLORMAPS = {"Ni": "green", "Zr": "magenta", "Y": "cyan", "O": "red"}


def phase_colormap() -> dict[int | None, np.ndarray]:
    """The project's phase colours as napari's direct label colormap (RGBA in 0..1)."""
    colours: dict[int | None, np.ndarray] = {None: np.zeros(4, np.float32)}
    for cid, rgb in enumerate(CLASS_COLORS):
        colours[cid] = np.append(rgb / 255.0, 1.0).astype(np.float32)
    return colours


def phase_features() -> dict[str, list]:
    """The Labels layer's features: the phase name of each class id, shown on hover."""
    return {"index": list(range(len(CLASS_NAMES))), "phase": list(CLASS_NAMES)}


def scale_um(pixel_size_nm: float | None) -> tuple[float, float]:
    """napari layer scale in µm per pixel (1 when the pixel size is unknown)."""
    if pixel_size_nm and math.isfinite(float(pixel_size_nm)) and float(pixel_size_nm) > 0:
        size = float(pixel_size_nm) / 1000.0
        return (size, size)
    return (1.0, 1.0)


def pixel_size_nm_of(scale: Any) -> float | None:
    """The pixel size (nm) of a napari layer scale in µm (None for napari's default 1, which
    ``scale_um`` also gives an unknown pixel size)."""
    if scale is None or float(scale[-1]) == 1.0:
        return None
    return float(scale[-1]) * 1000.0


def _meta(kind: str, **facts: Any) -> dict[str, Any]:
    return {"socseg": {"kind": kind} | {k: str(v) if isinstance(v, Path) else v
                                        for k, v in facts.items()}}


def labels_layer(labels: np.ndarray, name: str, scale: tuple[float, float],
                 **facts: Any) -> LayerData:
    """A class-id Labels layer in the phase colours with the phase names as features."""
    kwargs = {"name": name, "scale": scale, "colormap": phase_colormap(), "opacity": 0.5,
              "features": phase_features(), "metadata": _meta("labels", **facts)}
    return labels, kwargs, "labels"


# --- prepare outputs ---------------------------------------------------------------------


def read_prepare_report(prepare_dir: Path) -> dict[str, Any]:
    """``prepare_report.json`` of a prepare output folder (UserError naming a bad one)."""
    path = Path(prepare_dir) / dataset_layout.REPORT_JSON
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read the prepare report ({err})") from None


def sample_report(report: dict[str, Any], sample: str) -> dict[str, Any]:
    """One sample's entry of a prepare report (UserError when the report has none)."""
    for entry in report.get("samples", []):
        if entry["name"] == sample:
            return entry
    raise UserError(f"the prepare report lists no sample {sample!r}")


def prepare_layers(prepare_dir: Path, sample: str) -> list[LayerData]:
    """One prepared sample as layers: SEM image, registered EDS maps and their edges (hidden),
    confidence (hidden) and labels on top, each at the sample's pixel size (µm)."""
    prepare_dir = Path(prepare_dir)
    entry = sample_report(read_prepare_report(prepare_dir), sample)
    scale = scale_um(entry.get("pixel_size_nm"))
    facts = {"prepare_dir": prepare_dir, "sample": sample}
    image_path = dataset_layout.image_path(prepare_dir, sample)
    if not image_path.is_file():
        raise UserError(f"{image_path}: missing (sample {sample!r} has status "
                        f"{entry.get('status')!r})")
    sem = tifffile.imread(image_path)  # normalised to the full range of its dtype
    layers: list[LayerData] = [(sem, {
        "name": f"{sample} SEM", "scale": scale, "colormap": "gray", "rgb": False,
        "contrast_limits": (0, np.iinfo(sem.dtype).max) if sem.dtype.kind == "u" else None,
        "metadata": _meta("sem", **facts, path=image_path)}, "image")]
    eds_path = dataset_layout.eds_maps_path(prepare_dir, sample)
    if eds_path.is_file():
        layers += _eds_layers(eds_path, sample, scale, facts)
    confidence_path = dataset_layout.confidence_path(prepare_dir, sample)
    layers.append((tifffile.imread(confidence_path), {
        "name": f"{sample} confidence", "scale": scale, "colormap": "viridis",
        "contrast_limits": (0, 255), "visible": False, "opacity": 0.6,
        "metadata": _meta("confidence", **facts, path=confidence_path)}, "image"))
    label_path = dataset_layout.label_path(prepare_dir, sample)
    layers.append(labels_layer(tifffile.imread(label_path), f"{sample} labels", scale,
                               **facts, path=label_path))
    return layers


def _eds_layers(path: Path, sample: str, scale: tuple[float, float],
                facts: dict[str, Any]) -> list[LayerData]:
    """The registered element maps (hidden, additive colours) and their edges (hidden)."""
    registered = qa_pictures.read_eds_maps(path)
    counts = registered.counts_per_level
    layers: list[LayerData] = [(m, {
        "name": f"{sample} EDS {el}", "scale": scale, "visible": False, "blending": "additive",
        "colormap": ELEMENT_COLORMAPS.get(el, "gray"), "contrast_limits": (0, 255),
        "metadata": _meta("eds", **facts, element=el, counts_per_level=counts[el], path=path),
    }, "image") for el, m in registered.maps.items()]
    colours: dict[int | None, Any] = {None: np.zeros(4, np.float32)}
    for index, (_, _, rgb) in enumerate(qa_pictures.EDGE_MAPS):
        colours[index + 1] = np.array([*rgb, 1.0], np.float32)
    layers.append((registered.edges, {
        "name": f"{sample} registration edges", "scale": scale, "visible": False,
        "colormap": colours, "opacity": 1.0,
        "features": {"index": [1, 2], "edge": [name for name, _, _ in qa_pictures.EDGE_MAPS]},
        "metadata": _meta("edges", **facts)}, "labels"))
    return layers


def prepare_sample_of(path: Path) -> tuple[Path, str] | None:
    """(prepare folder, sample) for a prepared sample's image, label or confidence TIFF."""
    folder = path.parent.parent
    if not (folder / dataset_layout.REPORT_JSON).is_file() or path.suffix.lower() != ".tif":
        return None
    stem = path.stem
    for kind, suffix in (("labels", "_labels"), ("labels", "_confidence"), ("images", "")):
        if path.parent.name == kind and stem.endswith(suffix):
            return folder, stem[: len(stem) - len(suffix)] if suffix else stem
    return None


# --- segment outputs ---------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentedImage:
    """One image of a segment output folder: its label TIFF and summary row (may be {})."""

    label_path: Path
    row: dict[str, Any]

    @property
    def source(self) -> Path | None:
        """The SEM image that was segmented, when the summary names it and it still exists."""
        path = Path(self.row["path"]) if self.row.get("path") else None
        return path if path is not None and path.is_file() else None


def segmented_images(output_dir: Path) -> list[SegmentedImage]:
    """Every ``*_labels.tif`` under a segment output folder with its summary row."""
    from socseg_jax.inference import outputs  # imports JAX: only for segment outputs

    output_dir = Path(output_dir)
    rows: dict[str, dict[str, Any]] = {}
    for summary in sorted(output_dir.glob("summary*.csv")):
        rows |= outputs.read_summary(summary)
    found = []
    for label_path in sorted(output_dir.rglob(f"*{LABEL_SUFFIX}")):
        if "analysis" in label_path.relative_to(output_dir).parts:
            continue
        found.append(SegmentedImage(label_path, _row_of(label_path, output_dir, rows)))
    return found


def _row_of(label_path: Path, output_dir: Path, rows: dict[str, dict[str, Any]]
            ) -> dict[str, Any]:
    """The summary row whose input image gave ``label_path`` (same stem, same sub-folder)."""
    stem = label_path.name[: -len(LABEL_SUFFIX)]
    parent = label_path.parent.relative_to(output_dir).parts
    for path, row in rows.items():
        p = Path(path)
        if p.stem == stem and (not parent or p.parent.parts[-len(parent):] == parent):
            return row
    return {}


def segment_layers(item: SegmentedImage) -> list[LayerData]:
    """A segmented image as layers: its SEM image (data bar cut as segment cut it), entropy
    (hidden, when saved) and labels, at the pixel size of the file or the summary (µm)."""
    label_path = item.label_path
    labels = labels_from_values(read_label_values(label_path), str(label_path))
    pixel = read_pixel_size_nm(label_path) or _number(item.row.get("pixel_size_nm"))
    scale = scale_um(pixel)
    name = label_path.name[: -len(LABEL_SUFFIX)]
    facts = {"segment_output": label_path.parent, "image": name}
    layers: list[LayerData] = []
    source = item.source
    if source is not None:
        grey = read_grey(source)[: labels.shape[0]]  # segment cut the data bar's rows
        layers.append((grey, {"name": f"{name} SEM", "scale": scale, "colormap": "gray",
                              "metadata": _meta("sem", **facts, path=source)}, "image"))
    entropy_path = label_path.with_name(f"{name}_entropy.tif")
    if entropy_path.is_file():
        layers.append((tifffile.imread(entropy_path), {
            "name": f"{name} entropy", "scale": scale, "colormap": "inferno",
            "visible": False, "opacity": 0.7, "metadata": _meta("entropy", **facts)}, "image"))
    layers.append(labels_layer(labels, f"{name} labels", scale, **facts, path=label_path,
                               pixel_size_nm=pixel))
    return layers


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


# --- napari's reader hook ------------------------------------------------------------------


def read_path(path: str | Path) -> list[LayerData]:
    """Layers of a prepare output folder (its first sample in review order), one prepared
    sample's TIFF, a segment output folder (its first image) or a ``_labels.tif``."""
    path = Path(path)
    if path.is_dir() and (path / dataset_layout.REPORT_JSON).is_file():
        order = review_order(read_prepare_report(path))
        if not order:
            raise UserError(f"{path}: the prepare report lists no prepared sample")
        return prepare_layers(path, order[0])
    if path.is_file() and (sample := prepare_sample_of(path)) is not None:
        return prepare_layers(*sample)
    if path.is_dir():
        items = segmented_images(path)
        if not items:
            raise UserError(f"{path}: no prepare report and no *{LABEL_SUFFIX} inside")
        return segment_layers(items[0])
    summary_dir = path.parent
    items = [i for i in segmented_images(summary_dir) if i.label_path == path]
    return segment_layers(items[0] if items else SegmentedImage(path, {}))


def napari_get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """napari's reader contribution: a reader for the paths this plugin knows, else None."""
    if isinstance(path, list):
        return None if len(path) != 1 else napari_get_reader(path[0])
    p = Path(path)
    if p.is_dir():
        known = (p / dataset_layout.REPORT_JSON).is_file() or any(p.glob("summary*.csv"))
        return read_path if known else None
    if p.name.endswith(LABEL_SUFFIX) or prepare_sample_of(p) is not None:
        return read_path
    return None
