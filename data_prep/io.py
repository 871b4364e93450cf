"""Reading raw SEM images, EDS element maps and labels; atomic TIFF writing.

Raw layout (see DESIGN.md): ``<raw_dir>/<sample>/sem.<ext>``,
``<raw_dir>/<sample>/eds/<El...>.<ext>`` and optionally ``<raw_dir>/<sample>/labels.<ext>``.
Every failure names the file or sample.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.phases import NUM_CLASSES, STUDY_GREY

IMAGE_EXTS = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
LABEL_EXTS = IMAGE_EXTS + (".npy", ".h5", ".hdf5")
H5OINA_EXTS = (".h5oina",)
EDS_EXTS = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".npy", ".csv")
REQUIRED_ELEMENTS = ("Ni", "O", "Zr")
OPTIONAL_ELEMENTS = ("Y",)

# fmt: off
ELEMENT_SYMBOLS = frozenset("""
H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br
Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho
Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es
Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og
""".split())
# fmt: on
_ELEMENT_RE = re.compile(r"^([A-Z][a-z]?)(?![A-Za-z])")
_RGB_WEIGHTS = np.array([0.2125, 0.7154, 0.0721], dtype=np.float64)  # as skimage.color.rgb2gray


class ImageReadError(ValueError):
    """An image or map file is missing, empty, corrupt or not an image."""


class SampleError(ValueError):
    """A raw sample folder is incomplete or inconsistent."""


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


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty (0 bytes)")


def _to_grey(arr: np.ndarray, path: Path) -> np.ndarray:
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
    _check_file(path)
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
    grey = _to_grey(arr, path)
    if not np.isfinite(grey).all():
        raise ImageReadError(f"{path}: image contains NaN or infinite values")
    return grey


def _read_csv(path: Path) -> np.ndarray:
    """Numeric CSV (comma, semicolon, tab or space separated) as a 2-D array."""
    text = path.read_text()
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delim = next((d for d in (",", ";", "\t") if d in first), None)
    return np.loadtxt(path, delimiter=delim, ndmin=2)


def normalize_sem(image: np.ndarray) -> np.ndarray:
    """Robust 0.5-99.5 % percentile stretch to float32 [0, 1].

    Used identically at data preparation and at segmentation time, so that the network sees
    the same intensity distribution whatever the detector gain/offset was. Above 4 Mpx the
    percentiles come from an even subsample and the stretch runs in one output buffer, so a
    16k × 16k image costs one extra float32 copy, not several.
    """
    img = np.asarray(image, dtype=np.float32)
    step = -(-img.size // PERCENTILE_SAMPLE)
    sample = img.reshape(-1)[::step]
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    if not hi > lo:
        lo, hi = float(img.min()), float(img.max())
    if not hi > lo:
        return np.zeros_like(img, dtype=np.float32)
    out = np.subtract(img, lo, dtype=np.float32)
    out *= np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out)


PERCENTILE_SAMPLE = 1 << 22  # pixels used for the stretch percentiles of large images


def element_of(file_name: str, pattern: str | None = None) -> str | None:
    """Element symbol a map file name starts with ('Ni Ka1.tif' -> 'Ni'), or None.

    ``pattern`` (a regular expression searched in the name) may replace the default rule; its
    group ``el`` (or its first group) is the element symbol, e.g. ``r"map_(?P<el>[A-Z][a-z]?)"``.
    """
    if pattern:
        m = re.search(pattern, file_name)
        el = (m.groupdict().get("el") or m.group(1)) if m else None
    else:
        m = _ELEMENT_RE.match(file_name)
        el = m.group(1) if m else None
    return el if el in ELEMENT_SYMBOLS else None


def find_eds_maps(eds_dir: str | os.PathLike, pattern: str | None = None) -> dict[str, Path]:
    """Map element symbol -> file for the element maps in ``eds_dir``.

    A file belongs to an element when its name starts with the symbol followed by a non-letter
    or the end of the stem ('Ni Ka1.tif', 'O.png', 'Ni_Ka.tif'; 'N.tif' is nitrogen, not nickel,
    'Os La.tif' is osmium, not oxygen). When several files match, the first in sorted order wins.
    """
    eds_dir = Path(eds_dir)
    if not eds_dir.is_dir():
        return {}
    maps: dict[str, Path] = {}
    for f in sorted(eds_dir.iterdir()):
        if f.name.startswith(".") or not f.is_file() or f.suffix.lower() not in EDS_EXTS:
            continue
        el = element_of(f.stem, pattern)
        if el is not None and el not in maps:
            maps[el] = f
    return maps


def read_eds_map(path: str | os.PathLike) -> np.ndarray:
    """Read one element map (counts or intensities) as 2-D float32."""
    return read_grey(path)


_LENGTH_NM = {"pm": 1e-3, "nm": 1.0, "um": 1e3, "µm": 1e3, "μm": 1e3, "mm": 1e6}


def read_sem_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """SEM acquisition facts from a TIFF: ``pixel_size_nm``, ``voltage_kv``, ``detector``.

    Zeiss SEM TIFFs carry them in tag 34118 (``CZ_SEM``, parsed by tifffile), e.g.
    ``ap_image_pixel_size`` = ('Image Pixel Size', 12.5, 'nm'); Thermo Fisher / FEI TIFFs in
    their INI-style tag (``[Scan] PixelWidth``); else the pixel size comes from the TIFF
    resolution tags when they are physical (cm/inch). Missing facts are left out.
    """
    path = Path(path)
    out: dict[str, Any] = {}
    if path.suffix.lower() not in (".tif", ".tiff"):
        return out
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            sem_md = tif.sem_metadata or {}
            fei_md = tif.fei_metadata or {}
            tags = tif.pages.first.tags
            xres, unit = tags.get("XResolution"), tags.get("ResolutionUnit")
            res = (xres.value, int(unit.value)) if xres is not None and unit is not None else None
    except Exception:  # noqa: BLE001 - metadata is optional; the image reader reports errors
        return out
    for key in ("ap_image_pixel_size", "ap_pixel_size"):
        val = sem_md.get(key)
        if isinstance(val, tuple) and len(val) >= 3 and str(val[2]) in _LENGTH_NM:
            out["pixel_size_nm"] = float(val[1]) * _LENGTH_NM[str(val[2])]
            break
    kv = sem_md.get("ap_actualkv") or sem_md.get("ap_manualkv")
    if isinstance(kv, tuple) and len(kv) >= 2 and isinstance(kv[1], int | float):
        out["voltage_kv"] = float(kv[1]) * (1e-3 if len(kv) > 2 and kv[2] == "V" else 1.0)
    for key in ("dp_detector_channel", "dp_detector_type", "dp_detector"):
        det = sem_md.get(key)
        if isinstance(det, tuple) and len(det) >= 2:
            out["detector"] = str(det[1])
            break
    out = _fei_metadata(fei_md) | out
    if "pixel_size_nm" not in out and res is not None:
        (num, den), unit_code = res
        per_unit = num / den if den else 0.0
        nm_per_unit = {2: 2.54e7, 3: 1e7}.get(unit_code)
        if per_unit and nm_per_unit is not None:
            size = nm_per_unit / per_unit
            if 1e-3 < size < 1e5:  # ignore screen dpi defaults
                out["pixel_size_nm"] = size
    return out


def _fei_metadata(fei: Mapping[str, Any]) -> dict[str, Any]:
    """Pixel size, kV and detector from a Thermo Fisher / FEI TIFF's INI-style tag (34680/2),
    as tifffile parses it: ``[Scan] PixelWidth`` in metres, ``[Beam] HV`` in volts."""
    out: dict[str, Any] = {}
    scan, beam, det = (fei.get(k) or {} for k in ("Scan", "Beam", "Detectors"))
    width = scan.get("PixelWidth")
    if isinstance(width, int | float) and width > 0:
        out["pixel_size_nm"] = float(width) * 1e9
    hv = beam.get("HV")
    if isinstance(hv, int | float) and hv > 0:
        out["voltage_kv"] = float(hv) * 1e-3
    name = " ".join(str(det[k]) for k in ("Name", "Mode") if det.get(k))
    if name:
        out["detector"] = name
    return out


def read_pixel_size_nm(path: str | os.PathLike) -> float | None:
    """Pixel size in nm from Zeiss SEM metadata or TIFF resolution tags, else None."""
    return read_sem_metadata(path).get("pixel_size_nm")


def detect_data_bar(image: np.ndarray, max_fraction: float = 0.35) -> int:
    """Height (rows) of an SEM information data bar at the bottom of ``image``, 0 if none.

    A data bar is a band of flat background (mostly one grey value, usually black or white)
    with text, unlike the micrograph whose rows are textured and noisy. We flag rows where at
    least half the pixels share the row's most common value and take the contiguous block of
    flagged rows (short text gaps allowed) that reaches the bottom edge.
    """
    img = np.asarray(image)
    h = img.shape[0]
    q = np.rint(img).astype(np.int64) if img.dtype.kind == "f" else img.astype(np.int64)
    flagged = np.zeros(h, bool)
    lo = max(0, h - int(max_fraction * h) - 1)
    for y in range(lo, h):
        _, counts = np.unique(q[y], return_counts=True)
        flagged[y] = counts.max() >= 0.5 * q.shape[1]
    if not flagged[h - 1]:
        return 0
    gap_max = max(3, h // 100)
    top, gap = h - 1, 0
    for y in range(h - 1, lo - 1, -1):
        if flagged[y]:
            top, gap = y, 0
        else:
            gap += 1
            if gap > gap_max:
                break
    height = h - top
    return height if height >= 4 else 0


def crop_data_bar(image: np.ndarray, data_bar: str | int = "auto") -> tuple[np.ndarray, int]:
    """Remove the data bar: ``"auto"`` (detect), ``"none"``/0, or a height in rows."""
    if data_bar in ("none", None, 0, "0"):
        return image, 0
    height = detect_data_bar(image) if data_bar == "auto" else int(data_bar)
    if not 0 <= height < image.shape[0]:
        raise ValueError(f"data bar height {height} does not fit an image of {image.shape[0]} rows")
    return (image[: image.shape[0] - height] if height else image), height


@dataclass
class H5OinaMaps:
    """EDS maps of an Oxford AZtec H5OINA file (SEM-like orientation: rows = Y)."""

    maps: dict[str, np.ndarray]  # element -> (Y cells, X cells) float32, NaN filled
    valid: np.ndarray  # bool mask of the acquired area
    step_um: tuple[float, float]  # (Y step, X step)
    electron_image: np.ndarray | None
    electron_step_um: tuple[float, float] | None
    lines: dict[str, str]  # element -> X-ray line (e.g. 'Ka1')
    box: tuple[float, float, float, float] | None = None  # (y0, x0, h, w) in the image, relative


def _h5_scalar(group: Any, name: str) -> float | None:
    if group is None or name not in group:
        return None
    return float(np.asarray(group[name][()]).ravel()[0])


def read_h5oina(path: str | os.PathLike, slice_name: str = "1") -> H5OinaMaps:
    """Element maps from an AZtec ``.h5oina`` file (HDF5, read with h5py).

    Maps live in ``/<slice>/EDS/Data/<Window Integral|Peak Area|Composition>/<El line>`` as
    flattened (X cells * Y cells) arrays; ``/<slice>/EDS/Header`` gives ``X Cells``, ``Y Cells``
    and the ``X Step``/``Y Step`` in micrometres. Pixels outside an irregular acquisition area
    are NaN: they are filled with the map's median and reported in ``valid``.
    """
    import h5py

    path = Path(path)
    _check_file(path)
    try:
        with h5py.File(path, "r") as f:
            eds = f.get(f"{slice_name}/EDS")
            if eds is None:
                raise ImageReadError(f"{path}: no /{slice_name}/EDS group (not an EDS H5OINA)")
            header = eds.get("Header")
            nx, ny = _h5_scalar(header, "X Cells"), _h5_scalar(header, "Y Cells")
            if nx is None or ny is None:
                raise ImageReadError(f"{path}: EDS header lacks 'X Cells'/'Y Cells'")
            nx, ny = int(nx), int(ny)
            step = (_h5_scalar(header, "Y Step") or 0.0, _h5_scalar(header, "X Step") or 0.0)
            box = None
            if header is not None and "Relative Offset" in header and "Relative Size" in header:
                (ox, oy), (sx, sy) = (
                    np.asarray(header[k][()], np.float64).ravel()[:2]
                    for k in ("Relative Offset", "Relative Size")
                )
                box = (float(oy), float(ox), float(sy), float(sx))
            data = eds.get("Data")
            group = next(
                (
                    data[g]
                    for g in ("Window Integral", "Peak Area", "Composition")
                    if data is not None and g in data
                ),
                None,
            )
            if group is None:
                raise ImageReadError(f"{path}: no element maps under /{slice_name}/EDS/Data")
            maps, lines = {}, {}
            for name in sorted(group):
                el = element_of(name)
                if el is None or el in maps:
                    continue
                flat = np.asarray(group[name][()], np.float32).ravel()
                if flat.size != nx * ny:
                    raise ImageReadError(
                        f"{path}: map '{name}' has {flat.size} values, header says {ny}x{nx}"
                    )
                maps[el] = flat.reshape(ny, nx)
                line = group[name].attrs.get("X-ray Line", name[len(el) :].strip())
                lines[el] = line.decode() if isinstance(line, bytes) else str(line)
            image, image_step = None, None
            ei = f.get(f"{slice_name}/Electron Image")
            if ei is not None and "Data" in ei:
                det = next((ei["Data"][g] for g in ("BSE", "SE", "FSE") if g in ei["Data"]), None)
                eh = ei.get("Header")
                ex, ey = _h5_scalar(eh, "X Cells"), _h5_scalar(eh, "Y Cells")
                if det is not None and len(det) and ex and ey:
                    image = np.asarray(det[sorted(det)[0]][()]).reshape(int(ey), int(ex))
                    image_step = (_h5_scalar(eh, "Y Step") or 0.0, _h5_scalar(eh, "X Step") or 0.0)
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any HDF5 failure means "not a readable H5OINA"
        raise ImageReadError(f"{path}: cannot read H5OINA ({type(exc).__name__}: {exc})") from exc
    if not maps:
        raise ImageReadError(f"{path}: H5OINA holds no element maps")
    valid = np.logical_and.reduce([np.isfinite(m) for m in maps.values()])
    if not valid.any():
        raise ImageReadError(f"{path}: H5OINA maps hold no finite values")
    for el, m in maps.items():
        maps[el] = np.where(valid, m, np.median(m[valid])).astype(np.float32)
    return H5OinaMaps(maps, valid, step, image, image_step, lines, box)


def _find_one(folder: Path, stem: str, exts: tuple[str, ...]) -> Path | None:
    if not folder.is_dir():
        return None
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.stem.lower() == stem and f.suffix.lower() in exts:
            return f
    return None


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
        raise ValueError(f"label encoding must be auto, ids, grey or ilastik, not {encoding!r}")
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


def _palette_indices(path: Path) -> np.ndarray | None:
    """Indices of a palette-mode PNG as float32, or None for any other PNG."""
    from PIL import Image

    _check_file(path)
    try:
        with Image.open(path) as img:
            return np.asarray(img, np.float32) if img.mode == "P" else None
    except Exception:  # noqa: BLE001 - read_grey reports unreadable files by name
        return None


def read_label_values(path: str | os.PathLike, palette_indices: bool = False) -> np.ndarray:
    """Raw values of a label image: TIFF/PNG/npy, or ilastik HDF5 (``/exported_data``).

    With ``palette_indices``, a palette ("indexed colour") PNG, as image editors save drawn
    scribbles, gives its palette indices rather than the brightness of its colours (label
    maps keep the brightness: the study's grey 0/85/170/255 is often saved indexed).
    """
    path = Path(path)
    if (
        palette_indices
        and path.suffix.lower() == ".png"
        and (indices := _palette_indices(path)) is not None
    ):
        return indices
    if path.suffix.lower() not in (".h5", ".hdf5"):
        return read_grey(path)
    import h5py

    _check_file(path)
    try:
        with h5py.File(path, "r") as f:
            key = "exported_data" if "exported_data" in f else next(iter(f), None)
            if key is None or not isinstance(f[key], h5py.Dataset):
                raise ImageReadError(f"{path}: no /exported_data dataset (ilastik export)")
            arr = np.asarray(f[key][()])
    except ImageReadError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise ImageReadError(
            f"{path}: cannot read HDF5 labels ({type(exc).__name__}: {exc})"
        ) from exc
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise ImageReadError(f"{path}: expected 2-D labels, got shape {arr.shape}")
    return arr.astype(np.float32)


@dataclass(frozen=True)
class SampleFiles:
    """Where one sample's files are: SEM image, EDS (folder of maps or .h5oina), labels."""

    name: str
    sem: Path | None
    eds: Path | None
    labels: Path | None = None
    pixel_size_nm: float | None = None
    extra_sem: tuple[Path, ...] = ()  # further detectors (channels 2..N), same field of view
    scribbles: Path | None = None  # sparse hand labels (see scribbles_from_values)
    folder: Path | None = None  # the sample's folder (a manifest entry: its SEM image's)
    notes: tuple[str, ...] = ()  # files found but not used, and why (become RawSample warnings)


def _eds_folder(d: Path) -> Path:
    """The sample's ``eds`` sub-folder, matched case-insensitively (``EDS`` from Windows)."""
    if d.is_dir():
        for sub in sorted(d.iterdir()):
            if sub.is_dir() and sub.name.lower() == "eds":
                return sub
    return d / "eds"


# SEM images as AZtec and SEM software name them in an export folder ("Electron Image 1.tif").
_ELECTRON_IMAGE_RE = re.compile(r"^(electron image|se image|bse image|sem image)", re.IGNORECASE)


def _electron_images(folders: tuple[Path, ...]) -> list[Path]:
    """Images named like an exported electron image in ``folders``, sorted per folder."""
    return [
        f
        for folder in dict.fromkeys(folders)
        if folder.is_dir()
        for f in sorted(folder.iterdir())
        if f.is_file() and f.suffix.lower() in IMAGE_EXTS and _ELECTRON_IMAGE_RE.match(f.stem)
    ]


def _has_flat_eds_maps(maps: Mapping[str, Path]) -> bool:
    """True when a folder's maps (``find_eds_maps``) cover at least two of the required
    elements: an AZtec export folder, maps beside the electron image instead of in ``eds/``."""
    return sum(el in maps for el in REQUIRED_ELEMENTS) >= 2


def sample_files(sample_dir: str | os.PathLike, name: str | None = None) -> SampleFiles:
    """The files of a sample folder in the raw layout (DESIGN.md); ``name`` defaults to the
    folder's name. Also accepted: an AZtec-style export folder, element maps beside the SEM
    image (``Electron Image 1.tif`` when there is no ``sem.tif``), without an ``eds`` folder."""
    d = Path(sample_dir)
    eds_folder = _eds_folder(d)
    eds: Path | None = eds_folder
    if not eds_folder.is_dir() and _has_flat_eds_maps(find_eds_maps(d)):
        eds = d
    notes = []
    h5 = [f for f in sorted(d.glob("**/*")) if f.suffix.lower() in H5OINA_EXTS and f.is_file()]
    if h5 and not find_eds_maps(eds):
        eds = h5[0]
        if len(h5) > 1:
            notes.append(
                f"several H5OINA files ({', '.join(f.name for f in h5)}): used "
                f"{eds.name}; keep one per sample folder or use a manifest"
            )
    extra = []
    for i in range(2, 10):
        f = _find_one(d, f"sem{i}", IMAGE_EXTS)
        if f is None:
            break
        extra.append(f)
    sem = _find_one(d, "sem", IMAGE_EXTS)
    electron = _electron_images((d, eds_folder)) if sem is None else []
    if electron:
        sem = electron[0]
        if len(electron) > 1:
            notes.append(
                f"several electron images ({', '.join(f.name for f in electron)}): used "
                f"{sem.name}; name the right one sem.tif"
            )
    labels = _find_one(d, "labels", LABEL_EXTS)
    scribbles = _find_one(d, "scribbles", LABEL_EXTS)
    return SampleFiles(
        name or d.name,
        sem,
        eds,
        labels,
        extra_sem=tuple(extra),
        scribbles=scribbles,
        folder=d,
        notes=tuple(notes),
    )


def _repeated(names: list[str]) -> list[str]:
    """The names that occur more than once, sorted."""
    return sorted({n for n in names if names.count(n) > 1})


def read_manifest(path: str | os.PathLike) -> list[SampleFiles]:
    """Samples listed in a CSV manifest with columns ``sample, sem`` and optional ``eds``
    (folder of maps or .h5oina file), ``labels``, ``scribbles``, ``pixel_size_nm``, ``sem2``..
    (further detectors); relative paths are relative to the manifest's folder."""
    import csv

    path = Path(path)
    _check_file(path)
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"sample", "sem"} <= set(rows[0]):
        raise SampleError(f"manifest {path}: needs a header with at least 'sample' and 'sem'")

    def rel(value: str | None) -> Path | None:
        return (path.parent / value.strip()) if value and value.strip() else None

    out = []
    for i, row in enumerate(rows, start=2):
        name = (row.get("sample") or "").strip()
        if not name:
            raise SampleError(f"manifest {path}, line {i}: empty sample name")
        px = (row.get("pixel_size_nm") or "").strip()
        try:
            pixel = float(px) if px else None
        except ValueError as exc:
            raise SampleError(
                f"manifest {path}, line {i}: pixel_size_nm {px!r} is not a number"
            ) from exc
        extra = tuple(p for p in (rel(row.get(f"sem{i}")) for i in range(2, 10)) if p)
        sem, eds, labels = rel(row.get("sem")), rel(row.get("eds")), rel(row.get("labels"))
        scribbles = rel(row.get("scribbles"))
        folder = sem.parent if sem is not None else None  # where truth.tif would sit
        out.append(SampleFiles(name, sem, eds, labels, pixel, extra, scribbles, folder))
    dup = _repeated([s.name for s in out])
    if dup:
        raise SampleError(f"manifest {path}: duplicate sample names {dup}")
    return out


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


def read_raw_sample(
    sample_dir: str | os.PathLike | SampleFiles,
    data_bar: str | int = "none",
    element_pattern: str | None = None,
    label_encoding: str = "auto",
    channels: int = 1,
) -> RawSample:
    """Read one raw sample (folder or SampleFiles); raise SampleError naming it and the problem.

    ``data_bar``: remove an SEM data bar (``auto``, a height in rows, or ``none``);
    ``element_pattern``: see ``element_of``; ``label_encoding``: see ``labels_from_values``;
    ``channels``: number of SEM detector images (``sem.tif``, ``sem2.tif``, ...) to read.
    """
    if isinstance(sample_dir, SampleFiles):
        files = sample_dir
    else:
        if not Path(sample_dir).is_dir():
            raise SampleError(f"sample '{Path(sample_dir).name}': folder {sample_dir} not found")
        files = sample_files(sample_dir)
    name = files.name
    where = f"sample '{name}'"
    metadata: dict[str, Any] = {}
    h5: H5OinaMaps | None = None
    is_h5 = files.eds is not None and files.eds.suffix.lower() in H5OINA_EXTS
    if files.sem is None and not is_h5:
        raise SampleError(
            f"{where}: missing SEM image (sem.tif/.png/.jpg or an 'Electron Image' file)"
        )
    try:
        if files.sem is not None:
            sem = read_grey(files.sem)
            metadata.update(read_sem_metadata(files.sem))
        if len(files.extra_sem) < channels - 1:
            raise SampleError(
                f"{where}: {channels} channels configured but only {1 + len(files.extra_sem)} "
                "SEM image(s) found (sem.tif, sem2.tif, ...)"
            )
        extra = [read_grey(p) for p in files.extra_sem[: channels - 1]]
        eds_src = files.eds
        if is_h5:
            h5 = read_h5oina(eds_src)
            eds = h5.maps
            metadata["eds_source"] = eds_src.name
            metadata["eds_step_um"] = list(h5.step_um)
            metadata["eds_valid_fraction"] = float(h5.valid.mean())
            if files.sem is None:  # no separate SEM file: the H5OINA's own electron image
                if h5.electron_image is None:
                    raise SampleError(
                        f"{where}: missing SEM image (no sem.tif and no electron image in "
                        f"{eds_src.name})"
                    )
                sem = _to_grey(h5.electron_image, eds_src)
                metadata["sem_source"] = f"{eds_src.name}: electron image"
                if h5.electron_step_um and h5.electron_step_um[1] > 0:
                    metadata["pixel_size_nm"] = h5.electron_step_um[1] * 1e3
        else:
            found = find_eds_maps(eds_src, element_pattern) if eds_src is not None else {}
            eds = {el: read_eds_map(p) for el, p in found.items()}
            metadata["eds_files"] = {el: p.name for el, p in found.items()}
        label_vals = read_label_values(files.labels) if files.labels is not None else None
        use_scribbles = files.scribbles is not None and files.labels is None
        scribble_vals = (
            read_label_values(files.scribbles, palette_indices=True) if use_scribbles else None
        )
    except ImageReadError as exc:
        raise SampleError(f"{where}: {exc}") from exc
    try:
        sem, bar = crop_data_bar(sem, data_bar)
    except ValueError as exc:
        raise SampleError(f"{where}: {exc}") from exc
    metadata["data_bar_rows"] = bar
    box = _eds_box(h5, sem.shape) if label_vals is None else None
    if box is not None:  # maps cover part of the image: label that part only
        metadata["eds_box_px"] = list(box)
        y0, x0, bh, bw = box
        sem = sem[y0 : y0 + bh, x0 : x0 + bw]
        extra = [img[y0 : y0 + bh, x0 : x0 + bw] for img in extra]
    for i, img in enumerate(extra, start=2):
        img = img[: sem.shape[0]] if bar and img.shape[0] == sem.shape[0] + bar else img
        if img.shape != sem.shape:
            raise SampleError(
                f"{where}: SEM channel {i} shape {img.shape} differs from {sem.shape}"
            )
        extra[i - 2] = img
    labels = None
    if label_vals is not None:
        encoding = label_encoding
        if encoding == "auto" and files.labels.suffix.lower() in (".h5", ".hdf5"):
            encoding = "ilastik"
        labels = labels_from_values(label_vals, f"{where}, {files.labels.name}", encoding)
        if bar and labels.shape[0] == sem.shape[0] + bar:
            labels = labels[: sem.shape[0]]
        if labels.shape != sem.shape:
            raise SampleError(
                f"{where}: labels shape {labels.shape} differs from SEM shape {sem.shape}"
            )
    missing = [el for el in REQUIRED_ELEMENTS if el not in eds]
    if labels is None and missing:
        src = files.eds if files.eds is not None else "(no EDS given)"
        raise SampleError(
            f"{where}: missing element map(s) {', '.join(missing)} in {src} "
            f"(need {', '.join(REQUIRED_ELEMENTS)}; or provide labels.tif)"
        )
    for el, m in eds.items():
        if m.shape[0] > sem.shape[0] or m.shape[1] > sem.shape[1]:
            raise SampleError(
                f"{where}: EDS map {el} {m.shape} is larger than the SEM image {sem.shape}"
            )
    warnings = list(files.notes)
    scribbles = None
    if files.scribbles is not None and files.labels is not None:
        warnings.append(f"{files.scribbles.name} ignored: {files.labels.name} labels every pixel")
    if scribble_vals is not None:
        where_file = f"{where}, {files.scribbles.name}"
        scribbles = scribbles_from_values(scribble_vals, where_file)
        if bar and scribbles.shape[0] == sem.shape[0] + bar:
            scribbles = scribbles[: sem.shape[0]]
        if box is not None and scribbles.shape != sem.shape:
            scribbles = scribbles[box[0] : box[0] + box[2], box[1] : box[1] + box[3]]
        if scribbles.shape != sem.shape:
            raise SampleError(
                f"{where_file}: scribbles shape {scribbles.shape} differs from SEM {sem.shape}"
            )
    pixel = files.pixel_size_nm or metadata.get("pixel_size_nm")
    if h5 is not None and pixel and all(h5.step_um):
        grid = sem.shape[1] / next(iter(eds.values())).shape[1]
        metadata["eds_scale_from_steps"] = h5.step_um[1] * 1e3 / pixel
        metadata["eds_scale_from_grid"] = grid
    return RawSample(name, sem, eds, labels, pixel, metadata, extra, scribbles, warnings)


# Folders that archives and operating systems leave behind: never samples.
SYSTEM_FOLDERS = frozenset(
    {"__macosx", "@eadir", "$recycle.bin", "system volume information", "__pycache__"}
)
MAX_GROUP_DEPTH = 3  # grouping folders (e.g. <raw_dir>/<date>/<sample>) searched this deep


def _sample_files_in(d: Path) -> list[str]:
    """Names of the files in ``d`` that make it a sample folder: an SEM or labels image, an
    eds folder, an H5OINA file, or element maps as AZtec exports them (beside the electron
    image). Empty for any other folder."""
    maps = find_eds_maps(d)
    found = sorted(p.name for p in maps.values()) if _has_flat_eds_maps(maps) else []
    for f in sorted(d.iterdir()):
        low, ext = f.name.lower(), f.suffix.lower()
        if (f.is_dir() and low == "eds") or (
            f.is_file()
            and (
                (Path(low).stem == "sem" and ext in IMAGE_EXTS)
                or (Path(low).stem == "labels" and ext in LABEL_EXTS)
                or ext in H5OINA_EXTS
            )
        ):
            found.append(f.name)
    return found


def _sub_folders(d: Path) -> list[Path]:
    return sorted(
        p
        for p in d.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name.lower() not in SYSTEM_FOLDERS
    )


def discover_samples(raw_dir: str | os.PathLike) -> list[SampleFiles]:
    """The samples under ``raw_dir``, sorted: its sub-folders, skipping hidden and system ones.

    A sub-folder without sample files of its own but with sub-folders is a grouping folder
    (``<raw_dir>/<date>/<sample>``): its samples are found inside it, named by their path
    relative to ``raw_dir`` with ``/`` turned into ``__``. Any other folder is returned as a
    sample, so that an empty or incomplete one is reported by name instead of ignored.
    Raises FileNotFoundError when raw_dir does not exist and SampleError when it holds no
    sample folders.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"raw_dir {raw_dir} does not exist or is not a folder")
    own = _sample_files_in(raw_dir)
    own_eds = {_eds_folder(raw_dir)}
    if own and not any(_sample_files_in(c) for c in _sub_folders(raw_dir) if c not in own_eds):
        raise SampleError(
            f"raw_dir {raw_dir} looks like one sample folder itself ({', '.join(own[:4])}): "
            "point raw_dir at the folder that contains the sample folders"
        )
    found: list[SampleFiles] = []
    todo = [(p, 1) for p in _sub_folders(raw_dir)]
    while todo:
        folder, depth = todo.pop(0)
        children = _sub_folders(folder)
        if not _sample_files_in(folder) and children and depth < MAX_GROUP_DEPTH:
            todo += [(c, depth + 1) for c in children]
            continue
        name = "__".join(folder.relative_to(raw_dir).parts)
        found.append(sample_files(folder, name))
    if not found:
        raise SampleError(
            f"raw_dir {raw_dir} holds no sample folders (expected <raw_dir>/<sample>/sem.tif)"
        )
    # Case-insensitive file systems would merge outputs whose names differ only in case.
    clash = set(_repeated([s.name.lower() for s in found]))
    if clash:
        folders = [str(s.folder) for s in found if s.name.lower() in clash]
        raise SampleError(f"raw_dir {raw_dir}: folders {folders} get the same sample name")
    return sorted(found, key=lambda s: s.name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary name next to ``path``; rename it to ``path`` when the block succeeds.

    Every writer in data_prep goes through this, so no output is ever half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp", dir=path.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_tiff_atomic(path: str | os.PathLike, array: np.ndarray, **kwargs) -> None:
    """Write a TIFF via tifffile to a temporary name in the same folder, then os.replace."""
    import tifffile

    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.asarray(array), **kwargs)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file (JSON, HTML) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON atomically; NumPy scalars become numbers, other objects strings."""
    write_text_atomic(path, json.dumps(payload, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)
