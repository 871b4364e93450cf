"""Label images (hand, ilastik, the study's grey encoding) and scribbles as class ids.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from data_prep.errors import ImageReadError, SampleError
from data_prep.readers.images import (
    IMAGE_EXTS,
    MAX_IMAGE_BYTES,
    check_declared_size,
    check_file,
    file_format,
    read_grey,
    tiff_pages,
)
from socseg_jax.core.errors import UserError
from socseg_jax.core.phases import NUM_CLASSES, STUDY_GREY

LABEL_EXTS = IMAGE_EXTS + (".npy", ".h5", ".hdf5")


def labels_from_values(values: np.ndarray, where: str, encoding: str = "auto") -> np.ndarray:
    """Label values -> uint8 class ids 0..3.

    ``encoding``: ``ids`` (0..3), ``grey`` (the study's 0/85/170/255), ``ilastik`` (Simple
    Segmentation values 1..4, in class order pore, NiO, Ni, YSZ) or ``auto`` (the first that
    fits, in that order). Unknown values raise SampleError naming them.
    """
    vals = np.rint(values).astype(np.int64)
    uniq = np.unique(vals)
    if encoding in ("auto", "ids") and np.all((uniq >= 0) & (uniq < NUM_CLASSES)):
        return vals.astype(np.uint8)
    if encoding in ("auto", "grey") and np.all(np.isin(uniq, STUDY_GREY)):
        lut = np.zeros(256, dtype=np.uint8)
        for cid, g in enumerate(STUDY_GREY):
            lut[g] = cid
        return lut[vals]
    if encoding in ("auto", "ilastik") and np.all((uniq >= 1) & (uniq <= NUM_CLASSES)):
        return (vals - 1).astype(np.uint8)
    allowed = {
        "ids": (set(range(NUM_CLASSES)), f"class ids 0..{NUM_CLASSES - 1}"),
        "grey": (set(STUDY_GREY), f"grey {list(STUDY_GREY)}"),
        "ilastik": (set(range(1, NUM_CLASSES + 1)), f"ilastik values 1..{NUM_CLASSES}"),
    }
    if encoding not in allowed and encoding != "auto":
        raise UserError(f"label encoding must be auto, ids, grey or ilastik, not {encoding!r}")
    ok = (
        allowed[encoding][0]
        if encoding != "auto"
        else set().union(*(v[0] for v in allowed.values()))
    )
    want = (
        allowed[encoding][1] if encoding != "auto" else " or ".join(v[1] for v in allowed.values())
    )
    bad = [int(v) for v in uniq if int(v) not in ok][:8] or [int(v) for v in uniq][:8]
    raise SampleError(f"{where}: labels with unknown values {bad} (expected {want})")


def scribbles_from_values(values: np.ndarray, where: str) -> np.ndarray:
    """Sparse hand labels as uint8: 0 = unlabelled, 1..4 = pore, NiO, Ni, YSZ (class id + 1,
    as ilastik exports its Labels); raises SampleError naming other values or an empty file."""
    vals = np.rint(values).astype(np.int64)
    bad = [int(v) for v in np.unique(vals) if not 0 <= v <= NUM_CLASSES][:8]
    if bad:
        raise SampleError(
            f"{where}: scribbles with unknown values {bad} (expected 0 = unlabelled, "
            f"1..{NUM_CLASSES} = pore, NiO, Ni, YSZ)"
        )
    if not vals.any():
        raise SampleError(f"{where}: scribbles file labels no pixel (all 0)")
    return vals.astype(np.uint8)


def _palette_indices(path: Path, max_bytes: int) -> np.ndarray | None:
    """Indices of a palette-mode PNG as float32, or None for any other image."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.mode != "P":
                return None
            check_declared_size(path, img.size[::-1], 1, max_bytes)
            return np.asarray(img, np.float32)
    except ImageReadError:
        raise
    except Exception:  # noqa: BLE001 - read_grey reports unreadable files by name
        return None


def read_label_values(
    path: str | os.PathLike, palette_indices: bool = False, max_bytes: int = MAX_IMAGE_BYTES
) -> np.ndarray:
    """Raw values of a label image: TIFF/PNG/npy, or ilastik HDF5 (``/exported_data``).

    With ``palette_indices``, a palette ("indexed colour") PNG, as image editors save drawn
    scribbles, gives its palette indices rather than the brightness of its colours (label
    maps keep the brightness: the study's grey 0/85/170/255 is often saved indexed). The
    format comes from the content (HDF5 also by a ``.h5``/``.hdf5`` name); files declaring
    more than ``max_bytes`` decoded, and TIFFs of several pages, are refused.
    """
    path = Path(path)
    check_file(path)
    kind = file_format(path)
    indices = _palette_indices(path, max_bytes) if palette_indices and kind == "PNG" else None
    if indices is not None:
        return indices
    if kind == "TIFF" and len(pages := tiff_pages(path)) > 1:
        raise ImageReadError(f"{path}: a TIFF of {len(pages)} pages; a label map has one")
    if kind != "HDF5" and (kind is not None or path.suffix.lower() not in (".h5", ".hdf5")):
        return read_grey(path, max_bytes)
    import h5py

    try:
        with h5py.File(path, "r") as f:
            key = "exported_data" if "exported_data" in f else next(iter(f), None)
            if key is None or not isinstance(f[key], h5py.Dataset):
                raise ImageReadError(f"{path}: no /exported_data dataset (ilastik export)")
            data = f[key]
            check_declared_size(path, data.shape, data.dtype.itemsize, max_bytes)
            arr = np.asarray(data[()])
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageReadError(
            f"{path}: cannot read HDF5 labels ({type(exc).__name__}: {exc})"
        ) from exc
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise ImageReadError(f"{path}: expected 2-D labels, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ImageReadError(f"{path}: unsupported label type {arr.dtype}")
    return arr.astype(np.float32)
