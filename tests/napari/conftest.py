"""napari plugin tests: a prepared dataset made by the simulator and prepare."""

import shutil
from pathlib import Path

import pytest
from socseg_jax.configs.sections import prepare_config

from data_prep import synthetic
from data_prep.prepare.run import prepare


def prepare_settings():
    """config.prepare on small patches, every sample in the training split."""
    config = prepare_config()
    config.update(patch_size=64, stride=64, val_fraction=0.0, test_fraction=0.0)
    return config


@pytest.fixture(scope="session")
def simulated_raw(tmp_path_factory) -> Path:
    """Two simulated raw samples (SEM with pixel size, EDS maps)."""
    raw = tmp_path_factory.mktemp("napari_raw")
    synthetic.write_raw_dataset(raw, 2, seed=3, shape=(96, 128))
    return raw


@pytest.fixture
def prepared(simulated_raw, tmp_path) -> tuple[Path, Path]:
    """(raw folder, prepare output) of the simulated samples, the raw folder a private copy."""
    raw = tmp_path / "raw"
    shutil.copytree(simulated_raw, raw)
    out = tmp_path / "prepared"
    prepare(raw, out, prepare_settings())
    return raw, out
