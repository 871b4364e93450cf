"""Metrics on structures whose answers are known by construction."""

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from socseg_jax.analysis.connectivity import phase_connectivity
from socseg_jax.analysis.fractions import fraction_metrics
from socseg_jax.analysis.image_metrics import AnalysisOptions, analyze_image
from socseg_jax.analysis.interfaces import edge_counts
from socseg_jax.analysis.sizes import chord_lengths, local_thickness, particle_diameters
from socseg_jax.analysis.tortuosity import tortuosity
from socseg_jax.analysis.tpb import tpb_corners


def test_tpb_corner_counting_by_hand():
    # pore | Ni / YSZ: vertical pore-Ni boundary meets a horizontal YSZ layer -> 1 TPB corner
    labels = np.array(
        [[0, 0, 2, 2],
         [0, 0, 2, 2],
         [3, 3, 3, 3]], np.uint8)
    tpb, oxidised = tpb_corners(labels)
    assert tpb.sum() == 1 and tpb[1, 1] and oxidised.sum() == 0
    nio = labels.copy()
    nio[:2, 2:] = 1  # NiO instead of Ni: an oxidised TPB, not a TPB
    tpb, oxidised = tpb_corners(nio)
    assert tpb.sum() == 0 and oxidised.sum() == 1
    both = np.array([[0, 1], [2, 3]], np.uint8)  # all four phases: a TPB, not oxidised
    tpb, oxidised = tpb_corners(both)
    assert tpb.sum() == 1 and oxidised.sum() == 0
    masked = both.copy()
    masked[0, 1] = 255
    assert tpb_corners(masked)[0].sum() == 0


def test_active_tpb_needs_percolating_phases():
    labels = np.full((20, 12), 3, np.uint8)
    labels[:, :4] = 0  # pore column top to bottom
    labels[:, 4:6] = 2  # Ni column top to bottom, YSZ fills the rest
    labels[8:10, 4:6] = 3  # ... cut by YSZ: Ni no longer percolates along y
    opts = AnalysisOptions("y", 4, 4, False)
    m = analyze_image(labels, None, opts)
    assert m["tpb_count"] == 2 and m["tpb_active_y_count"] == 0
    # Ni steps diagonally at one corner where pore and YSZ meet: one TPB, active only
    # when Ni percolates through that corner (8-connectivity)
    step = np.full((20, 12), 3, np.uint8)
    step[:9, :4], step[:9, 4:6] = 0, 2
    step[9:, :6], step[9:, 6:8] = 0, 2
    m4 = analyze_image(step, None, AnalysisOptions("y", 4, 4, False))
    m = analyze_image(step, 10.0, AnalysisOptions("y", 8, 4, False))
    assert m4["tpb_count"] == 1 and m4["tpb_active_y_count"] == 0
    assert m["tpb_count"] == m["tpb_active_y_count"] == 1
    assert m["tpb_density_per_um2"] == pytest.approx(1 / (step.size * 1e-4))
    assert m["tpb_lv_um_per_um3"] == pytest.approx(2 * m["tpb_density_per_um2"])


def test_connectivity_connected_and_not():
    mask = np.zeros((30, 30), bool)
    mask[:, 3:6] = True  # top to bottom
    mask[0:10, 10:12] = True  # dead end (top only)
    mask[12:15, 20:23] = True  # isolated
    c = phase_connectivity(mask, ("y", "x"), 4)
    n = mask.sum()
    assert c["y_percolating_pct"] == pytest.approx(100 * 90 / n)
    assert c["y_dead_end_pct"] == pytest.approx(100 * 20 / n)
    assert c["y_isolated_pct"] == pytest.approx(100 * 9 / n)
    assert c["x_percolating_pct"] == 0
    diag = np.eye(10, dtype=bool)
    assert phase_connectivity(diag, ("y",), 8)["y_percolating_pct"] == 100
    assert phase_connectivity(diag, ("y",), 4)["y_percolating_pct"] == 0


def test_local_thickness_stripes_and_disks():
    stripes = np.zeros((60, 80), bool)
    stripes[:, 10:20] = True
    stripes[:, 40:46] = True
    lt = local_thickness(stripes)
    assert set(np.unique(lt[:, 10:20])) == {10.0} and set(np.unique(lt[:, 40:46])) == {6.0}
    yy, xx = np.mgrid[:61, :61]
    disk = (yy - 30) ** 2 + (xx - 30) ** 2 <= 12**2
    lt = local_thickness(disk)
    assert np.all(np.abs(lt[disk] - 24) <= 1.0)  # 2R, within one pixel of 2R + 1 across
    assert particle_diameters(disk.astype(np.uint8) * 2, 2, 4) == pytest.approx(
        [2 * math.sqrt(disk.sum() / math.pi)])


def test_local_thickness_equals_its_definition_by_brute_force():
    """Largest disk {q : |q - c| < dt(c)} over every phase pixel c, disk by disk."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:50, :60]
    for _ in range(3):
        mask = ndi.gaussian_filter(rng.standard_normal((50, 60)), 2) > 0.1
        dt = ndi.distance_transform_edt(mask)
        expected = np.zeros(mask.shape)
        for y, x in zip(*np.nonzero(mask), strict=True):
            disk = (yy - y) ** 2 + (xx - x) ** 2 < dt[y, x] ** 2 - 1e-9
            expected[disk] = np.maximum(expected[disk], 2 * dt[y, x])
        assert np.abs(local_thickness(mask) - expected).max() < 1e-5


def test_local_thickness_of_a_phase_filling_the_field_is_nan():
    assert np.isnan(local_thickness(np.ones((8, 9), bool))).all()
    assert not local_thickness(np.zeros((8, 9), bool)).any()


def test_chord_lengths_exclude_the_border():
    labels = np.full((5, 30), 3, np.uint8)
    labels[:, 5:12] = 0  # 7 px chords along x
    labels[:, 25:] = 0  # touches the right border: left out
    assert set(chord_lengths(labels, 0, axis=1)) == {7}
    assert chord_lengths(labels, 0, axis=0).size == 0  # every column run touches top and bottom


def test_block_se_shrinks_with_field():
    rng = np.random.default_rng(0)
    se = []
    for size in (128, 512):
        labels = rng.integers(0, 4, (size, size)).astype(np.uint8)
        m = fraction_metrics(labels, 32)
        assert m["pore_area_pct"] == pytest.approx(25, abs=2)
        se.append(m["pore_area_se_pct"])
    assert se[1] < 0.5 * se[0]


def test_interface_edges():
    labels = np.array([[0, 2], [3, 3]], np.uint8)
    e = edge_counts(labels)
    assert e[0, 2] == 1 and e[0, 3] == 1 and e[2, 3] == 1 and e[3, 3] == 1


def test_tortuosity_channel_and_blocked():
    mask = np.zeros((64, 48), bool)
    mask[:, 10:30] = True
    r = tortuosity(mask, "y")
    assert r["tau"] == pytest.approx(1.0, rel=0.01)
    assert r["d_eff"] == pytest.approx(20 / 48, rel=0.01)
    mask[:, 40:42] = True
    mask[30:32, 40:42] = False  # a dead branch: removed, it adds volume but no flux
    assert tortuosity(mask, "y")["tau"] == pytest.approx(mask.mean() / (20 / 48), rel=0.01)
    mask[32, :] = False
    assert math.isinf(tortuosity(mask, "y")["tau"])
    assert math.isinf(tortuosity(mask, "x")["tau"])


def test_not_sample_is_outside_the_field():
    labels = np.full((20, 20), 3, np.uint8)
    labels[:, :10] = 0
    with_bar = np.vstack([labels, np.full((6, 20), 255, np.uint8)])
    opts = AnalysisOptions("both", 4, 8, False)
    a, b = analyze_image(labels, 5.0, opts), analyze_image(with_bar, 5.0, opts)
    for key in ("pore_area_pct", "pore_y_percolating_pct", "interface_pore_YSZ_um_per_um2"):
        assert a[key] == pytest.approx(b[key])
    with pytest.raises(ValueError, match="not class ids"):
        analyze_image(np.full((4, 4), 7, np.uint8), None, opts)
