"""Seeded simulator of SEM + EDS data of oxidised Ni/YSZ electrode cross-sections.

Why: the project needs an embedded, download-free data set in exactly the raw form a user has
(SEM TIFF + lower-resolution, drifted, noisy EDS element maps), hard enough that a global grey
threshold fails, yet with phases recognisable from local context and texture.

Model, in order:
  1. microstructure: argmax of three smoothed Gaussian random fields (pore, Ni, YSZ) with biases
     fitted to the volume fractions;
  2. oxidation: NiO shells grow into Ni from pore-exposed surfaces with parabolic kinetics
     (thickness = rate * sqrt(t), locally modulated) plus outward growth into the pores
     (the Ni -> NiO volume expansion);
  3. SEM: close grey levels for NiO < Ni < YSZ, per-grain (Voronoi) contrast with phase-specific
     grain sizes, dark pores with dim sub-surface features, bright edge-effect rims on the solid
     side of pore boundaries, Gaussian probe blur, shot + read noise, brightness gradient and
     per-image brightness/contrast;
  4. EDS: Ni, O, Zr, Y count maps on a coarser grid, blurred by the interaction volume,
     Poisson counts at low dose, displaced by a random drift (and optional rotation).
Convention: EDS content is the truth displaced by ``drift_yx`` (like ``scipy.ndimage.shift``
with +drift), so registering it back needs a shift of ``-drift_yx``.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from socseg_jax.core.atomic import atomic_path, write_json_atomic, write_tiff_atomic

ELEMENTS = ("Ni", "O", "Zr", "Y")
EDS_FILE_NAMES = {"Ni": "Ni Ka1.tif", "O": "O Ka1.tif", "Zr": "Zr La1.tif", "Y": "Y La1.tif"}
PORE, NIO, NI, YSZ = 0, 1, 2, 3


@dataclass(frozen=True)
class SimulationParams:
    """All knobs of the simulator; defaults give a 512x512 micrograph at 40 nm/px."""

    shape: tuple[int, int] = (512, 512)
    feature_size: float = 5.0  # Gaussian sigma (px) of the random fields; particles ~3-5x
    volume_fractions: tuple[float, float, float] = (0.3, 0.3, 0.4)  # pore, Ni, YSZ (unoxidised)
    oxidation_min: float = 0.0
    oxide_rate_px: float = 1.4  # NiO shell thickness (px) per sqrt(minute)
    oxide_roughness: float = 0.35  # relative local variation of the shell thickness
    oxide_outward: float = 0.45  # outward growth into pores, as a fraction of the inward shell
    # SEM contrast (fractions of full scale before per-image gain/offset)
    grey_levels: tuple[float, float, float, float] = (0.10, 0.40, 0.55, 0.70)
    grain_size_px: tuple[float, float, float] = (3.0, 14.0, 6.0)  # NiO, Ni, YSZ
    grain_contrast: tuple[float, float, float] = (0.04, 0.05, 0.04)  # NiO, Ni, YSZ (std)
    pore_texture: float = 0.12  # brightness of dim sub-surface features seen in pores
    edge_brightness: float = 0.12
    edge_width_px: float = 1.5
    probe_blur_px: float = 1.0
    sem_dose: float = 120.0  # electrons per pixel at full scale (shot noise)
    read_noise: float = 0.015
    gradient_max: float = 0.2  # max relative brightness change across the image
    brightness_jitter: float = 0.06
    contrast_jitter: float = 0.15
    # EDS
    eds_downsample: int = 2
    eds_blur_px: float = 1.5  # interaction-volume sigma in SEM px
    eds_dose: float = 30.0  # counts per EDS pixel for a pure-element rate of 1
    eds_background: float = 0.4  # bremsstrahlung counts per EDS pixel and element
    max_drift_px: float = 4.0
    max_rotation_deg: float = 0.0
    pixel_size_nm: float = 40.0


# Relative X-ray count rates per phase (rows pore, NiO, Ni, YSZ; columns Ni, O, Zr, Y).
# O in NiO ~ 0.75 x O in YSZ, following the O atom fractions (0.50 vs ~0.66).
EDS_RATES = np.array(
    [
        [0.00, 0.04, 0.00, 0.00],
        [0.78, 0.45, 0.00, 0.00],
        [1.00, 0.01, 0.00, 0.00],
        [0.00, 0.60, 0.85, 0.13],
    ],
    dtype=np.float32,
)


@dataclass
class SyntheticSample:
    """One simulated sample: SEM image, EDS count maps, true phases and acquisition facts."""

    sem: np.ndarray  # uint8 (H, W)
    eds: dict[str, np.ndarray]  # float32 counts (H/ds, W/ds) keyed Ni, O, Zr, Y
    phases: np.ndarray  # uint8 (H, W) class ids
    drift_yx: tuple[float, float]
    rotation_deg: float
    eds_downsample: int
    pixel_size_nm: float
    oxidation_min: float
    params: SimulationParams = field(repr=False, default_factory=SimulationParams)


def _grf(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Unit-variance Gaussian random field with correlation length ``sigma`` (wrap borders)."""
    f = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-12)


def _argmax_with_fractions(fields: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Argmax over biased fields, with biases tuned so class fractions match ``fractions``."""
    bias = np.zeros(len(fields), dtype=np.float32)
    sub = fields[:, ::3, ::3]
    for _ in range(40):
        lab = np.argmax(sub + bias[:, None, None], axis=0)
        frac = np.bincount(lab.ravel(), minlength=len(fields)) / lab.size
        err = fractions - frac
        if np.abs(err).max() < 0.004:
            break
        bias += 1.5 * err
    return np.argmax(fields + bias[:, None, None], axis=0)


def _microstructure(rng: np.random.Generator, shape: tuple[int, int], p: SimulationParams):
    """Pore/Ni/YSZ class ids (0, 2, 3) of an unoxidised, interpenetrating structure."""
    s = p.feature_size
    fields = np.stack([_grf(rng, shape, s), _grf(rng, shape, 1.25 * s), _grf(rng, shape, 0.85 * s)])
    lab = _argmax_with_fractions(fields, np.asarray(p.volume_fractions, dtype=np.float32))
    return np.array([PORE, NI, YSZ], dtype=np.uint8)[lab]


def _oxidise(rng: np.random.Generator, phases: np.ndarray, p: SimulationParams) -> np.ndarray:
    """Grow NiO shells on pore-exposed Ni (parabolic kinetics) with outward growth into pores."""
    if p.oxidation_min <= 0:
        return phases
    d = p.oxide_rate_px * math.sqrt(p.oxidation_min)
    rough = 1.0 + p.oxide_roughness * np.clip(_grf(rng, phases.shape, 3.0), -2.5, 2.5) / 1.5
    d_local = d * np.clip(rough, 0.2, None)
    pore = phases == PORE
    dist_pore = ndi.distance_transform_edt(~pore)
    nio = (phases == NI) & (dist_pore <= d_local + 0.5)
    out = phases.copy()
    out[nio] = NIO
    d_out = p.oxide_outward * d_local
    if np.any(nio):
        dist_nio = ndi.distance_transform_edt(~nio)
        out[pore & (dist_nio <= d_out)] = NIO
    return out


def _voronoi(rng: np.random.Generator, shape: tuple[int, int], size: float) -> np.ndarray:
    """Voronoi grain ids with mean grain diameter ~ ``size`` px."""
    n = max(1, int(shape[0] * shape[1] / (size * size)))
    seeds = np.ones(shape, dtype=bool)
    ys, xs = rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)
    seeds[ys, xs] = False
    ids = np.zeros(shape, dtype=np.int32)
    ids[ys, xs] = np.arange(1, n + 1)
    idx = ndi.distance_transform_edt(seeds, return_distances=False, return_indices=True)
    return ids[idx[0], idx[1]]


def _grain_texture(rng: np.random.Generator, phases: np.ndarray, p: SimulationParams):
    """Per-grain brightness offsets (and darker grain boundaries) for NiO, Ni and YSZ."""
    tex = np.zeros(phases.shape, dtype=np.float32)
    for cls, size, contrast in zip((NIO, NI, YSZ), p.grain_size_px, p.grain_contrast, strict=True):
        mask = phases == cls
        if not mask.any():
            continue
        ids = _voronoi(rng, phases.shape, size)
        vals = rng.normal(0.0, contrast, ids.max() + 1).astype(np.float32)
        gb = (ids != np.roll(ids, 1, 0)) | (ids != np.roll(ids, 1, 1))
        tex[mask] = vals[ids[mask]] - 0.6 * contrast * gb[mask]
        if cls == NIO:  # nano-porosity of grown oxide: small dark specks
            specks = rng.random(phases.shape) < 0.03
            tex[mask & specks] -= 2.5 * contrast
    return tex


def _render_sem(rng: np.random.Generator, phases: np.ndarray, p: SimulationParams) -> np.ndarray:
    """SEM secondary/back-scattered electron image in [0, 1] (float32) of a phase map."""
    shape = phases.shape
    img = np.asarray(p.grey_levels, dtype=np.float32)[phases] + _grain_texture(rng, phases, p)
    pore = phases == PORE
    # Pores: dark, with dim blurred sub-surface particles and faint texture.
    sub = ndi.gaussian_filter((_grf(rng, shape, p.feature_size) > 0.4).astype(np.float32), 2.0)
    pore_img = p.grey_levels[PORE] + p.pore_texture * sub + 0.02 * _grf(rng, shape, 1.5)
    img[pore] = pore_img[pore]
    # Edge effect: bright rims on the solid side of pore boundaries.
    dist = ndi.distance_transform_edt(~pore)
    rim = p.edge_brightness * np.exp(-np.maximum(dist - 1.0, 0.0) / p.edge_width_px)
    img = img + np.where(pore, 0.0, rim).astype(np.float32)
    img = ndi.gaussian_filter(img, p.probe_blur_px)
    # Illumination gradient across the field and per-image gain/offset.
    yy, xx = np.meshgrid(
        np.linspace(-0.5, 0.5, shape[0]), np.linspace(-0.5, 0.5, shape[1]), indexing="ij"
    )
    ang = rng.uniform(0, 2 * np.pi)
    grad = 1.0 + rng.uniform(-1, 1) * p.gradient_max * (np.cos(ang) * yy + np.sin(ang) * xx) * 2
    gain = 1.0 + rng.uniform(-p.contrast_jitter, p.contrast_jitter)
    offset = rng.uniform(-p.brightness_jitter, p.brightness_jitter)
    img = (img * grad * gain + offset).astype(np.float32)
    # Shot noise (Poisson in electrons) + read noise.
    img = rng.poisson(np.clip(img, 0, None) * p.sem_dose) / p.sem_dose
    img = img + rng.normal(0.0, p.read_noise, shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _render_eds(
    rng: np.random.Generator,
    phases_canvas: np.ndarray,
    margin: int,
    out_shape: tuple[int, int],
    drift_yx: tuple[float, float],
    rotation_deg: float,
    p: SimulationParams,
) -> dict[str, np.ndarray]:
    """EDS count maps on the coarse grid, sampled from the padded phase canvas."""
    ds = p.eds_downsample
    he, we = out_shape[0] // ds, out_shape[1] // ds
    # SEM-crop coordinates of EDS pixel centres, then rotation about the centre and drift.
    yc = (np.arange(he) + 0.5) * ds - 0.5
    xc = (np.arange(we) + 0.5) * ds - 0.5
    qy, qx = np.meshgrid(yc, xc, indexing="ij")
    cy, cx = (out_shape[0] - 1) / 2, (out_shape[1] - 1) / 2
    th = math.radians(rotation_deg)
    ry = math.cos(th) * (qy - cy) - math.sin(th) * (qx - cx) + cy - drift_yx[0] + margin
    rx = math.sin(th) * (qy - cy) + math.cos(th) * (qx - cx) + cx - drift_yx[1] + margin
    coords = np.stack([ry, rx])
    # Interaction volume blur combined with the integration over one EDS pixel.
    sigma = math.sqrt(p.eds_blur_px**2 + (ds * ds - 1) / 12.0)
    eds = {}
    for j, el in enumerate(ELEMENTS):
        rate = ndi.gaussian_filter(EDS_RATES[:, j][phases_canvas], sigma)
        rate = ndi.map_coordinates(rate, coords, order=1, mode="nearest")
        lam = np.clip(rate, 0, None) * p.eds_dose + p.eds_background
        eds[el] = rng.poisson(lam).astype(np.float32)
    return eds


def simulate_sample(params: SimulationParams, seed: int) -> SyntheticSample:
    """Simulate one sample deterministically from ``seed``."""
    p = params
    rng = np.random.default_rng(seed)
    h, w = p.shape
    drift = rng.uniform(-1, 1, 2) * p.max_drift_px / math.sqrt(2)
    rot = float(rng.uniform(-1, 1) * p.max_rotation_deg)
    rot_margin = 0.5 * math.hypot(h, w) * abs(math.sin(math.radians(rot)))
    margin = int(math.ceil(p.max_drift_px + rot_margin + 4 * p.eds_blur_px + 2 * p.eds_downsample))
    canvas = (h + 2 * margin, w + 2 * margin)
    phases_canvas = _oxidise(rng, _microstructure(rng, canvas, p), p)
    sem_canvas = _render_sem(rng, phases_canvas, p)
    eds = _render_eds(rng, phases_canvas, margin, (h, w), tuple(drift), rot, p)
    crop = (slice(margin, margin + h), slice(margin, margin + w))
    sem = np.rint(sem_canvas[crop] * 255.0).astype(np.uint8)
    return SyntheticSample(
        sem=sem,
        eds=eds,
        phases=np.ascontiguousarray(phases_canvas[crop]).astype(np.uint8),
        drift_yx=(float(drift[0]), float(drift[1])),
        rotation_deg=rot,
        eds_downsample=p.eds_downsample,
        pixel_size_nm=p.pixel_size_nm,
        oxidation_min=p.oxidation_min,
        params=p,
    )


def simulate_scribbles(
    phases: np.ndarray, strokes: int, seed: int, length: int = 30
) -> np.ndarray:
    """Hand-label-like scribbles for a phase map: ``strokes`` straight strokes of up to
    ``length`` px, shared equally by the phases present (as a person scribbles each phase),
    each from a random point of its phase and stopped where that phase ends. uint8,
    0 = unlabelled, class id + 1 elsewhere (ilastik's convention)."""
    rng = np.random.default_rng(seed)
    h, w = phases.shape
    out = np.zeros((h, w), np.uint8)
    present = [c for c in np.unique(phases) if (phases == c).mean() >= 0.005]
    steps = np.arange(length)
    for cls in present:
        ys0, xs0 = np.nonzero(phases == cls)
        for k in rng.choice(ys0.size, max(1, strokes // len(present))):
            y, x = int(ys0[k]), int(xs0[k])
            angle = rng.uniform(0.0, 2.0 * np.pi)
            ys = np.rint(y + steps * np.sin(angle)).astype(int)
            xs = np.rint(x + steps * np.cos(angle)).astype(int)
            inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
            n = int(np.argmin(inside)) if not inside.all() else length
            same = phases[ys[:n], xs[:n]] == cls
            n = int(np.argmin(same)) if not same.all() else n
            out[ys[:n], xs[:n]] = cls + 1
    return out


def _sample_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


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


def add_data_bar(image: np.ndarray, rows: int, seed: int = 0) -> np.ndarray:
    """Append an SEM-style information bar (black, with white text-like blocks) below ``image``."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(image.dtype).max if np.issubdtype(image.dtype, np.integer) else 1.0
    bar = np.zeros((rows, image.shape[1]), image.dtype)
    bar[0, :] = top  # separator line
    for x0 in range(8, image.shape[1] - 24, 48):  # "text": short bright strokes
        y0 = int(rng.integers(2, max(3, rows - 6)))
        bar[y0 : y0 + 4, x0 : x0 + int(rng.integers(6, 20))] = top
    return np.concatenate([image, bar])


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


def write_sample(
    sample_dir: str | os.PathLike,
    sample: SyntheticSample,
    seed: int,
    data_bar_rows: int = 0,
    bit_depth: int = 8,
    zeiss: bool = False,
    eds_format: str = "tif",
) -> None:
    """Write one simulated sample in the raw layout (sem.tif, eds/*.tif, truth.tif, json).

    Options (all off by default) exercise the readers: an information bar of ``data_bar_rows``
    below the image, 16-bit SEM (``bit_depth``), Zeiss ``CZ_SEM`` metadata, and EDS maps as
    ``tif``, ``png`` (8-bit scaled), ``npy``, ``csv`` or one ``h5oina`` file.
    """
    d = Path(sample_dir)
    (d / "eds").mkdir(parents=True, exist_ok=True)
    res = 1e7 / sample.pixel_size_nm  # pixels per cm
    sem = sample.sem if bit_depth == 8 else sample.sem.astype(np.uint16) * 257
    if data_bar_rows:
        sem = add_data_bar(sem, data_bar_rows, seed)
    extratags = [(34118, "s", 0, zeiss_sem_tag(sample.pixel_size_nm), True)] if zeiss else []
    write_tiff_atomic(
        d / "sem.tif", sem, resolution=(res, res), resolutionunit="CENTIMETER", extratags=extratags
    )
    eds_res = res / sample.eds_downsample
    if eds_format == "h5oina":
        step = sample.pixel_size_nm * sample.eds_downsample / 1e3
        write_h5oina(d / "eds" / "map.h5oina", sample.eds, (step, step))
    for el, m in sample.eds.items() if eds_format != "h5oina" else ():
        stem = Path(EDS_FILE_NAMES[el]).stem
        if eds_format == "tif":
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
    write_tiff_atomic(d / "truth.tif", sample.phases)
    fractions = np.bincount(sample.phases.ravel(), minlength=4) / sample.phases.size
    meta = {
        "seed": seed,
        "params": asdict(sample.params),
        "drift_yx": list(sample.drift_yx),
        "rotation_deg": sample.rotation_deg,
        "eds_downsample": sample.eds_downsample,
        "pixel_size_nm": sample.pixel_size_nm,
        "oxidation_min": sample.oxidation_min,
        "phase_fractions": {
            n: float(f) for n, f in zip(("pore", "NiO", "Ni", "YSZ"), fractions, strict=True)
        },
        "registration_shift_yx": [-sample.drift_yx[0], -sample.drift_yx[1]],
    }
    write_json_atomic(d / "simulation.json", meta)


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
    **param_overrides,
) -> list[str]:
    """Simulate ``num_samples`` samples into ``raw_dir``; return the sample names.

    Names are ``sample_<i>_ox<t>``; oxidation times cycle through ``oxidation_times``;
    each sample's seed derives from (seed, index), so the data set is reproducible. File
    options (data bar, 16-bit, Zeiss metadata, EDS format) are those of ``write_sample``.
    """
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(num_samples):
        t = oxidation_times[i % len(oxidation_times)]
        params = SimulationParams(shape=tuple(shape), oxidation_min=float(t), **param_overrides)
        s = _sample_seed(seed, i)
        name = f"sample_{i:03d}_ox{t:g}"
        write_sample(
            raw_dir / name,
            simulate_sample(params, s),
            s,
            data_bar_rows=data_bar_rows,
            bit_depth=bit_depth,
            zeiss=zeiss,
            eds_format=eds_format,
        )
        names.append(name)
    return names
