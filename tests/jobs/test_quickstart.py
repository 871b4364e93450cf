"""The quickstart job end to end on its own data: every promised output, the 0-min image's Ni."""

import csv
import json

import pytest
import tifffile
from socseg_jax.configs.quickstart import get_config

from data_prep import synthetic
from data_prep.patches import split_by_source
from socseg_jax.core import dataset_layout
from socseg_jax.core.phases import CLASS_NAMES, NI, NIO
from socseg_jax.jobs.quickstart import run


@pytest.mark.slow
def test_quickstart_on_its_data_writes_every_output_and_keeps_unoxidised_ni(tmp_path):
    """The quickstart on its own simulated data (14 samples of 512², its oxidation times and
    splits), its U-Net trained for its 900 steps on 64-px instead of 128-px patches (a quarter
    of the cost, ~1.5 min on 2 cores): every promised output exists, and the unoxidised (0-min)
    test image keeps its Ni within 3 pp of the true fraction (issue #29: a model that leant on
    the NiO shells called 62 % of shell-less Ni YSZ, 16.5 pp). Measured with training seeds
    0 / 1 / 2: -1.61 / -1.68 / -1.78 pp.

    The acquisition augmentation's brightness ramp is off, as docs/jobs/train.md advises for
    small patches: at its full amplitude across 64 px it taught the network to find Ni by its
    NiO shell (0-min Ni -2.7 / -2.3 pp, -8.9 pp at a higher learning rate), at the slope it
    keeps on small patches now -2.4 / -1.3 / -2.4 pp (RESULTS.md, "Oxidation series: longer
    training, the brightness-ramp augmentation and a 0-min test" and "... the perfect-teacher
    ceiling and the ramp's slope")."""
    config = get_config()
    config.prepare.patch_size, config.prepare.stride = 64, 32
    config.acquisition.gradient = 0.0
    metrics = run(config, str(tmp_path))

    saved = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert saved == metrics
    for key in ("unet", "otsu", "eds_labels", "unet_vs_eds"):
        assert 0.0 <= saved[key]["mean_iou"] <= 1.0
        assert len(saved[key]["per_class_iou"]) == 4
        assert 0.0 <= saved[key]["pixel_accuracy"] <= 1.0
    for image in saved["test_images"]:
        assert (tmp_path / "segment" / image / "sem_labels.tif").exists()
        assert (tmp_path / "segment" / image / "sem_overlay.png").exists()
        assert dataset_layout.label_path(tmp_path / "data", image).exists()
    assert (tmp_path / "report" / "test_comparison.png").exists()
    assert (tmp_path / "data" / "prepare_report.json").exists()
    with open(tmp_path / "segment" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["ok"] * len(saved["test_images"])
    for row in rows:
        total = sum(float(row[f"{c}_percent"]) for c in CLASS_NAMES)
        assert abs(total - 100.0) < 0.01
        assert row["shift_score"] != ""  # training stored a shift reference
    with open(tmp_path / "report" / "analysis" / "analysis.csv") as f:
        analysed = list(csv.DictReader(f))
    assert len(analysed) == len(rows) and all(float(r["pixel_size_nm"]) > 0 for r in analysed)

    with open(tmp_path / "report" / "phase_fractions.csv") as f:
        fractions = {(r["image"], r["source"]): r for r in csv.DictReader(f)}
    unoxidised = [n for n in saved["test_images"]
                  if json.loads((tmp_path / "raw" / n / "simulation.json").read_text())
                  ["oxidation_min"] == 0]
    assert len(unoxidised) == 1
    truth, unet = (float(fractions[(unoxidised[0], s)]["Ni_percent"]) for s in ("truth", "unet"))
    assert truth > 20.0 and abs(unet - truth) <= 3.0, (truth, unet)


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
