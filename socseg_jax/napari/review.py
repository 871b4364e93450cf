"""Reviewing a `prepare` output: the order to look at its samples, and saving a reviewer's fixes
as the sample's hand ``labels.tif`` or ``scribbles.png`` in its raw folder, where the next
`prepare` reads them (data_prep.samples.files finds them, data_prep.readers.label_maps decodes
them; the report's ``label_source`` and ``labels_file`` / ``scribbles_file`` then say so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data_prep.readers.label_maps import LABEL_EXTS, read_label_values, scribbles_from_values
from socseg_jax.core.atomic import atomic_path, write_tiff_atomic
from socseg_jax.core.errors import UserError
from socseg_jax.core.phases import NUM_CLASSES

SAVE_MODES = ("labels", "scribbles")
LABELS_FILE = "labels.tif"
SCRIBBLES_FILE = "scribbles.png"


def prepared_samples(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's samples whose maps were written (status ok)."""
    return [s for s in report.get("samples", []) if s.get("status") == "ok"]


def review_order(report: dict[str, Any]) -> list[str]:
    """Prepared samples, the one to look at first first: a sample comes as early as its worse
    rank in registration quality or in mean label confidence (lowest first) puts it; ties by
    the other rank, then by name. Unknown values (hand-labelled samples) rank last."""
    samples = prepared_samples(report)

    def ranks(key: str) -> dict[str, int]:
        value = {s["name"]: s.get(key) for s in samples}
        ordered = sorted(value, key=lambda n: (value[n] is None, value[n] or 0.0, n))
        return {name: i for i, name in enumerate(ordered)}

    quality, confidence = ranks("registration_quality"), ranks("mean_confidence")
    return sorted(
        (s["name"] for s in samples),
        key=lambda n: (min(quality[n], confidence[n]), max(quality[n], confidence[n]), n),
    )


def raw_folder(entry: dict[str, Any], report: dict[str, Any]) -> Path:
    """The raw sample folder of a prepared sample (its report entry), where prepare looks for
    hand labels; UserError when the report does not tell it or prepare read a manifest."""
    if report.get("settings", {}).get("manifest"):
        raise UserError(
            f"sample {entry['name']!r} was prepared from a manifest: save the labels and add "
            "them to its 'labels' (or 'scribbles') column")
    folder = entry.get("metadata", {}).get("raw_folder")
    if not folder:
        raise UserError(f"the prepare report does not record the raw folder of sample "
                        f"{entry['name']!r}: run prepare again with this version")
    if "eds_box_px" in entry.get("metadata", {}):
        raise UserError(
            f"sample {entry['name']!r} was labelled on the sub-area its EDS maps cover; hand "
            "labels must cover the whole SEM image")
    return Path(folder)


def _other_files(folder: Path, stem: str, keep: str) -> list[Path]:
    """Files named ``stem.<label ext>`` in ``folder`` other than ``keep``: prepare would pick
    one of them instead (or as well)."""
    return [f for f in sorted(folder.iterdir()) if f.is_file() and f.stem.lower() == stem
            and f.suffix.lower() in LABEL_EXTS and f.name != keep]


def save_review(
    entry: dict[str, Any], report: dict[str, Any], labels: np.ndarray,
    original: np.ndarray, mode: str = "labels",
) -> Path:
    """Writes a reviewer's labels for a prepared sample into its raw folder (atomically).

    ``labels``: the Labels layer (class ids); ``original``: the label map prepare wrote.
    ``mode`` ``labels``: the whole map as ``labels.tif`` (uint8 class ids), which prepare
    then uses as the sample's labels; ``scribbles``: only the pixels that differ from
    ``original``, as class id + 1 (ilastik's order; 0 unlabelled) merged into the folder's
    ``scribbles.png``, which prepare's EDS-guided labelling then follows. Returns the path.
    """
    if mode not in SAVE_MODES:
        raise UserError(f"save mode must be one of {SAVE_MODES}, not {mode!r}")
    labels = np.asarray(labels)
    if labels.shape != original.shape:
        raise UserError(f"labels shape {labels.shape} differs from the prepared sample's "
                        f"{original.shape}")
    bad = np.unique(labels[(labels < 0) | (labels >= NUM_CLASSES)])
    if bad.size:
        raise UserError(f"labels hold values {bad[:8].tolist()} that are no class id "
                        f"(0..{NUM_CLASSES - 1})")
    folder = raw_folder(entry, report)
    if not folder.is_dir():
        raise UserError(f"raw sample folder {folder} not found")
    name = LABELS_FILE if mode == "labels" else SCRIBBLES_FILE
    others = _other_files(folder, Path(name).stem, name)
    if others:
        raise UserError(f"{others[0]} would be read instead of {name}: remove or rename it")
    path = folder / name
    if mode == "scribbles" and (hand := _other_files(folder, "labels", "")):
        raise UserError(f"{hand[0]} labels every pixel, so prepare would ignore scribbles: "
                        "save as labels instead")
    if mode == "labels":
        write_tiff_atomic(path, labels.astype(np.uint8))
        return path
    changed = labels != original
    if not changed.any():
        raise UserError("no pixel differs from the prepared labels: nothing to save as scribbles")
    scribbles = np.zeros(labels.shape, np.uint8)
    if path.is_file():
        previous = read_label_values(path, palette_indices=True)
        if previous.shape == labels.shape:
            scribbles = scribbles_from_values(previous, str(path))
    scribbles[changed] = labels[changed].astype(np.uint8) + 1
    _write_png(path, scribbles)
    return path


def _write_png(path: Path, values: np.ndarray) -> None:
    """A grey (mode L) PNG of ``values``, atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(values, mode="L").save(tmp, format="PNG")
