"""The dihedral group D4 of a square patch (4 rotations × optional flip), drawn and applied
the same way by the offline augmentation in prepare and the on-the-fly one in training."""

from __future__ import annotations

import numpy as np


def random_d4(rng: np.random.Generator) -> tuple[int, bool]:
    """A random element of D4 as (quarter turns, flip columns); draws two integers from rng."""
    return int(rng.integers(4)), bool(rng.integers(2))


def apply_d4(array: np.ndarray, quarter_turns: int, flip: bool) -> np.ndarray:
    """Rotate the first two axes by quarter turns, then flip columns; a contiguous copy."""
    rotated = np.rot90(array, quarter_turns, axes=(0, 1))
    return np.ascontiguousarray(rotated[:, ::-1] if flip else rotated)
