"""Tests of EDS-to-SEM registration: known drift recovered, garbage refused."""

import numpy as np
import pytest

from data_prep.align import RegistrationError, register_eds
from data_prep.io import normalize_sem
from data_prep.synthetic import SimulationParams, simulate_sample


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
