"""TFDS array_record round trip: what prepare writes is what the input pipeline reads."""

import numpy as np
import pytest
import tifffile

from data_prep.tfds_builder import build_dataset, dataset_metadata, open_split, resolve_dataset_dir
from socseg_jax.core import dataset_layout
from tests.conftest import PATCH, write_prepared_samples


def test_round_trip_records_equal_source_crops(tiny_dataset):
    train = open_split(tiny_dataset, "train")
    assert len(train) == 3 * 2 * 3  # 3 images of 64×96 → 2×3 patches of 32
    assert len(open_split(tiny_dataset, "test")) == 6
    root = tiny_dataset.parents[2]
    for i in range(len(train)):
        record = train[i]
        source = (
            record["source"].decode() if isinstance(record["source"], bytes) else record["source"]
        )
        y, x = record["origin"]
        image = tifffile.imread(dataset_layout.image_path(root, source))
        label = tifffile.imread(dataset_layout.label_path(root, source))
        assert record["image"].shape == (PATCH, PATCH, 1) and record["image"].dtype == np.uint8
        np.testing.assert_array_equal(record["image"][..., 0], image[y : y + PATCH, x : x + PATCH])
        np.testing.assert_array_equal(record["label"], label[y : y + PATCH, x : x + PATCH])


def test_sources_do_not_leak_between_splits(tiny_dataset):
    def sources(split):
        ds = open_split(tiny_dataset, split)
        return {ds[i]["source"] for i in range(len(ds))}

    assert not sources("train") & sources("test")
    assert not sources("train") & sources("validation")


def test_same_settings_reuse_and_new_settings_write_a_new_config(tmp_path):
    samples = write_prepared_samples(tmp_path, ["a", "b"])
    splits = {"train": samples[:1], "test": samples[1:]}
    first = build_dataset(tmp_path, {"patch_size": 32, "stride": 32}, splits, {})
    mtime = (first / "dataset_info.json").stat().st_mtime_ns
    again = build_dataset(tmp_path, {"patch_size": 32, "stride": 32}, splits, {})
    assert again == first and (first / "dataset_info.json").stat().st_mtime_ns == mtime
    other = build_dataset(tmp_path, {"patch_size": 32, "stride": 16}, splits, {})
    assert other != first and len(open_split(other, "train")) > len(open_split(first, "train"))
    assert dataset_metadata(other)["settings"]["stride"] == 16


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_dataset_dir(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no prepared dataset"):
        resolve_dataset_dir(tmp_path)


def test_offline_augmentation_to_a_target_and_uint16(tmp_path):
    import tifffile

    samples = write_prepared_samples(tmp_path, ["a", "b"])
    for s in samples:  # 16-bit images
        tifffile.imwrite(s.image_path, tifffile.imread(s.image_path).astype(np.uint16) * 257)
    settings = {"patch_size": 32, "stride": 32, "augment_to": 20, "image_dtype": "uint16"}
    path = build_dataset(tmp_path, settings, {"train": samples[:1], "test": samples[1:]}, {})
    train, test = open_split(path, "train"), open_split(path, "test")
    assert len(train) == 20 and len(test) == 6  # 6 originals + 14 augmented; test untouched
    augs = sorted(int(train[i]["aug"]) for i in range(len(train)))
    assert augs.count(0) == 6 and max(augs) == 3
    assert train[0]["image"].dtype == np.uint16
