"""Cutting full-size images into training patches and splitting samples by source image."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "validation", "test")


def tile_starts(length: int, patch: int, stride: int) -> np.ndarray:
    """Window starts 0, stride, 2·stride, ... along one axis, the last ending at the border.

    A `length` shorter than `patch` is treated as padded to `patch` (one window at 0). The
    final step may be shorter than `stride`, so that the last window ends exactly at
    max(length, patch): every position is covered and no window reaches past the border.
    """
    if patch < 1 or stride < 1:
        raise ValueError(f"patch and stride must be >= 1, got patch={patch}, stride={stride}")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    last = max(length, patch) - patch
    count = -(-last // stride) + 1
    return np.minimum(np.arange(count, dtype=np.int64) * stride, last)


def patch_origins(shape: tuple[int, int], patch: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of a regular grid of patches covering an image of `shape`."""
    rows = tile_starts(shape[0], patch, stride)
    cols = tile_starts(shape[1], patch, stride)
    return [(int(y), int(x)) for y in rows for x in cols]


def split_by_source(
    names: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[str]]:
    """Assigns whole source images to train/validation/test, so no image leaks across splits.

    With three or more images every split gets at least one; fractions decide the rest.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1:
        raise ValueError("val_fraction and test_fraction must lie in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction + test_fraction must be below 1")
    order = list(np.random.default_rng(seed).permutation(sorted(names)))
    n = len(order)
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    if n >= 3:
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_val = max(n_val, 1 if val_fraction > 0 else 0)
    n_train = n - n_test - n_val
    if n_train < 1:
        raise ValueError(f"{n} samples are too few for a train split with these fractions")
    return {
        "train": sorted(order[:n_train]),
        "validation": sorted(order[n_train : n_train + n_val]),
        "test": sorted(order[n_train + n_val :]),
    }


@dataclass(frozen=True)
class Patch:
    """One training record: image and label patch cut from a source image at `origin`."""

    source: str
    origin: tuple[int, int]
    image: np.ndarray
    label: np.ndarray
    confidence: np.ndarray


def cut_patches(
    source: str,
    image: np.ndarray,
    label: np.ndarray,
    confidence: np.ndarray,
    patch: int,
    stride: int,
) -> Iterator[Patch]:
    """Yields grid patches of an image (H,W) or (H,W,C) with its label and confidence maps."""
    if image.shape[:2] != label.shape or label.shape != confidence.shape:
        raise ValueError(
            f"{source}: image {image.shape[:2]}, labels {label.shape} and confidence "
            f"{confidence.shape} differ in size"
        )
    if min(label.shape) < patch:
        raise ValueError(f"{source}: image {label.shape} is smaller than the patch size {patch}")
    for y, x in patch_origins(label.shape, patch, stride):
        window = (slice(y, y + patch), slice(x, x + patch))
        yield Patch(source, (y, x), image[window], label[window], confidence[window])
