"""Oxford Instruments AZtec `.h5oina` files (HDF5): element maps and the electron image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.errors import ImageReadError
from data_prep.readers.eds_maps import element_of
from data_prep.readers.images import MAX_IMAGE_BYTES, check_declared_size, check_file

H5OINA_EXTS = (".h5oina",)


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
    """The first value of the dataset ``group[name]`` (read alone), or None when absent."""
    if group is None or name not in group or not getattr(group[name], "size", 0):
        return None
    data = group[name]
    return float(np.asarray(data[(0,) * data.ndim]))


def _h5_array(path: Path, data: Any, count: int, max_bytes: int, what: str) -> np.ndarray:
    """Dataset ``data`` read as a flat array after checking it holds ``count`` values and fits
    ``max_bytes`` (refused unread otherwise)."""
    if data.size != count:
        raise ImageReadError(f"{path}: {what} has {data.size} values, the header says {count}")
    check_declared_size(path, data.shape, max(data.dtype.itemsize, 4), max_bytes)
    return np.asarray(data[()]).ravel()


def read_h5oina(
    path: str | os.PathLike, slice_name: str = "1", max_bytes: int = MAX_IMAGE_BYTES
) -> H5OinaMaps:
    """Element maps from an AZtec ``.h5oina`` file (HDF5, read with h5py).

    Maps live in ``/<slice>/EDS/Data/<Window Integral|Peak Area|Composition>/<El line>`` as
    flattened (X cells * Y cells) arrays; ``/<slice>/EDS/Header`` gives ``X Cells``, ``Y Cells``
    and the ``X Step``/``Y Step`` in micrometres. Pixels outside an irregular acquisition area
    are NaN: they are filled with the map's median and reported in ``valid``. Each dataset's
    declared size is checked against ``max_bytes`` (and the file size) before it is read.
    """
    import h5py

    path = Path(path)
    check_file(path)
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
                flat = _h5_array(path, group[name], nx * ny, max_bytes, f"map '{name}'")
                maps[el] = flat.astype(np.float32).reshape(ny, nx)
                line = group[name].attrs.get("X-ray Line", name[len(el) :].strip())
                lines[el] = line.decode() if isinstance(line, bytes) else str(line)
            image, image_step = None, None
            ei = f.get(f"{slice_name}/Electron Image")
            if ei is not None and "Data" in ei:
                det = next((ei["Data"][g] for g in ("BSE", "SE", "FSE") if g in ei["Data"]), None)
                eh = ei.get("Header")
                ex, ey = _h5_scalar(eh, "X Cells"), _h5_scalar(eh, "Y Cells")
                if det is not None and len(det) and ex and ey:
                    count = int(ey) * int(ex)
                    flat = _h5_array(path, det[sorted(det)[0]], count, max_bytes, "electron image")
                    image = flat.reshape(int(ey), int(ex))
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
