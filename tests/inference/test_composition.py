"""Fraction intervals and the composition check (inference/composition.py)."""

import numpy as np
import pytest

from data_prep.synthetic import SimulationParams, simulate_sample
from socseg_jax.core.phases import NUM_CLASSES, label_fractions
from socseg_jax.inference.composition import (
    build_composition,
    composition_warning,
    fraction_parts,
    half_widths,
)

TRAINING_TIMES = (5, 10, 30, 120, 5, 10, 30, 120)  # minutes, two samples each


def oxidation_fractions(times, seed=0):
    """True phase fractions (percent) of simulated samples oxidised for ``times`` minutes
    (seeds ``seed``, ``seed + 1``, ...)."""
    return [label_fractions(simulate_sample(
        SimulationParams(shape=(192, 192), oxidation_min=float(t)), seed + i).phases)
        for i, t in enumerate(times)]


@pytest.fixture(scope="module")
def reference():
    """The composition of a model that reproduced its 5-120 min training images to 0.5 pp."""
    fractions = np.array(oxidation_fractions(TRAINING_TIMES))
    errors = np.random.default_rng(0).normal(0.0, 0.5, fractions.shape)
    return build_composition(fractions + errors, fractions)


def test_range_and_floor(reference):
    fractions = np.array(oxidation_fractions(TRAINING_TIMES))
    assert reference["min_pct"][1] < reference["max_pct"][1]  # NiO grows with time
    assert reference["min_pct"][1] > 1.0  # every training image had NiO
    rms = np.array(reference["error_rms_pct"])
    assert np.all(rms > 0.1) and np.all(rms < 1.5)
    # The floor widens the rms for a 90 % interval of a new image (t with 8 dof: 1.86).
    np.testing.assert_allclose(reference["floor_pct"], rms * np.sqrt(1.125) * 1.860, rtol=0.01)
    exact = build_composition(fractions, fractions)
    assert exact["floor_pct"] == [0.0] * NUM_CLASSES


def test_unoxidised_image_is_warned_and_one_inside_is_not(reference):
    unoxidised, inside = oxidation_fractions((0, 20), seed=100)
    warning = composition_warning(unoxidised, reference, margin_pct=3.0)
    assert "no NiO" in warning and "every training image had it" in warning
    assert composition_warning(inside, reference, margin_pct=3.0) == ""


def test_range_margin_and_a_phase_no_training_image_had(reference):
    middle = (np.array(reference["min_pct"]) + reference["max_pct"]) / 2
    assert composition_warning(middle, reference, 3.0) == ""
    hi, lo = reference["max_pct"][2], reference["min_pct"][1]
    more_ni = middle + [0.0, 0.0, hi + 4.0 - middle[2], 0.0]
    assert composition_warning(more_ni, reference, 3.0) == (
        f"composition unlike the training images: Ni {hi + 4.0:.1f} % outside the training "
        f"images' {reference['min_pct'][2]:.1f}-{hi:.1f} %")
    assert composition_warning(more_ni, reference, 5.0) == ""  # within the wider margin
    less_nio = middle - [0.0, middle[1] - lo + 3.5, 0.0, 0.0]
    assert "NiO" in composition_warning(less_nio, reference, 3.0)
    no_nio = {**reference, "min_pct": [20.0, 0.0, 0.0, 30.0], "max_pct": [35.0, 0.1, 30.0, 45.0]}
    assert "NiO 5.0 % while no training image had it" in composition_warning(
        [30.0, 5.0, 25.0, 40.0], no_nio, 3.0)


def test_half_widths_combine_the_gap_and_the_floor():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 50, NUM_CLASSES)) + [1.0, 0.0, 0.0, 0.0]  # pore favoured
    proba = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = proba.argmax(-1).astype(np.uint8)
    hard, soft = fraction_parts(labels, proba.astype(np.float16))
    assert hard.sum() == pytest.approx(100.0) and soft.sum() == pytest.approx(100.0, abs=0.1)
    np.testing.assert_allclose(soft, 100 * proba.mean((0, 1)), atol=0.05)
    gap = np.abs(soft - hard)
    assert gap[0] > 5.0  # ambiguous pixels: the argmax gives pore more than its expected share
    np.testing.assert_allclose(half_widths(hard, soft, None), gap)
    floor = {"floor_pct": [1.0, 2.0, 0.0, 0.5]}
    widths = half_widths(hard, soft, floor)
    np.testing.assert_allclose(widths, np.hypot(gap, floor["floor_pct"]))
    assert np.all(np.isfinite(widths)) and np.all(widths >= gap)
