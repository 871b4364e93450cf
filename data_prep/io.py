"""Reading raw SEM images, EDS element maps and labels; atomic TIFF writing.

Raw layout (see DESIGN.md): ``<raw_dir>/<sample>/sem.<ext>``,
``<raw_dir>/<sample>/eds/<El...>.<ext>`` and optionally ``<raw_dir>/<sample>/labels.<ext>``.
Every failure names the file or sample.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep.phases import NUM_CLASSES, STUDY_GREY

IMAGE_EXTS = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
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
    the same intensity distribution whatever the detector gain/offset was.
    """
    img = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(img, [0.5, 99.5])
    if not hi > lo:
        lo, hi = float(img.min()), float(img.max())
    if not hi > lo:
        return np.zeros_like(img, dtype=np.float32)
    return np.clip((img - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def element_of(file_name: str) -> str | None:
    """Element symbol a map file name starts with ('Ni Ka1.tif' -> 'Ni'), or None."""
    m = _ELEMENT_RE.match(file_name)
    if m and m.group(1) in ELEMENT_SYMBOLS:
        return m.group(1)
    return None


def find_eds_maps(eds_dir: str | os.PathLike) -> dict[str, Path]:
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
        el = element_of(f.stem)
        if el is not None and el not in maps:
            maps[el] = f
    return maps


def read_eds_map(path: str | os.PathLike) -> np.ndarray:
    """Read one element map (counts or intensities) as 2-D float32."""
    return read_grey(path)


def read_pixel_size_nm(path: str | os.PathLike) -> float | None:
    """Pixel size in nm from Zeiss SEM metadata or TIFF resolution tags, else None."""
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            sem_md = tif.sem_metadata
            if sem_md:
                for key in ("ap_image_pixel_size", "ap_pixel_size"):
                    val = sem_md.get(key)
                    if isinstance(val, tuple) and len(val) >= 3:
                        scale = {"pm": 1e-3, "nm": 1.0, "um": 1e3, "µm": 1e3, "mm": 1e6}
                        if str(val[2]) in scale:
                            return float(val[1]) * scale[str(val[2])]
            page = tif.pages.first
            tags = page.tags
            xres, unit = tags.get("XResolution"), tags.get("ResolutionUnit")
            if xres is None or unit is None:
                return None
            num, den = xres.value
            per_unit = num / den if den else 0.0
            nm_per_unit = {2: 2.54e7, 3: 1e7}.get(int(unit.value))
            if not per_unit or nm_per_unit is None:
                return None
            size = nm_per_unit / per_unit
            return size if 1e-3 < size < 1e5 else None  # ignore screen dpi defaults
    except Exception:  # noqa: BLE001 - metadata is optional
        return None


def _find_one(folder: Path, stem: str, exts: tuple[str, ...]) -> Path | None:
    if not folder.is_dir():
        return None
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.stem.lower() == stem and f.suffix.lower() in exts:
            return f
    return None


def labels_from_values(values: np.ndarray, where: str) -> np.ndarray:
    """Integer label image with class ids 0..3 or the study's grey 0/85/170/255 -> uint8 ids."""
    vals = np.rint(values).astype(np.int64)
    uniq = np.unique(vals)
    if np.all((uniq >= 0) & (uniq < NUM_CLASSES)):
        return vals.astype(np.uint8)
    if np.all(np.isin(uniq, STUDY_GREY)):
        lut = np.zeros(256, dtype=np.uint8)
        for cid, g in enumerate(STUDY_GREY):
            lut[g] = cid
        return lut[vals]
    bad = [int(v) for v in uniq if v not in STUDY_GREY and not 0 <= v < NUM_CLASSES][:8]
    raise SampleError(
        f"{where}: labels with unknown values {bad} "
        f"(expected class ids 0..{NUM_CLASSES - 1} or grey {list(STUDY_GREY)})"
    )


def read_raw_sample(sample_dir: str | os.PathLike) -> RawSample:
    """Read one raw sample folder; raise SampleError naming the sample and the problem."""
    sample_dir = Path(sample_dir)
    name = sample_dir.name
    where = f"sample '{name}'"
    if not sample_dir.is_dir():
        raise SampleError(f"{where}: folder {sample_dir} not found")
    sem_path = _find_one(sample_dir, "sem", IMAGE_EXTS)
    if sem_path is None:
        raise SampleError(f"{where}: missing SEM image (sem.tif/.png/.jpg) in {sample_dir}")
    try:
        sem = read_grey(sem_path)
        eds = {el: read_eds_map(p) for el, p in find_eds_maps(sample_dir / "eds").items()}
        label_path = _find_one(sample_dir, "labels", IMAGE_EXTS + (".npy",))
        label_vals = read_grey(label_path) if label_path is not None else None
    except ImageReadError as exc:
        raise SampleError(f"{where}: {exc}") from exc
    labels = None
    if label_vals is not None:
        labels = labels_from_values(label_vals, f"{where}, {label_path.name}")
        if labels.shape != sem.shape:
            raise SampleError(
                f"{where}: labels shape {labels.shape} differs from SEM shape {sem.shape}"
            )
    missing = [el for el in REQUIRED_ELEMENTS if el not in eds]
    if labels is None and missing:
        raise SampleError(
            f"{where}: missing element map(s) {', '.join(missing)} in {sample_dir / 'eds'} "
            f"(need {', '.join(REQUIRED_ELEMENTS)}; or provide labels.tif)"
        )
    for el, m in eds.items():
        if m.shape[0] > sem.shape[0] or m.shape[1] > sem.shape[1]:
            raise SampleError(
                f"{where}: EDS map {el} {m.shape} is larger than the SEM image {sem.shape}"
            )
    return RawSample(name, sem, eds, labels, read_pixel_size_nm(sem_path))


def discover_samples(raw_dir: str | os.PathLike) -> list[Path]:
    """Sorted sample folders (non-hidden sub-folders) of ``raw_dir``.

    Raises FileNotFoundError when raw_dir does not exist and SampleError when it holds no
    sample folders.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"raw_dir {raw_dir} does not exist or is not a folder")
    samples = sorted(p for p in raw_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not samples:
        raise SampleError(
            f"raw_dir {raw_dir} holds no sample folders (expected <raw_dir>/<sample>/sem.tif)"
        )
    return samples


def write_tiff_atomic(path: str | os.PathLike, array: np.ndarray, **kwargs) -> None:
    """Write a TIFF via tifffile to a temporary name in the same folder, then os.replace."""
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tif.tmp", dir=path.parent)
    try:
        os.close(fd)
        tifffile.imwrite(tmp, np.asarray(array), **kwargs)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
