"""Writing simulated samples in the raw layout that ``prepare`` reads, plus instrument formats.

Layout per sample: ``<raw>/<sample>/sem.tif``, ``eds/<El> <line>.tif`` (or png/npy/csv, or
one ``map.h5oina``), ``truth.tif`` (true class ids of the scanned field: prepare scores its
labels against it) and ``simulation.json`` (seed, parameters, true drift/rotation/scale,
data-bar convention). A randomised data set also gets ``<raw>/synthetic_dataset.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.synthetic.params import EDS_FILE_NAMES, SyntheticSample
from data_prep.synthetic.randomised import PRESETS, Preset, derive_seed, param_seed
from data_prep.synthetic.render import add_data_bar, simulate_sample
from socseg_jax.core.atomic import atomic_path, write_json_atomic, write_tiff_atomic
from socseg_jax.core.phases import CLASS_NAMES

_sample_seed = derive_seed  # the name tests and older callers use


def zeiss_sem_tag(pixel_size_nm: float, voltage_kv: float = 15.0, detector: str = "SE2") -> str:
    """Text of a Zeiss ``CZ_SEM`` TIFF tag (34118) as SmartSEM writes it (key line, value line)."""
    lines = [
        "0",
        "AP_IMAGE_PIXEL_SIZE",
        f"Image Pixel Size = {pixel_size_nm:g} nm",
        "AP_ACTUALKV",
        f"EHT = {voltage_kv:.2f} kV",
        "DP_DETECTOR_CHANNEL",
        f"Signal A = {detector}",
    ]
    return "\r\n".join(lines) + "\r\n"


def write_h5oina(
    path: str | os.PathLike,
    maps: dict[str, np.ndarray],
    step_um: tuple[float, float],
    lines: dict[str, str] | None = None,
    electron_image: np.ndarray | None = None,
    electron_step_um: float = 0.0,
    box_yxhw: tuple[float, float, float, float] | None = None,
) -> None:
    """Write element maps as an AZtec-style H5OINA file (flattened maps, header cells/steps),
    optionally with an SE electron image and the maps' relative box in it (y0, x0, h, w)."""
    import h5py

    path = Path(path)
    ny, nx = next(iter(maps.values())).shape
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["Format Version"] = "5.0"
        header = f.create_group("1/EDS/Header")
        header["X Cells"] = np.array([[nx]], np.int32)
        header["Y Cells"] = np.array([[ny]], np.int32)
        header["X Step"] = np.array([[step_um[1]]], np.float32)
        header["Y Step"] = np.array([[step_um[0]]], np.float32)
        data = f.create_group("1/EDS/Data/Window Integral")
        for el, m in maps.items():
            line = (lines or {}).get(el, "Ka1")
            ds = data.create_dataset(f"{el} {line}", data=m.reshape(-1, 1).astype(np.float32))
            ds.attrs["X-ray Line"] = line
        if box_yxhw is not None:
            y0, x0, bh, bw = box_yxhw
            header["Relative Offset"] = np.array([[x0, y0]], np.float32)
            header["Relative Size"] = np.array([[bw, bh]], np.float32)
        if electron_image is not None:
            eh = f.create_group("1/Electron Image/Header")
            eh["X Cells"] = np.array([[electron_image.shape[1]]], np.int32)
            eh["Y Cells"] = np.array([[electron_image.shape[0]]], np.int32)
            eh["X Step"] = np.array([[electron_step_um]], np.float32)
            eh["Y Step"] = np.array([[electron_step_um]], np.float32)
            f["1/Electron Image/Data/SE/Image 1"] = electron_image.reshape(-1)


def _write_eds(d: Path, sample: SyntheticSample, res: float, eds_format: str) -> None:
    """The EDS maps in ``eds_format`` (tif, png 8-bit scaled, npy, csv or one h5oina)."""
    pitch = sample.eds_pitch()
    if eds_format == "h5oina":
        step = (sample.pixel_size_nm * pitch[0] / 1e3, sample.pixel_size_nm * pitch[1] / 1e3)
        write_h5oina(d / "eds" / "map.h5oina", sample.eds, step)
        return
    for el, m in sample.eds.items():
        stem = Path(EDS_FILE_NAMES[el]).stem
        if eds_format == "tif":
            eds_res = res / pitch[1]
            write_tiff_atomic(
                d / "eds" / EDS_FILE_NAMES[el],
                m.astype(np.float32),
                resolution=(eds_res, eds_res),
                resolutionunit="CENTIMETER",
            )
        elif eds_format == "npy":
            np.save(d / "eds" / f"{stem}.npy", m.astype(np.float32))
        elif eds_format == "csv":
            np.savetxt(d / "eds" / f"{stem}.csv", m, fmt="%g", delimiter=",")
        elif eds_format == "png":
            import skimage.io

            skimage.io.imsave(
                d / "eds" / f"{stem}.png", np.clip(m, 0, 255).astype(np.uint8), check_contrast=False
            )
        else:
            raise ValueError(f"eds_format must be tif, png, npy, csv or h5oina, not {eds_format!r}")


def sample_metadata(sample: SyntheticSample, seed: int, extra_bar_rows: int = 0) -> dict:
    """The facts ``simulation.json`` records: seed, parameters, phase fractions, the true
    EDS displacement (and the matrix a perfect registration finds), the data-bar convention."""
    fractions = np.bincount(sample.phases.ravel(), minlength=4) / sample.phases.size
    solids_by_level = sorted((1, 2, 3), key=lambda c: sample.params.grey_levels[c])
    bar, rows = sample.data_bar, sample.data_bar_rows
    if extra_bar_rows:  # write_sample's own appended bar (under any bar of the sample)
        bar = "appended" if bar != "overlay" else "overlay+appended"
        rows += extra_bar_rows
    return {
        "seed": seed,
        "params": asdict(sample.params),
        "drift_yx": list(sample.drift_yx),
        "rotation_deg": sample.rotation_deg,
        "eds_downsample": sample.eds_downsample,
        "pixel_size_nm": sample.pixel_size_nm,
        "oxidation_min": sample.oxidation_min,
        "phase_fractions": {n: float(f) for n, f in zip(CLASS_NAMES, fractions, strict=True)},
        "registration_shift_yx": [-sample.drift_yx[0], -sample.drift_yx[1]],
        "scale": sample.scale,
        "true_matrix": sample.true_matrix().tolist(),
        "eds_pitch_yx": list(sample.eds_pitch()),
        "grey_order": [CLASS_NAMES[c] for c in solids_by_level],
        "data_bar": bar,
        "data_bar_rows": rows,
        "extra_data_bar_rows": extra_bar_rows,
        "scanned_field_shape": list(sample.phases.shape),
    }


def write_sample(
    sample_dir: str | os.PathLike,
    sample: SyntheticSample,
    seed: int,
    data_bar_rows: int = 0,
    bit_depth: int = 8,
    zeiss: bool = False,
    eds_format: str = "tif",
) -> None:
    """Write one simulated sample in the raw layout (sem.tif, eds/*, truth.tif, json).

    The SEM is written as simulated (8/16 bit, with the sample's own data bar). Options (all
    off by default) exercise the readers: an extra bar of ``data_bar_rows`` appended below,
    8-bit images stretched to 16 bit (``bit_depth``), Zeiss ``CZ_SEM`` metadata, and EDS maps
    as ``tif``, ``png`` (8-bit scaled), ``npy``, ``csv`` or one ``h5oina`` file.
    """
    d = Path(sample_dir)
    (d / "eds").mkdir(parents=True, exist_ok=True)
    res = 1e7 / sample.pixel_size_nm  # pixels per cm
    sem = sample.sem
    if bit_depth == 16 and sem.dtype == np.uint8:
        sem = sem.astype(np.uint16) * 257
    if data_bar_rows:
        sem = add_data_bar(sem, data_bar_rows, seed)
    extratags = [(34118, "s", 0, zeiss_sem_tag(sample.pixel_size_nm), True)] if zeiss else []
    write_tiff_atomic(
        d / "sem.tif", sem, resolution=(res, res), resolutionunit="CENTIMETER", extratags=extratags
    )
    _write_eds(d, sample, res, eds_format)
    write_tiff_atomic(d / "truth.tif", sample.phases)
    write_json_atomic(d / "simulation.json", sample_metadata(sample, seed, data_bar_rows))


def write_raw_dataset(
    raw_dir: str | os.PathLike,
    num_samples: int,
    seed: int,
    shape: tuple[int, int] = (512, 512),
    oxidation_times: tuple[float, ...] = (0, 2, 5, 10, 20, 30, 120),
    *,
    data_bar_rows: int = 0,
    bit_depth: int = 8,
    zeiss: bool = False,
    eds_format: str = "tif",
    preset: str = "default",
    randomise: bool = False,
    ranges: Mapping[str, tuple] | None = None,
    **param_overrides: Any,
) -> list[str]:
    """Simulate ``num_samples`` samples into ``raw_dir``; return the sample names.

    Names are ``sample_<i>_ox<t>``; oxidation times cycle through ``oxidation_times``;
    each sample's seed derives from (seed, index), so the data set is reproducible. File
    options (data bar, 16-bit, Zeiss metadata, EDS format) are those of ``write_sample``.
    ``preset`` (``PRESETS``: ``default`` or ``randomised``; ``randomise=True`` means the
    latter, ``ranges`` replaces its ranges) gives each sample its own physics, recorded in
    its ``simulation.json`` and, for randomised presets, in ``synthetic_dataset.json``.
    """
    if randomise or ranges is not None:
        preset = "randomised" if preset == "default" else preset
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, not {preset!r}")
    chosen = PRESETS[preset] if ranges is None else Preset(ranges=ranges)
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    names, index = [], {}
    for i in range(num_samples):
        t = oxidation_times[i % len(oxidation_times)]
        s = _sample_seed(seed, i)
        params = chosen.params(s, tuple(shape), float(t), **param_overrides)
        name = f"sample_{i:03d}_ox{t:g}"
        sample = simulate_sample(params, s)
        write_sample(
            raw_dir / name,
            sample,
            s,
            data_bar_rows=data_bar_rows,
            bit_depth=bit_depth,
            zeiss=zeiss,
            eds_format=eds_format,
        )
        names.append(name)
        if chosen.ranges is not None:
            index[name] = {"seed": s, "param_seed": param_seed(s), **asdict(params)}
    if chosen.ranges is not None:
        ranges_json = {k: list(v) for k, v in chosen.ranges.items()}
        write_json_atomic(
            raw_dir / "synthetic_dataset.json",
            {"preset": preset, "seed": seed, "ranges": ranges_json, "samples": index},
        )
    return names
