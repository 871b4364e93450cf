"""Grain input pipeline over the prepared TFDS array_record shards.

Global batch `k` holds records [k·B, (k+1)·B) of a seeded, per-epoch shuffled, repeated
random-access dataset, so it is a pure function of (seed, k) whatever the number of hosts:
process `p` of `P` reads only its slice [k·B + p·B/P, k·B + (p+1)·B/P). Augmentation (D4
flips/rotations, and optionally acquisition changes: training/acquisition.py) runs on the host
with Grain's per-record seeded generators; images stay
uint8 until they reach the device. The iterator state (`get_state`) is the step.
"""

import os
from collections.abc import Iterator
from typing import Any

import grain
import numpy as np
from ml_collections import ConfigDict

from data_prep.tfds_builder import open_split
from socseg_jax.core.d4 import apply_d4, random_d4
from socseg_jax.core.errors import UserError
from socseg_jax.training.acquisition import AcquisitionAugment

Batch = dict[str, np.ndarray]


def select_arrays(record: dict[str, Any]) -> dict[str, np.ndarray]:
    """Keeps the arrays the model needs: image (P,P,C) and label (P,P) uint8."""
    return {"image": np.asarray(record["image"]), "label": np.asarray(record["label"])}


def augment_d4(record: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random element of the dihedral group D4 (rot90 × flip), applied to image and label."""
    k, flip = random_d4(rng)
    return {key: apply_d4(record[key], k, flip) for key in ("image", "label")}


def read_options(num_threads: int | None = None) -> grain.ReadOptions:
    """Grain read threads: one per CPU core by default, capped at 16."""
    threads = num_threads or min(16, os.cpu_count() or 1)
    return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=4 * threads)


def local_batch_size(batch_size: int, process_count: int) -> int:
    """This process's share of the global batch."""
    if batch_size % process_count:
        raise UserError(
            f"batch_size={batch_size} must be a multiple of the process count ({process_count})"
        )
    return batch_size // process_count


def train_batches(
    dataset_dir: str,
    batch_size: int,
    num_steps: int,
    seed: int,
    augment: bool = True,
    acquisition: ConfigDict | None = None,
    split: str = "train",
    process_index: int = 0,
    process_count: int = 1,
    num_threads: int | None = None,
) -> grain.DatasetIterator:
    """An iterator over this process's slices of global batches 0 .. num_steps-1.

    ``augment``: D4 flips/rotations; ``acquisition``: config.acquisition, the acquisition
    augmentation (``training.acquisition``) when its ``enabled`` is set. Resume with
    `iterator.set_state({'next_index': step})` (or the saved state).
    """
    source = open_split(dataset_dir, split)
    if len(source) == 0:
        raise UserError(f"split '{split}' of {dataset_dir} has no records")
    local = local_batch_size(batch_size, process_count)
    # Shuffle before repeat: every epoch gets its own order, independent of num_steps.
    ds = grain.MapDataset.source(source).seed(seed).shuffle().repeat().map(select_arrays)
    if augment:
        ds = ds.random_map(augment_d4)
    if acquisition is not None and acquisition.enabled:
        ds = ds.random_map(AcquisitionAugment(acquisition))
    ds = ds.batch(local, drop_remainder=True)
    ds = ds[process_index : num_steps * process_count : process_count]
    return iter(ds.to_iter_dataset(read_options(num_threads)))


def eval_batches(
    dataset_dir: str,
    split: str,
    batch_size: int,
    process_index: int = 0,
    process_count: int = 1,
    num_threads: int | None = None,
) -> Iterator[Batch]:
    """Every record of a split once, as this process's slices of padded global batches.

    Padding records carry `mask == False`; every process yields the same number of batches.
    """
    source = open_split(dataset_dir, split)
    n = len(source)
    local = local_batch_size(batch_size, process_count)
    num_batches = -(-n // batch_size)
    order = np.arange(num_batches * batch_size).reshape(num_batches, process_count, local)
    indices = order[:, process_index, :].ravel().tolist()
    template = select_arrays(source[0]) if n else None

    def fetch(index: int) -> dict[str, np.ndarray]:
        if index < n:
            return select_arrays(source[index]) | {"mask": np.bool_(True)}
        return {k: np.zeros_like(v) for k, v in template.items()} | {"mask": np.bool_(False)}

    ds = grain.MapDataset.source(indices).map(fetch).batch(local)
    yield from ds.to_iter_dataset(read_options(num_threads))
