"""Tests for confusion matrices and IoU/Dice/accuracy against hand-computed values."""

import math

import jax
import numpy as np
import pytest

from socseg_jax.core.scores import confusion_matrix, format_scores, segmentation_scores
from socseg_jax.evaluation.device_confusion import confusion_matrix_jax

TRUTH = np.array([[0, 0, 1, 1], [2, 2, 2, 0]])
PRED = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
# truth 0: preds 0, 1, 0 ; truth 1: 1, 1 ; truth 2: 2, 0, 2 ; class 3 absent everywhere.
EXPECTED_CM = np.array([[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])


def test_confusion_matrix_hand_computed():
    cm = confusion_matrix(TRUTH, PRED, num_classes=4)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, EXPECTED_CM)


def test_confusion_matrix_ignore_index_and_errors():
    truth = TRUTH.copy()
    truth[0, 0] = 255
    cm = confusion_matrix(truth, PRED, 4, ignore_index=255)
    np.testing.assert_array_equal(cm, EXPECTED_CM - np.diag([1, 0, 0, 0]))
    with pytest.raises(ValueError, match="truth labels"):
        confusion_matrix(truth, PRED, 4)
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_matrix(TRUTH, PRED[:, :3], 4)


def test_scores_hand_computed():
    scores = segmentation_scores(EXPECTED_CM)
    # class 0: tp 2, fp 1, fn 1 -> IoU 2/4, Dice 4/6; class 1: tp 2, fp 1, fn 0 -> 2/3, 4/5;
    # class 2: tp 2, fp 0, fn 1 -> 2/3, 4/5; class 3 absent -> NaN.
    np.testing.assert_allclose(scores["per_class_iou"][:3], [0.5, 2 / 3, 2 / 3])
    np.testing.assert_allclose(scores["per_class_dice"][:3], [2 / 3, 0.8, 0.8])
    assert math.isnan(scores["per_class_iou"][3]) and math.isnan(scores["per_class_dice"][3])
    assert scores["mean_iou"] == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    assert scores["mean_dice"] == pytest.approx((2 / 3 + 0.8 + 0.8) / 3)
    assert scores["pixel_accuracy"] == pytest.approx(6 / 8)
    assert scores["per_class_support"] == [3, 2, 3, 0]


def test_class_predicted_but_absent_from_truth_scores_zero():
    cm = np.array([[1, 1], [0, 0]])
    scores = segmentation_scores(cm)
    assert scores["per_class_iou"] == [0.5, 0.0]
    assert scores["mean_iou"] == pytest.approx(0.25)


def test_empty_confusion_matrix_is_nan():
    scores = segmentation_scores(np.zeros((4, 4), np.int64))
    assert math.isnan(scores["mean_iou"]) and math.isnan(scores["pixel_accuracy"])


def test_jax_matches_numpy():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, size=(3, 17, 19))
    pred = rng.integers(0, 4, size=(3, 17, 19))
    mask = rng.random((3, 17, 19)) > 0.3
    fn = jax.jit(confusion_matrix_jax, static_argnums=2)
    np.testing.assert_array_equal(np.asarray(fn(truth, pred, 4)), confusion_matrix(truth, pred))
    masked = np.asarray(fn(truth, pred, 4, mask))
    np.testing.assert_array_equal(masked, confusion_matrix(truth[mask], pred[mask]))
    # Out-of-range labels (e.g. an ignore value) are dropped on device.
    truth_ignore = np.where(mask, truth, 255)
    np.testing.assert_array_equal(np.asarray(fn(truth_ignore, pred, 4)), masked)


def test_format_scores_table():
    text = format_scores(segmentation_scores(EXPECTED_CM), ["pore", "NiO", "Ni", "YSZ"])
    lines = text.splitlines()
    assert lines[0].split() == ["class", "IoU", "Dice", "support"]
    assert lines[1].split() == ["pore", "0.5000", "0.6667", "3"]
    assert lines[4].split() == ["YSZ", "n/a", "n/a", "0"]
    assert "mean" in lines[5] and "0.6111" in lines[5]
    assert lines[-1] == "pixel accuracy: 0.7500"
    assert len({len(line) for line in lines[:-1]}) == 1  # aligned columns
    with pytest.raises(ValueError, match="class names"):
        format_scores(segmentation_scores(EXPECTED_CM), ["a", "b"])
