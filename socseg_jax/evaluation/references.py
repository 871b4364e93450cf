"""Scoring label maps against reference maps (true phases or EDS labels), image by image."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.readers.label_maps import labels_from_values, read_label_values
from socseg_jax.core.errors import MissingInputError, UserError
from socseg_jax.core.phases import NUM_CLASSES
from socseg_jax.core.scores import confusion_matrix, segmentation_scores


def read_label_map(path: str | Path) -> np.ndarray:
    """A reference label image as class ids: ids 0..3, the study's grey 0/85/170/255 or
    ilastik's 1..4 (labels_from_values decides; unknown values name the file)."""
    return labels_from_values(read_label_values(path), str(path))


def score_pairs(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], num_classes: int = NUM_CLASSES
) -> dict[str, Any]:
    """Pooled scores over (truth, prediction) pairs: one confusion matrix for all pixels."""
    total = np.zeros((num_classes, num_classes), np.int64)
    for truth, pred in pairs:
        if truth.shape != pred.shape:
            raise UserError(f"truth {truth.shape} and prediction {pred.shape} differ in size")
        total += confusion_matrix(truth, pred, num_classes)
    return segmentation_scores(total)


def find_truth(truth_dir: Path, image_path: Path) -> Path:
    """The reference label map for an image: `<stem>_labels.*`, `<stem>.*` in truth_dir."""
    for pattern in (f"{image_path.stem}_labels.*", f"{image_path.stem}.*"):
        found = sorted(truth_dir.glob(pattern))
        if found:
            return found[0]
    raise MissingInputError(f"no reference labels for {image_path.name} in {truth_dir}")
