"""Tests of the SEM/EDS simulator: determinism, shapes, physics trends, raw layout, difficulty."""

import json

import numpy as np
import tifffile
from skimage.filters import threshold_multiotsu

from data_prep.labels.eds_rules import eds_labels
from data_prep.registration.maps import register_eds
from data_prep.samples.raw_sample import read_raw_sample
from data_prep.synthetic import SimulationParams, simulate_sample, write_raw_dataset
from socseg_jax.core.intensity import normalize_sem

SHAPE = (256, 256)


def _miou(truth: np.ndarray, pred: np.ndarray) -> float:
    cm = np.bincount(truth.ravel().astype(int) * 4 + pred.ravel(), minlength=16).reshape(4, 4)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    return float(np.nanmean(np.where(union > 0, inter / np.maximum(union, 1), np.nan)))


def test_deterministic_shapes_and_dtypes():
    p = SimulationParams(shape=SHAPE, oxidation_min=10)
    a, b = simulate_sample(p, 3), simulate_sample(p, 3)
    c = simulate_sample(p, 4)
    assert a.sem.dtype == np.uint8 and a.sem.shape == SHAPE
    assert a.phases.dtype == np.uint8 and a.phases.shape == SHAPE
    assert set(a.eds) == {"Ni", "O", "Zr", "Y"}
    for m in a.eds.values():
        assert m.dtype == np.float32 and m.shape == (128, 128)
    np.testing.assert_array_equal(a.sem, b.sem)
    np.testing.assert_array_equal(a.eds["O"], b.eds["O"])
    assert a.drift_yx == b.drift_yx
    assert not np.array_equal(a.sem, c.sem)
    assert np.hypot(*a.drift_yx) <= p.max_drift_px


def test_nio_fraction_grows_with_oxidation():
    fracs = [
        float(
            (simulate_sample(SimulationParams(shape=SHAPE, oxidation_min=t), 5).phases == 1).mean()
        )
        for t in (0, 5, 30, 120)
    ]
    assert fracs[0] == 0.0
    assert all(b > a for a, b in zip(fracs, fracs[1:], strict=False))
    assert fracs[-1] > 0.25  # most Ni oxidised after 120 min


def test_write_raw_dataset_layout(tmp_path):
    names = write_raw_dataset(tmp_path, 3, seed=1, shape=(64, 96), oxidation_times=(0, 120))
    assert names == ["sample_000_ox0", "sample_001_ox120", "sample_002_ox0"]
    d = tmp_path / names[1]
    for f in (
        "sem.tif",
        "truth.tif",
        "simulation.json",
        "eds/Ni Ka1.tif",
        "eds/O Ka1.tif",
        "eds/Zr La1.tif",
        "eds/Y La1.tif",
    ):
        assert (d / f).is_file(), f
    sem = tifffile.imread(d / "sem.tif")
    assert sem.dtype == np.uint8 and sem.shape == (64, 96)
    assert tifffile.imread(d / "eds" / "Ni Ka1.tif").dtype == np.float32
    meta = json.loads((d / "simulation.json").read_text())
    assert meta["oxidation_min"] == 120 and len(meta["drift_yx"]) == 2
    raw = read_raw_sample(d)
    assert raw.pixel_size_nm is not None and abs(raw.pixel_size_nm - 40.0) < 1e-3
    assert raw.eds["Zr"].shape == (32, 48)
    # deterministic on disk
    write_raw_dataset(tmp_path / "again", 3, seed=1, shape=(64, 96), oxidation_times=(0, 120))
    np.testing.assert_array_equal(sem, tifffile.imread(tmp_path / "again" / names[1] / "sem.tif"))


def test_global_threshold_fails_but_eds_labels_work():
    otsu, eds = [], []
    for i, t in enumerate((0, 10, 120)):
        s = simulate_sample(SimulationParams(shape=SHAPE, oxidation_min=t), 20 + i)
        pred = np.digitize(s.sem, threshold_multiotsu(s.sem, classes=4)).astype(np.uint8)
        otsu.append(_miou(s.phases, pred))
        sem = normalize_sem(s.sem)
        aligned, _ = register_eds(sem, s.eds)
        eds.append(_miou(s.phases, eds_labels(sem, aligned)[0]))
    assert np.mean(otsu) < 0.6
    assert np.mean(eds) > np.mean(otsu) + 0.2
