"""Grey-level calibration (inference/levels.py): a gamma-mapped image is brought back onto the
training levels; in-domain and noisier images are left alone."""

import numpy as np
import pytest

from socseg_jax.inference.levels import calibrate, class_levels, fit_gamma

LEVELS = [0.1, 0.4, 0.57, 0.75]  # pore, NiO, Ni, YSZ as a trained model sees them
REFERENCE = {"class_levels": LEVELS, "mean": {"noise": 0.02}, "spread": {"noise": 0.01}}


def _phantom(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(truth, image): 8x8-px blocks of random classes at LEVELS plus a little noise."""
    rng = np.random.default_rng(seed)
    truth = np.kron(rng.integers(0, 4, (16, 16)), np.ones((8, 8), int)).astype(np.uint8)
    image = np.array(LEVELS, np.float32)[truth] + rng.normal(0, 0.01, truth.shape)
    return truth, np.clip(image, 0, 1).astype(np.float32)


def _nearest_level_model(truth: np.ndarray):
    """A stand-in for a calibrated network: the class of the nearest training level, sure
    where that is right and unsure where it is wrong."""

    def predict(image: np.ndarray) -> dict[str, np.ndarray]:
        labels = np.abs(image[..., None] - np.array(LEVELS, np.float32)).argmin(-1)
        right = labels == truth
        return {"labels": labels.astype(np.uint8), "max_prob": np.where(right, 0.95, 0.5),
                "entropy": np.where(right, 0.1, 0.8)}

    return predict


def test_fit_gamma_recovers_a_known_gamma():
    assert fit_gamma([v ** (1 / 1.3) for v in LEVELS], LEVELS) == pytest.approx(1.3, rel=0.01)
    assert fit_gamma([None, 0.5, None, None], LEVELS) == 1.0  # one class: nothing to fit


def test_class_levels_come_from_confident_interiors():
    truth, image = _phantom()
    levels = class_levels(image, truth, np.ones(truth.shape, np.float32))
    assert levels == pytest.approx(LEVELS, abs=0.005)
    unsure = class_levels(image, truth, np.zeros(truth.shape, np.float32))
    assert unsure == [None] * 4


def test_gamma_mapped_image_is_recovered():
    truth, image = _phantom()
    mapped = image ** np.float32(1 / 1.35)  # another detector's response: NiO looks like Ni
    model = _nearest_level_model(truth)
    first = model(mapped)
    maps, gamma = calibrate(model, mapped, first, REFERENCE, {"noise": 0.02})
    assert 1.2 < gamma < 1.45
    before, after = (float(np.mean(m["labels"] == truth)) for m in (first, maps))
    assert before < 0.8 and after > 0.97, (before, after)


def test_in_domain_and_noisier_images_are_left_alone():
    truth, image = _phantom()
    model = _nearest_level_model(truth)
    maps = model(image)
    assert calibrate(model, image, maps, REFERENCE, {"noise": 0.02}) == (maps, 1.0)
    mapped = image ** np.float32(1 / 1.35)
    first = model(mapped)
    noisier = {"noise": 0.02 + 4 * 0.01}  # another dose: its levels are not comparable
    assert calibrate(model, mapped, first, REFERENCE, noisier) == (first, 1.0)
    no_levels = {k: v for k, v in REFERENCE.items() if k != "class_levels"}  # older reference
    assert calibrate(model, mapped, first, no_levels, {"noise": 0.02})[1] == 1.0
