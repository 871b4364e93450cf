"""Shift detection: training stores a reference; segment warns about a foreign image only."""

import csv

import numpy as np
import pytest
import tifffile
from socseg_jax.configs.segment import get_config

from data_prep.tfds_builder import build_dataset
from socseg_jax.core.intensity import normalize_sem
from socseg_jax.inference.loading import load_for_segment
from socseg_jax.inference.outputs import UNCERTAINTY_FIELDS
from socseg_jax.inference.shift import (
    FEATURES,
    SIGMA_SCALE,
    SPREAD_FLOOR,
    build_reference,
    prediction_spread_factor,
    read_reference,
    shift_score,
)
from socseg_jax.jobs import segment
from socseg_jax.training.train import train_and_evaluate
from tests.conftest import write_prepared_samples
from tests.training.test_train import tiny_config


def test_score_is_the_largest_standardised_distance():
    rows = [{f: 0.5 + 0.1 * i for f in FEATURES} for i in range(3)]
    reference = build_reference(rows)
    assert reference["num_images"] == 3
    assert all(reference["spread"][f] >= SPREAD_FLOOR[f] for f in FEATURES)
    assert shift_score(reference["mean"], reference)[0] == 0.0
    far = dict(reference["mean"]) | {"noise": reference["mean"]["noise"] + 0.5}
    score, feature = shift_score(far, reference)
    assert feature == "noise" and score == pytest.approx(0.5 / reference["spread"]["noise"])


@pytest.mark.parametrize("num_images", [5, 40])
def test_false_alarm_rate_does_not_depend_on_the_reference_size(num_images):
    """An in-domain image scores above SIGMA_SCALE as rarely as a normal SIGMA_SCALE-sigma event
    (two-sided 0.27 %), whether the reference has 5 images or 40; the plain standard deviation
    of 5 images would flag ~4 % of them."""
    rng = np.random.default_rng(0)
    trials = 400_000
    reference = rng.normal(size=(trials, num_images))
    new = rng.normal(size=trials)
    distance = np.abs(new - reference.mean(axis=1))
    corrected = distance / (prediction_spread_factor(num_images) * reference.std(axis=1, ddof=1))
    rate = float(np.mean(corrected > SIGMA_SCALE))
    assert rate == pytest.approx(0.0027, rel=0.2)
    if num_images == 5:
        assert float(np.mean(distance / reference.std(axis=1) > SIGMA_SCALE)) > 0.03


@pytest.fixture(scope="module")
def run_with_reference(tmp_path_factory):
    """A tiny run on images normalised as prepare writes them, with its shift reference."""
    root = tmp_path_factory.mktemp("shift_data")
    samples = write_prepared_samples(root, [f"s{i}" for i in range(6)], shape=(96, 96))
    raw = {}
    for sample in samples:
        raw[sample.name] = tifffile.imread(sample.image_path)
        normalised = np.round(normalize_sem(raw[sample.name]) * 255).astype(np.uint8)
        tifffile.imwrite(sample.image_path, normalised)
    splits = {"train": samples[:4], "validation": samples[4:5], "test": samples[5:]}
    dataset = build_dataset(root, {"patch_size": 32, "stride": 32, "channels": 1}, splits,
                            {"class_fractions": {}})
    workdir = tmp_path_factory.mktemp("shift_run")
    config = tiny_config(dataset, steps=30)
    config.shift_reference_images = 8
    train_and_evaluate(config, workdir)
    return workdir, raw["s5"]


def test_foreign_image_is_flagged_and_in_domain_is_not(run_with_reference, tmp_path):
    workdir, test_image = run_with_reference
    reference = read_reference(workdir)
    assert reference is not None and reference["num_images"] == 5  # train + validation
    rng = np.random.default_rng(0)
    images = tmp_path / "in"
    images.mkdir()
    tifffile.imwrite(images / "in_domain.tif", test_image)
    foreign = rng.integers(0, 65535, test_image.shape, dtype=np.uint16)  # pure noise, 16-bit
    tifffile.imwrite(images / "foreign.tif", foreign)
    config = get_config()
    config.input, config.output_dir = str(images), str(tmp_path / "out")
    config.checkpoint = str(workdir)
    # The default threshold holds for this 5-image toy reference too: the spreads are
    # small-sample prediction spreads (the plain standard deviation gave the held-out image ~5).
    config.predict.update(patch_size=32, stride=16, batch_size=4)
    # The toy images' pore fractions vary over ~70-82 %, wider than what 5 reference images
    # span; the composition check itself is tested in test_composition.py.
    config.composition_margin_pct = 10.0
    segment.run(config, None)
    with open(tmp_path / "out" / "summary.csv", newline="") as f:
        rows = {row["path"].rsplit("/", 1)[1]: row for row in csv.DictReader(f)}
    assert rows["in_domain.tif"]["warning"] == "", rows["in_domain.tif"]
    assert len(reference["class_levels"]) == 4  # the grey-level calibration's targets
    assert float(rows["in_domain.tif"]["level_gamma"]) == 1.0  # left as it is
    assert "unlike the training images" in rows["foreign.tif"]["warning"]
    # The composition of the reference images (labels known): its range and the calibrated
    # floor of every fraction's interval, which the in-domain image's half-widths include.
    composition = reference["composition"]
    assert all(lo <= hi for lo, hi in zip(composition["min_pct"], composition["max_pct"],
                                          strict=True))
    floor = np.array(composition["floor_pct"])
    assert np.all(np.isfinite(floor)) and floor.max() > 0
    widths = np.array([float(rows["in_domain.tif"][f]) for f in UNCERTAINTY_FIELDS])
    assert np.all(np.isfinite(widths)) and np.all(widths >= floor - 1e-3)
    assert float(rows["foreign.tif"]["shift_score"]) > float(rows["in_domain.tif"]["shift_score"])


def test_reference_carries_the_class_calibration_and_segment_applies_it(run_with_reference):
    """Training fits the class offsets on its labelled reference images; segment's predictor
    takes them unless calibrate_classes is False."""
    workdir, _ = run_with_reference
    bias = read_reference(workdir)["class_bias"]
    assert len(bias) == 4 and np.all(np.isfinite(bias)) and np.ptp(bias) > 0
    config = get_config()
    config.checkpoint = str(workdir)
    predictor, _, _ = load_for_segment(config)
    np.testing.assert_allclose(predictor.class_bias, bias)
    config.calibrate_classes = False
    assert load_for_segment(config)[0].class_bias is None
