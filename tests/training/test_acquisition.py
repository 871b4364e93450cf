"""Acquisition augmentation: labels stay aligned, each part switches off, runs resume exactly."""

import numpy as np
import pytest
from ml_collections import ConfigDict
from socseg_jax.configs.sections import train_config

from socseg_jax.core.errors import UserError
from socseg_jax.training.acquisition import RAMP_REFERENCE_PX, SETTINGS, AcquisitionAugment
from socseg_jax.training.input_pipeline import train_batches


def settings(**overrides):
    """config.acquisition (configs/sections.py), enabled, with some settings changed."""
    config = ConfigDict()
    train_config(config)
    config.acquisition.enabled = True
    config.acquisition.update(overrides)
    return config.acquisition


def disks(size=64, seed=0):
    """A label map of disks and an image whose grey level is the class (no noise)."""
    rng = np.random.default_rng(seed)
    label = np.zeros((size, size), np.uint8)
    yy, xx = np.ogrid[:size, :size]
    for _ in range(10):
        y, x, r = rng.integers(0, size), rng.integers(0, size), rng.integers(5, 12)
        label[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = rng.integers(1, 4)
    return {"image": (40 + 60 * label)[..., None].astype(np.uint8), "label": label}


def test_scale_keeps_labels_aligned_with_the_image():
    record = disks()
    only_scale = settings(**{k: 0.0 for k in SETTINGS if k != "scale"} | {"scale": 0.2})
    changed = 0
    for seed in range(12):
        out = AcquisitionAugment(only_scale).random_map(record, np.random.default_rng(seed))
        classes = np.clip(np.rint((out["image"][..., 0].astype(float) - 40) / 60), 0, 3)
        interior = out["label"] == classes  # mismatches only on the interpolated edges
        assert interior.mean() > 0.95
        changed += not np.array_equal(out["label"], record["label"])
    assert changed >= 10


def test_every_part_switches_off_and_settings_are_checked():
    record = disks(RAMP_REFERENCE_PX)  # the ramp at its full amplitude
    off = settings(**{k: 0.0 for k in SETTINGS})
    out = AcquisitionAugment(off).random_map(record, np.random.default_rng(0))
    np.testing.assert_array_equal(out["image"], record["image"])
    np.testing.assert_array_equal(out["label"], record["label"])
    # gamma, contrast and brightness are off by default (measured): switched on here
    strengths = {"gamma": 1.4, "contrast": 0.25, "brightness": 0.08,
                 "gradient": settings().gradient, "noise_sigma": settings().noise_sigma}
    for key, strength in strengths.items():
        one = settings(**{k: 0.0 for k in SETTINGS} | {key: strength})
        out = AcquisitionAugment(one).random_map(record, np.random.default_rng(1))
        assert not np.array_equal(out["image"], record["image"]), key
        np.testing.assert_array_equal(out["label"], record["label"])
    sixteen = {"image": record["image"].astype(np.uint16) * 257, "label": record["label"]}
    out = AcquisitionAugment(settings()).random_map(sixteen, np.random.default_rng(2))
    assert out["image"].dtype == np.uint16 and out["image"].max() > 255
    with pytest.raises(UserError, match="unknown"):
        AcquisitionAugment(settings(hue=0.1))
    with pytest.raises(UserError, match="gamma"):
        AcquisitionAugment(settings(gamma=0.5))


def test_the_brightness_ramp_keeps_its_slope_on_small_patches():
    """The ramp reaches ±gradient across 128 px (RAMP_REFERENCE_PX) and no more steeply on a
    smaller patch: on 64-px patches the full ramp taught the network to find Ni by its NiO
    shell (issue #29)."""
    only_ramp = AcquisitionAugment(settings(**{k: 0.0 for k in SETTINGS} | {"gradient": 0.2}))

    def spread(size, seed):
        flat = {"image": np.full((size, size, 1), 30000, np.uint16),
                "label": np.zeros((size, size), np.uint8)}
        out = only_ramp.random_map(flat, np.random.default_rng(seed))["image"] / 65535.0
        return float(out.max() - out.min())

    for seed in range(5):  # the same draws: amplitude and direction
        assert spread(64, seed) == pytest.approx(0.5 * spread(128, seed), rel=0.05, abs=2e-4)
        assert spread(256, seed) == pytest.approx(spread(128, seed), rel=0.05, abs=2e-4)
    assert spread(RAMP_REFERENCE_PX, 0) > 0.01


def test_augmented_batches_resume_exactly(tiny_dataset):
    acquisition = settings()
    run = list(train_batches(str(tiny_dataset), 4, num_steps=5, seed=3, acquisition=acquisition))
    resumed = train_batches(str(tiny_dataset), 4, num_steps=5, seed=3, acquisition=acquisition)
    resumed.set_state({"next_index": 3})
    for a, b in zip(run[3:], list(resumed), strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["label"], b["label"])
    plain = list(train_batches(str(tiny_dataset), 4, num_steps=5, seed=3))
    assert any(not np.array_equal(a["image"], b["image"]) for a, b in zip(run, plain,
                                                                            strict=True))


def test_apply_prob_leaves_that_share_of_records_as_acquired():
    record = disks()
    half = AcquisitionAugment(settings(apply_prob=0.5))
    unchanged = [np.array_equal(half.random_map(record, np.random.default_rng(seed))["image"],
                                record["image"]) for seed in range(200)]
    assert 0.38 < np.mean(unchanged) < 0.62  # binomial(200, 0.5): 5 sigma
    every = AcquisitionAugment(settings())  # 1.0 by default: no record passes unchanged
    assert not any(np.array_equal(every.random_map(record, np.random.default_rng(seed))["image"],
                                  record["image"]) for seed in range(20))
    with pytest.raises(UserError, match="apply_prob"):
        AcquisitionAugment(settings(apply_prob=0.0))
