"""job=evaluate: on a prepared split, and on full images against reference label maps."""

import json

import numpy as np
import pytest
import tifffile
from socseg_jax.configs import evaluate as evaluate_config
from socseg_jax.configs import segment as segment_config

from data_prep.tfds_builder import build_dataset
from socseg_jax.jobs.evaluate import run as evaluate_checkpoint
from socseg_jax.jobs.segment import run as run_segment_job
from socseg_jax.training.train import train_and_evaluate
from tests.conftest import write_prepared_samples
from tests.training.test_train import tiny_config


@pytest.fixture(scope="module")
def trained_run(tiny_dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    train_and_evaluate(tiny_config(tiny_dataset, steps=3), run)
    return run


def small_predict(config):
    config.predict.patch_size = 32
    config.predict.stride = 16
    config.predict.batch_size = 4
    return config


def test_full_images_scored_against_grey_encoded_references(tiny_dataset, trained_run, tmp_path):
    images = tiny_dataset.parents[2] / "images"
    seg = small_predict(segment_config.get_config())
    seg.input, seg.output_dir, seg.checkpoint = str(images), str(tmp_path / "seg"), str(trained_run)
    seg.label_encoding = "grey"
    run_segment_job(seg, None)

    config = small_predict(evaluate_config.get_config())
    config.checkpoint, config.input = str(trained_run), str(images)
    config.truth_dir = str(tmp_path / "seg")  # the model's own maps, in the study's grey values
    scores = evaluate_checkpoint(config, str(tmp_path / "eval"))
    assert scores["pixel_accuracy"] == 1.0
    saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert saved["pixel_accuracy"] == 1.0 and "5 images" in saved["scope"]


def test_patch_split_scores(tiny_dataset, trained_run):
    config = small_predict(evaluate_config.get_config())
    config.checkpoint, config.dataset_dir = str(trained_run), str(tiny_dataset)
    config.split = "test"
    scores = evaluate_checkpoint(config, None)
    assert sum(scores["per_class_support"]) == 6 * 32 * 32  # every test pixel once
    assert 0.0 <= scores["mean_iou"] <= 1.0


def test_uint16_dataset_scored_as_training_validation_scores_it(tmp_path_factory):
    """job=evaluate scales uint16 records by 65535 like training (it used to divide by 255)."""
    root = tmp_path_factory.mktemp("uint16")
    samples = write_prepared_samples(root, [f"s{i}" for i in range(3)])
    for sample in samples:  # the same images as 16-bit records, full-range scaled
        tifffile.imwrite(sample.image_path, tifffile.imread(sample.image_path).astype(np.uint16)
                         * 257)
    splits = {"train": samples[:1], "validation": samples[1:2], "test": samples[2:]}
    dataset = build_dataset(root, {"patch_size": 32, "stride": 32, "channels": 1}, splits,
                            {"class_fractions": {}})
    run = tmp_path_factory.mktemp("run16")
    trained = train_and_evaluate(tiny_config(dataset, steps=3), run)
    config = small_predict(evaluate_config.get_config())
    config.checkpoint, config.dataset_dir, config.split = str(run), str(dataset), "test"
    scores = evaluate_checkpoint(config, None)
    assert scores["per_class_support"] == trained["test"]["per_class_support"]
    assert scores["pixel_accuracy"] == trained["test"]["pixel_accuracy"]
    assert scores["per_class_iou"] == trained["test"]["per_class_iou"]
