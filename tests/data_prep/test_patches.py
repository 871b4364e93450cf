"""Patch grid and split-by-source-image."""

import numpy as np
import pytest

from data_prep.patches import cut_patches, patch_origins, split_by_source, tile_starts


@pytest.mark.parametrize("length,patch,stride", [(256, 64, 32), (100, 32, 24), (32, 32, 16)])
def test_tile_starts_cover_to_the_border(length, patch, stride):
    starts = tile_starts(length, patch, stride)
    assert starts[0] == 0 and starts[-1] == length - patch
    assert np.all(np.diff(starts) <= stride) and np.all(np.diff(starts) > 0)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + patch] = True
    assert covered.all()


@pytest.mark.parametrize(
    "length,patch,stride,expected",
    [
        (256, 256, 128, [0]),
        (100, 256, 128, [0]),
        (300, 256, 128, [0, 44]),
        (512, 256, 128, [0, 128, 256]),
        (520, 256, 128, [0, 128, 256, 264]),
        (37, 32, 16, [0, 5]),
        (53, 32, 32, [0, 21]),
    ],
)
def test_tile_starts_values(length, patch, stride, expected):
    starts = tile_starts(length, patch, stride)
    np.testing.assert_array_equal(starts, expected)
    assert starts[-1] + patch == max(length, patch)  # last tile ends exactly at the border
    assert np.all(np.diff(starts) <= stride) and np.all(np.diff(starts) > 0)


def test_cut_patches_are_crops_of_the_source():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (70, 90), np.uint8)
    label = rng.integers(0, 4, (70, 90), np.uint8)
    conf = rng.integers(0, 255, (70, 90), np.uint8)
    patches = list(cut_patches("s", image, label, conf, 32, 32))
    assert len(patches) == len(patch_origins((70, 90), 32, 32)) == 3 * 3
    for p in patches:
        y, x = p.origin
        np.testing.assert_array_equal(p.image, image[y : y + 32, x : x + 32])
        np.testing.assert_array_equal(p.label, label[y : y + 32, x : x + 32])


def test_split_by_source_has_no_leakage_and_is_deterministic():
    names = [f"sample_{i:03d}" for i in range(10)]
    a = split_by_source(names, 0.1, 0.2, seed=3)
    b = split_by_source(names, 0.1, 0.2, seed=3)
    assert a == b
    assert sorted(a["train"] + a["validation"] + a["test"]) == names
    assert not set(a["train"]) & set(a["test"]) and not set(a["train"]) & set(a["validation"])
    assert len(a["test"]) == 2 and len(a["validation"]) == 1


def test_split_gives_each_split_an_image_when_there_are_three():
    split = split_by_source(["a", "b", "c"], 0.1, 0.1, seed=0)
    assert all(len(split[s]) == 1 for s in ("train", "validation", "test"))


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError):
        split_by_source(["a", "b"], 0.6, 0.5, seed=0)


def test_random_sampler_respects_the_iou_cap_and_seed():
    from data_prep.patches import random_patch_origins, sample_origins

    rng = np.random.default_rng(0)
    origins = random_patch_origins((200, 300), 64, 20, 0.25, rng)
    assert 5 <= len(origins) <= 20
    for i, (ay, ax) in enumerate(origins):
        assert 0 <= ay <= 136 and 0 <= ax <= 236
        for by, bx in origins[i + 1 :]:
            inter = max(0, 64 - abs(ay - by)) * max(0, 64 - abs(ax - bx))
            assert inter / (2 * 64 * 64 - inter) <= 0.25
    settings = {"sampler": "random", "stride": 32, "patches_per_image": 6}
    a = sample_origins((200, 300), 64, settings, "img", seed=1)
    assert a == sample_origins((200, 300), 64, settings, "img", seed=1) and len(a) <= 6
    assert sample_origins((200, 300), 64, {"stride": 64}, "img", 0) == patch_origins(
        (200, 300), 64, 64
    )


def test_augment_patch_moves_image_and_label_together():
    from data_prep.patches import augment_patch

    label = np.zeros((16, 16), np.uint8)
    label[:4, :8] = 3
    image = (label[..., None] * 60).astype(np.uint16) * 257
    for seed in range(8):
        img, lab, conf = augment_patch(image, label, label.copy(), np.random.default_rng(seed))
        assert img.dtype == np.uint16 and lab.shape == (16, 16) and (lab == 3).sum() == 32
        np.testing.assert_array_equal(conf, lab)
        assert img[lab == 3].mean() > img[lab == 0].mean() + 20000  # still where the label is
