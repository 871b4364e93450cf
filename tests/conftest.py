"""Shared fixtures: tiny prepared datasets written by the project's own code; one JAX
compilation cache for the whole run."""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from data_prep.tfds_builder import PreparedSample, build_dataset
from socseg_jax.core import dataset_layout

PATCH = 32

# JAX's persistent compilation cache, shared by this pytest process and every subprocess it
# starts (they inherit the environment): the tests compile the same tiny programs again and
# again (each train_and_evaluate, each training worker, each launch.py run), and a cached
# executable loads in a fraction of the compile time. Results are unchanged: the cache key is
# the program, the compile options and the devices. Every compilation is cached (threshold
# 0 s), as the tiny test programs compile under JAX's default 1 s threshold. An entry that
# cannot be read (say, one process reads it while another writes it) is compiled again, with
# a warning. A cache folder already set (by the user, or by this file imported again under
# another name) is used as it is; the one made here is removed when the run ends.
_OWN_JAX_CACHE = None
if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    _OWN_JAX_CACHE = tempfile.mkdtemp(prefix="socseg_jax_test_cache_")
    os.environ.update({  # jax reads them when it is first imported, after this file
        "JAX_COMPILATION_CACHE_DIR": _OWN_JAX_CACHE,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    })


def pytest_unconfigure(config) -> None:
    if _OWN_JAX_CACHE:
        shutil.rmtree(_OWN_JAX_CACHE, ignore_errors=True)


def write_prepared_samples(root: Path, names: list[str], shape=(64, 96), seed=0):
    """Images whose grey level encodes the class (with noise), so a tiny net can learn them."""
    rng = np.random.default_rng(seed)
    samples = []
    for name in names:
        label = np.zeros(shape, np.uint8)
        for _ in range(12):
            y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
            r = rng.integers(4, 12)
            yy, xx = np.ogrid[: shape[0], : shape[1]]
            label[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = rng.integers(1, 4)
        image = np.clip(40 + 60 * label + rng.normal(0, 10, shape), 0, 255).astype(np.uint8)
        paths = PreparedSample(
            name,
            dataset_layout.image_path(root, name),
            dataset_layout.label_path(root, name),
            dataset_layout.confidence_path(root, name),
        )
        for p in (paths.image_path, paths.label_path):
            p.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(paths.image_path, image)
        tifffile.imwrite(paths.label_path, label)
        tifffile.imwrite(paths.confidence_path, np.full(shape, 255, np.uint8))
        samples.append(paths)
    return samples


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A TFDS dataset (patch 32) with 3 train, 1 validation and 1 test image."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    samples = write_prepared_samples(root, [f"s{i}" for i in range(5)])
    splits = {"train": samples[:3], "validation": samples[3:4], "test": samples[4:]}
    settings = {"patch_size": PATCH, "stride": 32, "channels": 1}
    return build_dataset(root, settings, splits, {"class_fractions": {}})


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory) -> Path:
    """A train workdir holding a tiny U-Net checkpoint, saved as train.py saves it."""
    from flax import nnx

    from socseg_jax.models.unet import UNet, UNetConfig
    from socseg_jax.training import checkpoints

    workdir = tmp_path_factory.mktemp("run")
    config = UNetConfig(features=(4, 8), encoder_dropout=(0.1, 0.1), decoder_dropout=(0.1,))
    model = UNet(config, rngs=nnx.Rngs(0))
    manager = checkpoints.checkpoint_manager(workdir)
    state = {"params": nnx.to_pure_dict(nnx.state(model, nnx.Param)), "opt_state": {}, "step": 0}
    checkpoints.save(manager, 3, state, config)
    manager.wait_until_finished()
    loaded, loaded_config, step = checkpoints.load_model(workdir)
    assert loaded_config == config and step == 3
    np.testing.assert_array_equal(loaded.head.kernel[...], model.head.kernel[...])
    return workdir


@pytest.fixture(autouse=True, scope="session")
def use_leak_safe_log_records():
    """Overrides napari's pytest plugin fixture of this name (with the napari extra it runs
    for every test): its LogRecord factory turns a lone dict argument into the tuple of its
    keys, so ``log.info("... %s", a_dict)`` fails. The project's records keep Python's own."""
    yield
