"""Tests of EDS-to-SEM registration: known drift recovered, garbage refused."""

import numpy as np
import pytest
from socseg_jax.configs.sections import prepare_config

from data_prep.readers.data_bar import crop_data_bar
from data_prep.registration.field import bar_frames
from data_prep.registration.maps import RegistrationError, register_eds
from data_prep.synthetic import SimulationParams, add_data_bar, simulate_sample
from socseg_jax.core.intensity import normalize_sem


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_known_drift_recovered(seed):
    s = simulate_sample(
        SimulationParams(shape=(256, 256), max_drift_px=8.0, oxidation_min=10), seed
    )
    aligned, res = register_eds(normalize_sem(s.sem), s.eds)
    assert res.scale == (2.0, 2.0)
    err = np.array(res.shift_yx) + np.array(s.drift_yx)
    assert np.abs(err).max() < 1.0, (res.shift_yx, s.drift_yx)
    assert 0.5 < res.quality <= 1.0
    assert aligned["Ni"].shape == (256, 256) and aligned["Ni"].dtype == np.float32


def test_large_drift_recovered():
    s = simulate_sample(SimulationParams(shape=(256, 256), max_drift_px=11.4), 7)
    assert np.abs(s.drift_yx).max() > 4.0
    _, res = register_eds(normalize_sem(s.sem), s.eds)
    assert np.abs(np.array(res.shift_yx) + np.array(s.drift_yx)).max() < 1.0


def test_garbage_refused():
    s = simulate_sample(SimulationParams(shape=(256, 256)), 1)
    rng = np.random.default_rng(0)
    garbage = {k: rng.poisson(5.0, v.shape).astype(np.float32) for k, v in s.eds.items()}
    with pytest.raises(RegistrationError, match="quality"):
        register_eds(normalize_sem(s.sem), garbage)
    other = simulate_sample(SimulationParams(shape=(256, 256)), 2)  # maps of another region
    with pytest.raises(RegistrationError):
        register_eds(normalize_sem(s.sem), other.eds, min_quality=0.3)


def _true_matrix(s, shape):
    """SEM px -> EDS-frame position, as the simulator displaced the maps (rotation + drift)."""
    th = np.radians(s.rotation_deg)
    a = np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]])
    c = (np.array(shape) - 1) / 2
    return np.concatenate([a, (c - a @ c + a @ np.array(s.drift_yx))[:, None]], 1)


def _max_error(m1, m2, shape):
    """Largest displacement difference of two mappings over the image corners and centre."""
    h, w = shape
    pts = np.array([[0, 0], [0, w - 1], [h - 1, 0], [h - 1, w - 1], [h / 2, w / 2]], float)
    m1, m2 = np.asarray(m1), np.asarray(m2)
    return float(np.abs(pts @ (m1[:, :2] - m2[:, :2]).T + (m1[:, 2] - m2[:, 2])).max())


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_drift_and_rotation_recovered(seed):
    """Acceptance: drift up to 8 SEM px and 2° rotation registered to better than 1 px."""
    shape = (384, 384)
    p = SimulationParams(shape=shape, max_drift_px=8.0, max_rotation_deg=2.0, oxidation_min=10)
    s = simulate_sample(p, seed)
    assert abs(s.rotation_deg) > 1.0
    aligned, res = register_eds(normalize_sem(s.sem), s.eds, transform="similarity")
    assert _max_error(res.matrix, _true_matrix(s, shape), shape) < 1.0
    assert abs(res.rotation_deg - s.rotation_deg) < 0.1 and abs(res.zoom - 1) < 0.005
    assert res.quality > 0.8 and aligned["O"].shape == shape
    _, res_t = register_eds(normalize_sem(s.sem), s.eds, transform="translation", min_quality=0)
    assert _max_error(res_t.matrix, _true_matrix(s, shape), shape) > 2.0  # rotation matters


def test_affine_and_bad_transform_name():
    s = simulate_sample(SimulationParams(shape=(256, 256), max_rotation_deg=1.5), 3)
    _, res = register_eds(normalize_sem(s.sem), s.eds, transform="affine")
    assert _max_error(res.matrix, _true_matrix(s, (256, 256)), (256, 256)) < 1.0
    with pytest.raises(ValueError, match="transform"):
        register_eds(normalize_sem(s.sem), s.eds, transform="elastic")


def test_maps_on_different_grids_resampled():
    """O on a 2x coarser grid than Ni/Zr/Y: resampled to the finest grid, not refused."""
    shape = (256, 256)
    s = simulate_sample(SimulationParams(shape=shape, max_drift_px=6.0), 5)
    eds = dict(s.eds)
    eds["O"] = eds["O"].reshape(64, 2, 64, 2).mean(axis=(1, 3))
    aligned, res = register_eds(normalize_sem(s.sem), eds)
    assert res.resampled == ("O",) and aligned["O"].shape == shape
    assert _max_error(res.matrix, _true_matrix(s, shape), shape) < 1.0


def _with_bar(convention, seed, shape=(320, 320), bar=24):
    """A simulated sample whose SEM has a data bar of ``convention``: (sample, SEM above the
    bar, bar rows). overlay: the bar replaces the frame's bottom rows, the maps cover the
    whole frame; appended: the bar is added below the frame the maps cover."""
    p = SimulationParams(shape=shape, max_drift_px=8.0, max_rotation_deg=1.5, oxidation_min=10)
    s = simulate_sample(p, seed)
    frame = s.sem[: shape[0] - bar] if convention == "overlay" else s.sem
    sem, rows = crop_data_bar(add_data_bar(frame, bar, seed), "auto")
    return s, sem, rows


@pytest.mark.parametrize("convention", ["overlay", "appended"])
@pytest.mark.parametrize("seed", [0, 3])
def test_both_data_bar_conventions_registered(convention, seed):
    """Acceptance: either convention found (auto) and registered to better than 1 px."""
    s, sem, rows = _with_bar(convention, seed)
    assert rows == 24
    frames = bar_frames(sem.shape, rows, "auto")
    aligned, res = register_eds(normalize_sem(sem), s.eds, frames=frames)
    assert res.frame == convention and set(res.qualities) == {"overlay", "appended"}
    assert res.qualities[convention] > res.qualities[({"overlay", "appended"} - {convention}).pop()]
    assert _max_error(res.matrix, _true_matrix(s, s.sem.shape), sem.shape) < 1.0
    assert aligned["Ni"].shape == sem.shape  # labels cover the image above the bar only


def test_wrong_maps_refused_in_one_line():
    """Maps of another sample, or shifted by half a field, fail the configured gate."""
    gate = prepare_config().min_registration_quality
    s, sem, rows = _with_bar("overlay", 1)
    frames = bar_frames(sem.shape, rows, "auto")
    other = simulate_sample(SimulationParams(shape=(320, 320), max_drift_px=8.0), 2).eds
    rolled = {k: np.roll(m, m.shape[1] // 2, axis=1) for k, m in s.eds.items()}
    for eds in (other, rolled):
        with pytest.raises(RegistrationError, match="quality") as err:
            register_eds(normalize_sem(sem), eds, min_quality=gate, frames=frames)
        assert "\n" not in str(err.value) and "another field" in str(err.value)
