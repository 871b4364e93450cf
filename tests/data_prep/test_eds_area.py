"""Tests of where EDS maps lie on the SEM frame: data-bar conventions, sub-area location."""

import numpy as np
import pytest

from data_prep.registration.field import bar_frames, is_sub_area, locate_sub_area
from data_prep.registration.maps import register_eds
from data_prep.synthetic import SimulationParams, simulate_sample
from socseg_jax.core.errors import UserError
from socseg_jax.core.intensity import normalize_sem


def test_bar_frames_by_convention():
    assert bar_frames((100, 80), 0, "auto") == {"no bar": (100, 80)}
    assert bar_frames((100, 80), 12, "auto") == {"overlay": (112, 80), "appended": (100, 80)}
    assert bar_frames((100, 80), 12, "overlay") == {"overlay": (112, 80)}
    with pytest.raises(UserError, match="data_bar_convention"):
        bar_frames((100, 80), 12, "zeiss")


def test_sub_area_recognised():
    assert not is_sub_area((300, 400), (150, 200), 0, None)
    assert not is_sub_area((276, 400), (150, 200), 24, None)  # overlay bar: full frame
    assert is_sub_area((300, 400), (100, 200), 0, None)  # aspect fits neither convention
    assert is_sub_area((300, 400), (150, 200), 0, 1.5)  # 200 EDS px x 1.5 < 400 columns
    assert not is_sub_area((300, 400), (150, 200), 0, 2.0)


def _sub_area(seed, ds, width=0.6):
    """Maps of a sub-area (half the rows, ``width`` of the columns) of a simulated sample, and
    its true SEM px -> sub-map index map."""
    shape = (384, 384)
    p = SimulationParams(shape=shape, eds_downsample=ds, max_drift_px=6.0,
                         max_rotation_deg=1.0, oxidation_min=10)
    s = simulate_sample(p, seed)
    n = shape[0] // ds
    ya, xa = n // 6, n // 4
    sub = {k: m[ya : ya + n // 2, xa : xa + round(width * n)] for k, m in s.eds.items()}
    th = np.radians(s.rotation_deg)
    a = np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]])
    c = (np.array(shape) - 1) / 2
    t = c - a @ c + a @ np.array(s.drift_yx)

    def true_index(pts):
        return (pts @ a.T + t + 0.5) / ds - 0.5 - np.array([ya, xa])

    return s, sub, true_index


@pytest.mark.parametrize(("seed", "ds", "known", "width"),
                         [(0, 2, True, 0.6), (1, 3, False, 0.6), (2, 2, False, 0.6),
                          (3, 2, False, 0.5)])  # the last: the image's own aspect
def test_sub_area_located(seed, ds, known, width):
    """Acceptance: a sub-area map located (scale known or searched) to better than 2 px."""
    s, sub, true_index = _sub_area(seed, ds, width)
    sem = normalize_sem(s.sem)
    area = locate_sub_area(sem, sub, float(ds) if known else None)
    y0, x0, bh, bw = area.box
    _, res = register_eds(sem[y0 : y0 + bh, x0 : x0 + bw], sub)
    m = np.asarray(res.matrix)
    grid = np.asarray(res.frame_shape) / np.asarray(next(iter(sub.values())).shape)
    pts = np.array([[0, 0], [0, bw - 1], [bh - 1, 0], [bh - 1, bw - 1]], float)
    found = (pts @ m[:, :2].T + m[:, 2] + 0.5) / grid - 0.5
    error = np.abs((found - true_index(pts + [y0, x0])) * ds).max()
    assert error < 2.0, (area, error)
    assert abs(area.scale - ds) / ds < 0.03
