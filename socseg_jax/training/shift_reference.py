"""The shift reference of a training run: the features (``inference.shift``) of its own
training and validation images, predicted by the trained model, stored beside the checkpoints
so that `segment` can tell which archive images are unlike them, with the class calibration
fitted on them (``inference.class_bias``), the class grey levels
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
from socseg_jax.inference import class_bias
from socseg_jax.inference.composition import build_composition
from socseg_jax.inference.levels import class_levels, reference_levels
from socseg_jax.inference.loading import predictor_from_config
from socseg_jax.inference.model_apply import make_model_apply_fn
from socseg_jax.inference.predictor import SlidingWindowPredictor
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
    workdir: Path, dataset_dir: str, limit: int, predict: ConfigDict, seed: int = 0
) -> None:
    """Predicts up to ``limit`` training images with the run's latest checkpoint, with the
    run's ``predict`` settings (the train config's ``predict``, as segment will use them; a
    TTA changes the uncertainty features), and stores their features' mean and spread, class
    grey levels in ``<workdir>/shift_reference.json``; when every image has its label map,
    also their composition and the class calibration's offsets, fitted on them first
    (``inference.class_bias``; ``seed`` draws its pixel sample)."""
    images = reference_images(dataset_dir, limit)
    if not images:
        log.info("no prepared full-size images beside %s: no shift reference", dataset_dir)
        return
    model, _, _ = checkpoints.load_model(workdir)
    predictor = predictor_from_config(make_model_apply_fn(model), predict)
    labels = [_label_map(path) for path in images]
    bias = _fit_class_bias(predictor, images, labels, seed)
    predictor.class_bias = bias  # the reference describes the calibrated model
    rows, levels, fractions = [], [], []
    for path, label in zip(images, labels, strict=True):
        image = to_model_input(tifffile.imread(path))
        maps = predictor.predict_maps(image, ("labels", "entropy", "max_prob"))
        rows.append(image_features(image, maps["entropy"], maps["max_prob"]))
        levels.append(class_levels(image, maps["labels"], maps["max_prob"]))
        fractions.append(_model_and_label_fractions(label, maps["labels"]))
    reference = build_reference(rows, tta=predict.tta)
    reference["class_levels"] = reference_levels(levels)  # for inference.levels
    if all(f is not None for f in fractions):  # for inference.composition
        reference["composition"] = build_composition(*zip(*fractions, strict=True))
    if bias is not None:  # for inference.class_bias
        reference["class_bias"] = [round(float(b), 4) for b in bias]
    write_reference(workdir, reference)
    log.info("shift reference from %d training images → %s", len(rows), workdir)


def _fit_class_bias(
    predictor: SlidingWindowPredictor, images: list[Path],
    labels: list[np.ndarray | None], seed: int,
) -> np.ndarray | None:
    """The class calibration's offsets (``inference.class_bias``) fitted on a pixel sample of
    the reference images (their centred ``fit_window``), predicted uncalibrated, against
    their ``labels``; None when any image lacks its label map (as for the composition)."""
    if any(found is None for found in labels):
        return None
    rng = np.random.default_rng(seed)
    log_proba, targets = [], []
    for path, label in zip(images, labels, strict=True):
        image = to_model_input(tifffile.imread(path))
        if image.shape[:2] != label.shape:
            return None
        window = class_bias.fit_window(label.shape)
        proba = predictor.predict_proba(image[window])
        sample = class_bias.sample_pixels(proba, label[window], rng)
        log_proba.append(sample[0])
        targets.append(sample[1])
    if not sum(len(t) for t in targets):
        return None
    bias = class_bias.fit_class_bias(np.concatenate(log_proba), np.concatenate(targets))
    log.info("class calibration offsets %s (fitted on %d labelled images)",
             np.round(bias, 3).tolist(), len(images))
    return bias


def _label_map(image_path: Path) -> np.ndarray | None:
    """The label map beside a prepared image (255 = not sample), None when there is none."""
    found = dataset_layout.label_path(image_path.parents[1], image_path.stem)
    return tifffile.imread(found) if found.is_file() else None


def _model_and_label_fractions(
    labels: np.ndarray | None, predicted: np.ndarray
) -> tuple[list[float], list[float]] | None:
    """(model, label) phase fractions (percent) of a prepared image on its labelled pixels
    (255 = not sample left out); None without its label map."""
    if labels is None:
        return None
    sample = labels < NUM_CLASSES
    if labels.shape != predicted.shape or not sample.any():
        return None
    return label_fractions(predicted[sample]), label_fractions(labels[sample])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
