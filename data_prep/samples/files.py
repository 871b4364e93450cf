"""Where a raw sample's files are: one folder per sample (docs/design.md), grouping folders,
manifests."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from data_prep.errors import SampleError
from data_prep.readers.eds_maps import REQUIRED_ELEMENTS, find_eds_maps
from data_prep.readers.h5oina import H5OINA_EXTS
from data_prep.readers.images import IMAGE_EXTS, check_file
from data_prep.readers.label_maps import LABEL_EXTS
from socseg_jax.core.errors import MissingInputError


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


def _find_one(folder: Path, stem: str, exts: tuple[str, ...]) -> Path | None:
    if not folder.is_dir():
        return None
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.stem.lower() == stem and f.suffix.lower() in exts:
            return f
    return None


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
    """The files of a sample folder in the raw layout (docs/design.md); ``name`` defaults to the
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
    check_file(path)
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
        raise MissingInputError(f"raw_dir {raw_dir} does not exist or is not a folder")
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
