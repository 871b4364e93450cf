"""Reading SEM images and element maps as 2-D float32 grey arrays (TIFF, PNG, JPEG, npy, CSV).

Values keep their original scale; every failure names the file (ImageReadError).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from data_prep.errors import ImageReadError

IMAGE_EXTS = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


_RGB_WEIGHTS = np.array([0.2125, 0.7154, 0.0721], dtype=np.float64)  # as skimage.color.rgb2gray


def check_file(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty (0 bytes)")


def to_grey(arr: np.ndarray, path: Path) -> np.ndarray:
    """Reduce an image array to 2-D grey: RGB(A) by luminance, grey+alpha by its first channel."""
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ImageReadError(f"{path}: unsupported pixel type {arr.dtype}")
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] not in (2, 3, 4) and arr.shape[0] in (2, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar (C, H, W) -> (H, W, C)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].astype(np.float64) @ _RGB_WEIGHTS
    elif arr.ndim == 3 and arr.shape[-1] == 2:
        arr = arr[..., 0]
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise ImageReadError(f"{path}: expected a 2-D grey or RGB image, got shape {arr.shape}")
    return arr.astype(np.float32)


def read_grey(path: str | os.PathLike) -> np.ndarray:
    """Read an image (TIFF page 0, PNG, JPEG, .npy, .csv) as a 2-D float32 grey array.

    Values keep their original scale (e.g. 0..65535 for 16-bit); RGB/RGBA become luminance.
    Raises ImageReadError naming the file for missing, empty, corrupt or non-image files.
    """
    path = Path(path)
    check_file(path)
    ext = path.suffix.lower()
    try:
        if ext in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                if not tif.pages:
                    raise ImageReadError(f"{path}: TIFF has no pages")
                arr = tif.pages.first.asarray()
        elif ext == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif ext == ".csv":
            arr = _read_csv(path)
        else:
            import skimage.io

            arr = skimage.io.imread(path)
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "not a readable image"
        raise ImageReadError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc
    grey = to_grey(arr, path)
    if not np.isfinite(grey).all():
        raise ImageReadError(f"{path}: image contains NaN or infinite values")
    return grey


def _read_csv(path: Path) -> np.ndarray:
    """Numeric CSV (comma, semicolon, tab or space separated) as a 2-D array."""
    text = path.read_text()
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delim = next((d for d in (",", ";", "\t") if d in first), None)
    return np.loadtxt(path, delimiter=delim, ndmin=2)


_MAGIC = {b"II*\0": "TIFF", b"MM\0*": "TIFF", b"II+\0": "TIFF", b"MM\0+": "TIFF",
          b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG"}


def image_format(path: Path) -> str | None:
    """'TIFF', 'PNG' or 'JPEG' from the file's first bytes (its signature), else None."""
    with open(path, "rb") as f:
        head = f.read(4)
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)
