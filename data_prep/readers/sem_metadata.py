"""SEM acquisition facts (pixel size, kV, detector) from Zeiss and Thermo Fisher / FEI TIFFs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from data_prep.readers.images import image_format

_LENGTH_NM = {"pm": 1e-3, "nm": 1.0, "um": 1e3, "µm": 1e3, "μm": 1e3, "mm": 1e6}


def read_sem_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """SEM acquisition facts from a TIFF: ``pixel_size_nm``, ``voltage_kv``, ``detector``.

    Zeiss SEM TIFFs carry them in tag 34118 (``CZ_SEM``, parsed by tifffile), e.g.
    ``ap_image_pixel_size`` = ('Image Pixel Size', 12.5, 'nm'); Thermo Fisher / FEI TIFFs in
    their INI-style tag (``[Scan] PixelWidth``); else the pixel size comes from the TIFF
    resolution tags when they are physical (cm/inch). Missing facts are left out, and so is
    everything of a file whose metadata cannot be parsed (the image reader reports it).
    """
    try:
        return _sem_metadata(Path(path))
    except Exception:  # noqa: BLE001 - metadata is optional; the image reader reports errors
        return {}


def _sem_metadata(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if image_format(path) != "TIFF":
        return out
    import tifffile

    with tifffile.TiffFile(path) as tif:
        sem_md = tif.sem_metadata or {}
        fei_md = tif.fei_metadata or {}
        tags = tif.pages.first.tags
        xres, unit = tags.get("XResolution"), tags.get("ResolutionUnit")
        res = (xres.value, int(unit.value)) if xres is not None and unit is not None else None
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
