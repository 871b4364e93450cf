"""Class calibration (inference/class_bias.py): offsets fitted on labelled pixels take a
model's lean towards one phase out, and the predictor applies them to every map."""

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from socseg_jax.core.phases import NI, NUM_CLASSES, YSZ
from socseg_jax.inference.class_bias import (
    class_weights,
    fit_class_bias,
    fit_window,
    sample_pixels,
)
from socseg_jax.inference.predictor import SlidingWindowPredictor


def leaning_model(lean: np.ndarray, n: int = 60_000, seed: int = 0):
    """Labels and the log-probabilities of a calibrated model on them, distorted by ``lean``
    added to its logits (a model that favours the phases with a positive lean)."""
    rng = np.random.default_rng(seed)
    prior = np.array([0.25, 0.15, 0.2, 0.4])
    labels = rng.choice(NUM_CLASSES, n, p=prior)
    evidence = rng.normal(0.0, 1.0, (n, NUM_CLASSES))  # informative but ambiguous
    evidence[np.arange(n), labels] += 1.5
    # The exact posterior: prior times the Gaussian likelihood of the evidence.
    return labels, log_softmax(1.5 * evidence + np.log(prior) + lean, axis=1)


def test_a_known_lean_is_recovered_and_the_expected_fractions_match_the_labels():
    lean = np.array([0.0, -0.3, -0.6, 0.9])  # e.g. Ni read as YSZ
    labels, log_proba = leaning_model(lean)
    bias = fit_class_bias(log_proba, labels)
    assert bias.sum() == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(bias, -(lean - lean.mean()), atol=0.05)
    target = np.bincount(labels, minlength=NUM_CLASSES) / len(labels)
    raw = np.exp(log_proba).mean(axis=0)
    calibrated = softmax(log_proba + bias, axis=1).mean(axis=0)
    assert abs(raw[YSZ] - target[YSZ]) > 0.05  # the lean is visible before
    np.testing.assert_allclose(calibrated, target, atol=1e-3)
    hard_before = np.bincount(log_proba.argmax(1), minlength=NUM_CLASSES) / len(labels)
    hard_after = np.bincount((log_proba + bias).argmax(1), minlength=NUM_CLASSES) / len(labels)
    assert np.abs(hard_after - target).max() < np.abs(hard_before - target).max() / 3


def test_an_unbiased_model_is_left_alone_and_an_absent_phase_gets_no_offset():
    labels, log_proba = leaning_model(np.zeros(NUM_CLASSES))
    np.testing.assert_allclose(fit_class_bias(log_proba, labels), 0.0, atol=0.03)
    keep = labels != NI  # no Ni pixel among the labels
    bias = fit_class_bias(log_proba[keep], labels[keep])
    assert bias[NI] == 0.0 and np.all(np.isfinite(bias))
    with pytest.raises(ValueError):
        fit_class_bias(log_proba[:0], labels[:0])


def test_pixel_sample_skips_unlabelled_pixels_and_keeps_the_budget():
    proba = np.full((40, 50, NUM_CLASSES), 0.25, np.float32)
    labels = np.full((40, 50), 255, np.uint8)
    labels[:10] = YSZ
    log_proba, picked = sample_pixels(proba, labels, np.random.default_rng(0), budget=100)
    assert log_proba.shape == (100, NUM_CLASSES) and np.all(picked == YSZ)
    assert np.allclose(log_proba, np.log(0.25))


def test_predictor_applies_the_offsets_to_labels_and_probabilities():
    probs = np.array([0.1, 0.2, 0.33, 0.37], np.float32)  # YSZ by a small margin

    def constant(batch):
        return np.broadcast_to(probs, (*batch.shape[:3], NUM_CLASSES)).astype(np.float32)

    image = np.zeros((64, 64, 1), np.float32)
    kinds = ("labels", "proba", "class_row_sums")
    plain = SlidingWindowPredictor(constant, patch_size=32, stride=16, jit_apply=False)
    raw = plain.predict_maps(image, kinds)
    assert np.all(raw["labels"] == YSZ)
    np.testing.assert_allclose(raw["proba"], np.broadcast_to(probs, raw["proba"].shape),
                               rtol=1e-6)
    bias = np.array([0.0, 0.0, 0.2, -0.2])
    plain.class_bias = bias
    calibrated = plain.predict_maps(image, kinds)
    assert np.all(calibrated["labels"] == NI)
    expected = probs * class_weights(bias) / (probs * class_weights(bias)).sum()
    np.testing.assert_allclose(calibrated["proba"][7, 9], expected, rtol=1e-5)
    np.testing.assert_allclose(calibrated["class_row_sums"].sum(axis=0) / image[..., 0].size,
                               expected, rtol=1e-5)
    with pytest.raises(ValueError):
        class_weights(np.array([0.0, np.nan, 0.0, 0.0]))


@pytest.mark.parametrize(("shape", "expected"), [
    ((512, 700), ((0, 512), (0, 700))),
    ((2856, 4096, 1), ((916, 1940), (1536, 2560))),
])
def test_the_fit_predicts_a_bounded_centred_window(shape, expected):
    window = fit_window(shape)
    assert [(w.start, w.stop) for w in window] == list(expected)
