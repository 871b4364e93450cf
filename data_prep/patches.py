"""Cutting full-size images into training patches and splitting samples by source image."""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from socseg_jax.core.d4 import apply_d4, random_d4
from socseg_jax.core.errors import UserError

SPLITS = ("train", "validation", "test")
SAMPLERS = ("grid", "random")  # prepare.sampler: a regular grid or the study's random windows


def tile_starts(length: int, patch: int, stride: int) -> np.ndarray:
    """Window starts 0, stride, 2·stride, ... along one axis, the last ending at the border.

    A `length` shorter than `patch` is treated as padded to `patch` (one window at 0). The
    final step may be shorter than `stride`, so that the last window ends exactly at
    max(length, patch): every position is covered and no window reaches past the border.
    """
    if patch < 1 or stride < 1:
        raise UserError(f"patch and stride must be >= 1, got patch={patch}, stride={stride}")
    if length < 1:
        raise UserError(f"length must be >= 1, got {length}")
    last = max(length, patch) - patch
    count = -(-last // stride) + 1
    return np.minimum(np.arange(count, dtype=np.int64) * stride, last)


def centred_window(shape: tuple[int, ...], side: int) -> tuple[slice, slice]:
    """Slices of the centred window, at most ``side`` px a side, of an image of ``shape``
    (H, W, ...): where a fit that needs only part of a large image looks."""
    return tuple(slice(max(0, (n - side) // 2), max(0, (n - side) // 2) + min(n, side))
                 for n in shape[:2])


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
        raise UserError("val_fraction and test_fraction must lie in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise UserError("val_fraction + test_fraction must be below 1")
    order = list(np.random.default_rng(seed).permutation(sorted(names)))
    n = len(order)
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    if n >= 3:
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_val = max(n_val, 1 if val_fraction > 0 else 0)
    n_train = n - n_test - n_val
    if n_train < 1:
        raise UserError(f"{n} samples are too few for a train split with these fractions")
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
    origins: Sequence[tuple[int, int]] | None = None,
) -> Iterator[Patch]:
    """Yields patches of an image (H,W) or (H,W,C) with its label and confidence maps.

    At `origins` when given (e.g. from `sample_origins`), else on the regular grid.
    """
    if image.shape[:2] != label.shape or label.shape != confidence.shape:
        raise UserError(
            f"{source}: image {image.shape[:2]}, labels {label.shape} and confidence "
            f"{confidence.shape} differ in size"
        )
    if min(label.shape) < patch:
        raise UserError(f"{source}: image {label.shape} is smaller than the patch size {patch}")
    for y, x in origins if origins is not None else patch_origins(label.shape, patch, stride):
        window = (slice(y, y + patch), slice(x, x + patch))
        yield Patch(source, (y, x), image[window], label[window], confidence[window])


def random_patch_origins(
    shape: tuple[int, int],
    patch: int,
    count: int,
    max_iou: float,
    rng: np.random.Generator,
    max_tries: int = 50,
) -> list[tuple[int, int]]:
    """Up to `count` random patch corners whose pairwise IoU stays ≤ `max_iou`.

    The study's sampler: random windows, rejecting a candidate that overlaps an accepted one by
    more than the IoU cap, so patches are diverse without a rigid grid. Deterministic in `rng`.
    """
    if min(shape) < patch:
        raise UserError(f"image {shape} is smaller than the patch size {patch}")
    accepted: list[tuple[int, int]] = []
    area = float(patch * patch)
    for _ in range(count * max_tries):
        if len(accepted) >= count:
            break
        y = int(rng.integers(0, shape[0] - patch + 1))
        x = int(rng.integers(0, shape[1] - patch + 1))
        ok = True
        for ay, ax in accepted:
            inter = max(0, patch - abs(ay - y)) * max(0, patch - abs(ax - x))
            if inter / (2 * area - inter) > max_iou:
                ok = False
                break
        if ok:
            accepted.append((y, x))
    return sorted(accepted)


def sample_origins(
    shape: tuple[int, int], patch: int, settings: Mapping, source: str, seed: int
) -> list[tuple[int, int]]:
    """Patch corners for one image by the configured sampler (`grid` or `random`).

    `random` draws `patches_per_image` (default: as many as the grid) with the IoU cap
    `max_patch_iou` (default 0.25), seeded by (seed, source) so each image is reproducible.
    """
    sampler = settings.get("sampler", "grid")
    stride = int(settings.get("stride", patch))
    if sampler == "grid":
        return patch_origins(shape, patch, stride)
    if sampler not in SAMPLERS:
        raise UserError(f"sampler must be one of {SAMPLERS}, not {sampler!r}")
    count = int(settings.get("patches_per_image") or len(patch_origins(shape, patch, stride)))
    key = [seed] + [ord(c) for c in source]
    rng = np.random.default_rng(np.random.SeedSequence(key))
    return random_patch_origins(
        shape, patch, count, float(settings.get("max_patch_iou", 0.25)), rng
    )


def augment_patch(
    image: np.ndarray, label: np.ndarray, confidence: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One offline augmentation: a D4 flip/rotation of all maps, then on the image only
    brightness/contrast, Gaussian blur and noise (the study's augmentation to 10,920 samples).

    `image` is uint8 or uint16 (H, W, C); the result keeps its dtype.
    """
    from scipy import ndimage as ndi

    k, flip = random_d4(rng)

    def d4(a: np.ndarray) -> np.ndarray:
        return apply_d4(a, k, flip)

    top = float(np.iinfo(image.dtype).max)
    img = d4(image).astype(np.float32) / top
    img = (img - 0.5) * rng.uniform(0.85, 1.15) + 0.5 + rng.uniform(-0.08, 0.08)
    if rng.random() < 0.3:
        img = ndi.gaussian_filter(img, (rng.uniform(0.3, 1.0),) * 2 + (0,) * (img.ndim - 2))
    if rng.random() < 0.5:
        img = img + rng.normal(0.0, rng.uniform(0.005, 0.03), img.shape)
    out = np.clip(np.rint(img * top), 0, top).astype(image.dtype)
    return out, d4(label), d4(confidence)
