"""job=evaluate: on a prepared split, and on full images against reference label maps."""

import json

import pytest

from configs import evaluate as evaluate_config
from configs import segment as segment_config
from socseg_jax.evaluate_job import evaluate_checkpoint
from socseg_jax.segment import run_segment_job
from socseg_jax.train import train_and_evaluate
from tests.test_train import tiny_config


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
    run_segment_job(seg)

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
