"""Grain input pipeline over the prepared TFDS array_record shards.

Training batches are drawn from a shuffled, repeated random-access dataset, so batch `k`
is a pure function of (seed, k): a resumed run continues with exactly the batches it
would have seen. Augmentation (D4 flips/rotations) runs on the host with Grain's
per-record seeded generators; images stay uint8 until they reach the device.
"""

import os
from collections.abc import Iterator
from typing import Any

import grain
import numpy as np

from data_prep.tfds_builder import open_split

Batch = dict[str, np.ndarray]


def select_arrays(record: dict[str, Any]) -> dict[str, np.ndarray]:
    """Keeps the arrays the model needs: image (P,P,C) uint8 and label (P,P) uint8."""
    return {"image": np.asarray(record["image"]), "label": np.asarray(record["label"])}


def augment_d4(record: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random element of the dihedral group D4 (rot90 × flip), applied to image and label."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    image, label = np.rot90(record["image"], k), np.rot90(record["label"], k)
    if flip:
        image, label = image[:, ::-1], label[:, ::-1]
    return {"image": np.ascontiguousarray(image), "label": np.ascontiguousarray(label)}


def read_options(num_threads: int | None = None) -> grain.ReadOptions:
    """Grain read threads: one per CPU core by default, capped at 16."""
    threads = num_threads or min(16, os.cpu_count() or 1)
    return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=4 * threads)


def train_batches(
    dataset_dir: str,
    batch_size: int,
    num_steps: int,
    seed: int,
    start_step: int = 0,
    augment: bool = True,
    split: str = "train",
    num_threads: int | None = None,
) -> Iterator[Batch]:
    """Yields `num_steps - start_step` shuffled (augmented) batches, starting at `start_step`."""
    source = open_split(dataset_dir, split)
    if len(source) == 0:
        raise ValueError(f"split '{split}' of {dataset_dir} has no records")
    # Shuffle before repeat: every epoch gets its own order, independent of num_steps.
    ds = grain.MapDataset.source(source).seed(seed).shuffle().repeat().map(select_arrays)
    if augment:
        ds = ds.random_map(augment_d4)
    ds = ds.batch(batch_size, drop_remainder=True)[start_step:num_steps]
    return iter(ds.to_iter_dataset(read_options(num_threads)))


def eval_batches(
    dataset_dir: str, split: str, batch_size: int, num_threads: int | None = None
) -> Iterator[Batch]:
    """Every record of a split once, in order; the last batch is padded, with a `mask`."""
    source = open_split(dataset_dir, split)
    ds = grain.MapDataset.source(source).map(select_arrays).batch(batch_size)
    for batch in ds.to_iter_dataset(read_options(num_threads)):
        n = len(batch["label"])
        pad = batch_size - n
        mask = np.concatenate([np.ones(n, bool), np.zeros(pad, bool)])
        yield {
            "image": np.pad(batch["image"], [(0, pad)] + [(0, 0)] * 3),
            "label": np.pad(batch["label"], [(0, pad), (0, 0), (0, 0)]),
            "mask": mask,
        }
