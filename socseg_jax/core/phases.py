"""The phase classes of Ni/YSZ electrodes: ids, names, colours, the study's grey encoding.

Class ids are fixed across the project: 0 pore, 1 NiO, 2 Ni, 3 YSZ.
"""

from __future__ import annotations

import numpy as np

from socseg_jax.core.errors import UserError

PORE, NIO, NI, YSZ = 0, 1, 2, 3
CLASS_NAMES: tuple[str, ...] = ("pore", "NiO", "Ni", "YSZ")
NUM_CLASSES: int = len(CLASS_NAMES)


# Distinguishable colours (colour-blind friendly-ish): black-blue pore, orange NiO,
# green Ni, light blue-violet YSZ.
CLASS_COLORS: np.ndarray = np.array(
    [
        [30, 30, 110],  # pore: dark blue
        [230, 120, 20],  # NiO: orange
        [40, 180, 60],  # Ni: green
        [200, 200, 230],  # YSZ: pale lavender
    ],
    dtype=np.uint8,
)


# The study's grey encoding of label images (class id -> grey value).
STUDY_GREY: tuple[int, ...] = (0, 85, 170, 255)


def colorize(labels: np.ndarray) -> np.ndarray:
    """Map class ids (H, W) to RGB colours (H, W, 3) uint8; ids outside 0..3 become black."""
    labels = np.asarray(labels)
    out = np.zeros(labels.shape + (3,), dtype=np.uint8)
    valid = (labels >= 0) & (labels < NUM_CLASSES)
    out[valid] = CLASS_COLORS[labels[valid].astype(np.intp)]
    return out


def encode_labels(labels: np.ndarray, encoding: str) -> np.ndarray:
    """Class ids as written to disk: 'ids' (0..3) or the study's 'grey' (0, 85, 170, 255)."""
    if encoding == "ids":
        return labels.astype(np.uint8)
    if encoding == "grey":
        return np.asarray(STUDY_GREY, np.uint8)[labels]
    raise UserError(f"label_encoding must be 'ids' or 'grey', got {encoding!r}")


def label_fractions(labels: np.ndarray) -> list[float]:
    """Area fraction of each phase in percent."""
    counts = np.bincount(labels.ravel(), minlength=NUM_CLASSES)[: NUM_CLASSES]
    return (100.0 * counts / max(labels.size, 1)).tolist()
