"""End to end on tiny data: the quickstart job writes every promised output."""

import csv
import json

import pytest
import tifffile
from socseg_jax.configs.quickstart import get_config

from data_prep import synthetic
from data_prep.patches import split_by_source
from socseg_jax.core import dataset_layout
from socseg_jax.core.phases import NI, NIO
from socseg_jax.jobs.quickstart import run
from tests.training.test_train import TINY_MODEL


@pytest.mark.slow
def test_quickstart_end_to_end_on_tiny_data(tmp_path):
    config = get_config()
    config.synthetic.num_samples = 4
    config.synthetic.shape = (128, 128)
    config.prepare.patch_size = 64
    config.prepare.stride = 64
    config.prepare.val_fraction = 0.25
    config.prepare.test_fraction = 0.25
    config.model = dict(TINY_MODEL)
    config.batch_size = 4
    config.num_train_steps = 4
    config.checkpoint_every_steps = 2
    config.predict.patch_size = 64
    config.predict.stride = 32
    config.predict.batch_size = 4
    metrics = run(config, str(tmp_path))

    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved == metrics
    for key in ("unet", "otsu", "eds_labels", "unet_vs_eds"):
        assert 0.0 <= saved[key]["mean_iou"] <= 1.0
        assert len(saved[key]["per_class_iou"]) == 4
        assert 0.0 <= saved[key]["pixel_accuracy"] <= 1.0
    test_image = saved["test_images"][0]
    assert (tmp_path / "segment" / test_image / "sem_labels.tif").exists()
    assert (tmp_path / "segment" / test_image / "sem_overlay.png").exists()
    assert (tmp_path / "report" / "test_comparison.png").exists()
    with open(tmp_path / "segment" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["ok"]
    total = sum(float(rows[0][f"{c}_percent"]) for c in ("pore", "NiO", "Ni", "YSZ"))
    assert abs(total - 100.0) < 0.01
    assert dataset_layout.label_path(tmp_path / "data", test_image).exists()
    assert (tmp_path / "data" / "prepare_report.json").exists()
    with open(tmp_path / "report" / "analysis" / "analysis.csv") as f:
        analysed = list(csv.DictReader(f))
    assert len(analysed) == 1 and float(analysed[0]["pixel_size_nm"]) > 0
    assert rows[0]["shift_score"] != ""  # training stored a shift reference


def test_quickstart_trains_and_tests_on_unoxidised_samples(tmp_path):
    """Issue #29: a model that never saw Ni without its NiO shell called it YSZ (62 % of the
    Ni of a 0-min image). The quickstart's data must put unoxidised samples (Ni, no NiO) in
    the train split, and one in the test split, where its score shows."""
    config = get_config()
    names = synthetic.write_raw_dataset(
        tmp_path, config.synthetic.num_samples, seed=config.seed, shape=(48, 48),
        oxidation_times=tuple(config.synthetic.oxidation_times),
    )
    splits = split_by_source(names, config.prepare.val_fraction, config.prepare.test_fraction,
                             config.seed)
    for split in ("train", "test"):
        unoxidised = [n for n in splits[split]
                      if json.loads((tmp_path / n / "simulation.json").read_text())
                      ["oxidation_min"] == 0]
        assert unoxidised, split
        truth = tifffile.imread(tmp_path / unoxidised[0] / "truth.tif")
        assert (truth == NI).any() and not (truth == NIO).any()
