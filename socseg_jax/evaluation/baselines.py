"""The global-threshold baseline a microscopist would try first: multi-Otsu on grey levels."""

from collections.abc import Sequence

import numpy as np
from skimage.filters import threshold_multiotsu


def class_grey_order(images: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> list[int]:
    """Class ids sorted by their mean grey level in labelled images (darkest first)."""
    num_classes = int(max(int(lab.max()) for lab in labels)) + 1
    sums = np.zeros(num_classes)
    counts = np.zeros(num_classes)
    for image, label in zip(images, labels, strict=True):
        sums += np.bincount(label.ravel(), weights=image.ravel(), minlength=num_classes)
        counts += np.bincount(label.ravel(), minlength=num_classes)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    return [int(c) for c in np.argsort(means)]


def multi_otsu_labels(image: np.ndarray, class_order: Sequence[int]) -> np.ndarray:
    """Thresholds `image` into len(class_order) grey bands, darkest band → class_order[0]."""
    thresholds = threshold_multiotsu(image, classes=len(class_order))
    bands = np.digitize(image, bins=thresholds)
    return np.asarray(class_order, np.uint8)[bands]
