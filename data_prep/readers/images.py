"""Reading SEM images and element maps as 2-D float32 grey arrays (TIFF, PNG, JPEG, npy, CSV).

Values keep their original scale; every failure names the file (ImageReadError). The format
is chosen by the file's content (its signature), not its name; ``.npy`` and ``.csv`` by name
only when the content is not an image. Before anything is decoded, the size the header
declares is checked against a limit (``max_image_bytes``) and against what the file could
hold (:func:`check_declared_size`), so a hostile or broken header cannot exhaust memory.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from data_prep.errors import ImageReadError

# Readers refuse a file whose header declares more than this many bytes of decoded pixels
# (their keyword default; jobs pass config.max_image_bytes / prepare.max_image_bytes).
MAX_IMAGE_BYTES = 4 << 30

IMAGE_EXTS = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
# A compressed image's decoded size may be at most this many times its file size: zlib tops
# out near 1000:1 on constant data, JPEG/LZW/PackBits far below; a larger claim is a lie.
MAX_COMPRESSION_RATIO = 1000
EXT_FORMATS = {".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG",
               ".npy": "NPY", ".h5": "HDF5", ".hdf5": "HDF5", ".h5oina": "HDF5"}
_MAGIC = {b"II*\0": "TIFF", b"MM\0*": "TIFF", b"II+\0": "TIFF", b"MM\0+": "TIFF",
          b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"\x93NUMPY": "NPY",
          b"\x89HDF\r\n\x1a\n": "HDF5"}
_RGB_WEIGHTS = np.array([0.2125, 0.7154, 0.0721], dtype=np.float64)  # as skimage.color.rgb2gray
# Bytes per pixel of a decoded PIL image, by mode (palette images decode to RGB(A)).
_PIL_PIXEL_BYTES = {"1": 1, "L": 1, "P": 4, "PA": 4, "LA": 2, "I;16": 2, "I;16B": 2,
                    "I;16L": 2, "I": 4, "F": 4, "RGB": 3, "RGBA": 4, "CMYK": 4, "YCbCr": 3}
log = logging.getLogger(__name__)


def check_file(path: Path) -> None:
    """Raises ImageReadError for a missing, non-regular or empty file."""
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty (0 bytes)")


def file_format(path: Path) -> str | None:
    """'TIFF', 'PNG', 'JPEG', 'NPY' or 'HDF5' from the file's first bytes, else None."""
    with open(path, "rb") as f:
        head = f.read(8)
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


def image_format(path: Path) -> str | None:
    """'TIFF', 'PNG' or 'JPEG' from the file's first bytes (its signature), else None."""
    kind = file_format(path)
    return kind if kind in ("TIFF", "PNG", "JPEG") else None


def _size_text(nbytes: float) -> str:
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:.3g} GiB"
    return f"{nbytes / 2**20:.3g} MiB" if nbytes >= 2**20 else f"{int(nbytes)} bytes"


def check_declared_size(
    path: Path,
    shape: tuple[int, ...],
    itemsize: int,
    max_bytes: int,
    max_ratio: float = MAX_COMPRESSION_RATIO,
) -> None:
    """Refuses (one line: file, declared size, limit) an array the header declares larger than
    ``max_bytes`` decoded, or larger than ``max_ratio`` times the file size (1 for raw data,
    :data:`MAX_COMPRESSION_RATIO` for compressed data)."""
    nbytes = math.prod(int(n) for n in shape) * int(itemsize)
    declared = f"declares {'x'.join(str(int(n)) for n in shape)} x {itemsize} bytes"
    if nbytes > max_bytes:
        raise ImageReadError(
            f"{path}: {declared} ({_size_text(nbytes)} decoded), over the limit of "
            f"{_size_text(max_bytes)} (max_image_bytes)"
        )
    size = path.stat().st_size
    if nbytes > max_ratio * size:
        raise ImageReadError(
            f"{path}: {declared} ({_size_text(nbytes)} decoded), more than a {size}-byte file "
            f"can hold (limit {max_ratio:g}x its size); corrupt or hostile header"
        )


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


def tiff_pages(path: str | os.PathLike) -> list[tuple[int, str]]:
    """(index, name) of every full-resolution page of a TIFF (thumbnails left out); the name
    is its PageName tag, ImageJ label or description, '' when it has none. [] for other or
    unreadable files."""
    import tifffile

    path = Path(path)
    try:
        if file_format(path) != "TIFF":
            return []
        with tifffile.TiffFile(path) as tif:
            labels = list((tif.imagej_metadata or {}).get("Labels") or [])
            found = []
            for index, page in enumerate(tif.pages):
                if getattr(page, "is_reduced", False):
                    continue
                tag = page.tags.get(285)  # PageName
                label = labels[len(found)] if len(found) < len(labels) else ""
                description = "" if tif.is_imagej or tif.is_ome else page.description
                found.append((index, str(tag.value if tag else label or description).strip()))
            return found
    except Exception:  # noqa: BLE001 - unreadable: read_grey names the problem
        return []


def read_grey(
    path: str | os.PathLike, max_bytes: int = MAX_IMAGE_BYTES, page: int = 0
) -> np.ndarray:
    """Read an image (TIFF page ``page``, PNG, JPEG, .npy, .csv) as a 2-D float32 grey array.

    Values keep their original scale (e.g. 0..65535 for 16-bit); RGB/RGBA become luminance.
    The format comes from the content; a name that says another one is logged as a warning.
    Raises ImageReadError naming the file for missing, empty, corrupt, oversized (more than
    ``max_bytes`` decoded) or non-image files.
    """
    path = Path(path)
    check_file(path)
    kind = file_format(path)
    ext = path.suffix.lower()
    named = EXT_FORMATS.get(ext, "CSV" if ext == ".csv" else None)
    if kind not in ("TIFF", "PNG", "JPEG", "NPY") and named not in ("NPY", "CSV"):
        raise ImageReadError(
            f"{path}: cannot read image: not an image (content is not TIFF, PNG or JPEG)"
        )
    kind = kind or named
    if named is not None and named != kind:
        log.warning("%s: named as %s but its content is %s; read as %s",
                    path, named, kind, kind)
    try:
        arr = _read_tiff(path, max_bytes, page) if kind == "TIFF" else (
            _DECODERS[kind](path, max_bytes))
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "not a readable image"
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        what = f"corrupt or truncated {kind}" if kind in ("TIFF", "PNG", "JPEG") else (
            "cannot read image")
        raise ImageReadError(f"{path}: {what} ({detail})") from exc
    grey = to_grey(arr, path)
    if not np.isfinite(grey).all():
        raise ImageReadError(f"{path}: image contains NaN or infinite values")
    return grey


def _read_tiff(path: Path, max_bytes: int, index: int = 0) -> np.ndarray:
    """One page of a TIFF (page 0 unless asked; a warning says when there are more), its
    declared size checked first."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.pages:
            raise ImageReadError(f"{path}: corrupt or truncated TIFF (no pages)")
        page = tif.pages.first if index == 0 else tif.pages[index]
        if index == 0 and _more_pages(tif):
            log.warning("%s: a TIFF of %d pages; only the first is read", path,
                        len(tif.pages))
        if page.dtype is None:
            raise ImageReadError(f"{path}: corrupt or truncated TIFF (unsupported sample format)")
        check_declared_size(path, page.shaped, page.dtype.itemsize, max_bytes)
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)]
        size = path.stat().st_size
        if page.compression == 1 and ends and max(ends) > size:
            raise ImageReadError(
                f"{path}: corrupt or truncated TIFF (its image data ends at byte {max(ends)}, "
                f"the file has {size})"
            )
        return page.asarray()


def _more_pages(tif) -> bool:
    """True when a TIFF has a second full-resolution page (not a thumbnail of the first)."""
    try:
        return len(tif.pages) > 1 and not getattr(tif.pages[1], "is_reduced", False)
    except Exception:  # noqa: BLE001 - a broken page chain: page 0 is what is read
        return False


def _read_pillow(path: Path, max_bytes: int) -> np.ndarray:
    """A PNG or JPEG through Pillow (as skimage.io reads them), its header size checked first."""
    import imageio.v3 as iio
    from PIL import Image

    with Image.open(path) as img:
        width, height = img.size
        pixel_bytes = _PIL_PIXEL_BYTES.get(img.mode, 8)
    check_declared_size(path, (height, width), pixel_bytes, max_bytes)
    return iio.imread(path, plugin="pillow")


def _read_npy(path: Path, max_bytes: int) -> np.ndarray:
    """A .npy array: shape and dtype from its header (memory-mapped) before it is read."""
    header = np.load(path, mmap_mode="r", allow_pickle=False)
    check_declared_size(path, header.shape, header.dtype.itemsize, max_bytes, max_ratio=1)
    return np.array(header)


def _read_csv(path: Path, max_bytes: int) -> np.ndarray:
    """Numeric CSV (comma, semicolon, tab or space separated) as a 2-D array (each value takes
    at least 2 bytes of text, so the decoded float64s take at most 4x the file size)."""
    check_declared_size(path, (path.stat().st_size,), 4, max_bytes, max_ratio=4)
    with open(path, encoding="utf-8", errors="replace") as f:
        first = next((ln for ln in f if ln.strip()), "")
    delim = next((d for d in (",", ";", "\t") if d in first), None)
    return np.loadtxt(path, delimiter=delim, ndmin=2)


_DECODERS = {"TIFF": _read_tiff, "PNG": _read_pillow, "JPEG": _read_pillow, "NPY": _read_npy,
             "CSV": _read_csv}
