"""The shift reference of a training run: the features (``inference.shift``) of its own
training and validation images, predicted by the trained model, stored beside the checkpoints
so that `segment` can tell which archive images are unlike them, with the class grey levels
that its grey-level calibration (``inference.levels``) aligns images to, and their phase
composition: its range and the model's fraction errors against the labels
(``inference.composition``: the composition check and the floor of the fraction interval)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tifffile
from ml_collections import ConfigDict

from data_prep.tfds_builder import dataset_metadata, open_split, resolve_dataset_dir
from socseg_jax.core import dataset_layout
from socseg_jax.core.intensity import to_model_input
from socseg_jax.core.phases import NUM_CLASSES, label_fractions
from socseg_jax.inference.composition import build_composition
from socseg_jax.inference.levels import class_levels, reference_levels
from socseg_jax.inference.loading import predictor_from_config
from socseg_jax.inference.model_apply import make_model_apply_fn
from socseg_jax.inference.shift import build_reference, image_features, write_reference
from socseg_jax.training import checkpoints

log = logging.getLogger(__name__)


def reference_images(dataset_dir: str, limit: int) -> list[Path]:
    """Full-size prepared images of the train and validation splits (at most ``limit``)."""
    version_dir = resolve_dataset_dir(dataset_dir)
    root = version_dir.parents[1]  # <output_dir>/socseg_patches/<config>/<version>
    samples = dataset_metadata(version_dir).get("settings", {}).get("samples")
    names: list[str] = []
    for split in ("validation", "train"):
        if samples is not None:
            found = samples.get(split, [])
        else:  # datasets written without the split lists: the records name their source
            found = sorted({_text(r["source"]) for r in open_split(version_dir, split)})
        names += [n for n in found if n not in names]
    paths = [dataset_layout.image_path(root.parent, n) for n in names]
    return [p for p in paths if p.is_file()][:limit]


def write_shift_reference(
    workdir: Path, dataset_dir: str, limit: int, predict: ConfigDict
) -> None:
    """Predicts up to ``limit`` training images with the run's latest checkpoint, with the
    run's ``predict`` settings (the train config's ``predict``, as segment will use them; a
    TTA changes the uncertainty features), and stores their features' mean and spread, class
    grey levels and composition (when every image has its label map) in
    ``<workdir>/shift_reference.json``."""
    images = reference_images(dataset_dir, limit)
    if not images:
        log.info("no prepared full-size images beside %s: no shift reference", dataset_dir)
        return
    model, _, _ = checkpoints.load_model(workdir)
    predictor = predictor_from_config(make_model_apply_fn(model), predict)
    rows, levels, fractions = [], [], []
    for path in images:
        image = to_model_input(tifffile.imread(path))
        maps = predictor.predict_maps(image, ("labels", "entropy", "max_prob"))
        rows.append(image_features(image, maps["entropy"], maps["max_prob"]))
        levels.append(class_levels(image, maps["labels"], maps["max_prob"]))
        fractions.append(_model_and_label_fractions(path, maps["labels"]))
    reference = build_reference(rows, tta=predict.tta)
    reference["class_levels"] = reference_levels(levels)  # for inference.levels
    if all(f is not None for f in fractions):  # for inference.composition
        reference["composition"] = build_composition(*zip(*fractions, strict=True))
    write_reference(workdir, reference)
    log.info("shift reference from %d training images → %s", len(rows), workdir)


def _model_and_label_fractions(
    image_path: Path, predicted: np.ndarray
) -> tuple[list[float], list[float]] | None:
    """(model, label) phase fractions (percent) of a prepared image on its labelled pixels
    (255 = not sample left out); None without its label map."""
    found = dataset_layout.label_path(image_path.parents[1], image_path.stem)
    if not found.is_file():
        return None
    labels = tifffile.imread(found)
    sample = labels < NUM_CLASSES
    if labels.shape != predicted.shape or not sample.any():
        return None
    return label_fractions(predicted[sample]), label_fractions(labels[sample])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
