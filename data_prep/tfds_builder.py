"""TFDS builder writing prepared patches as array_record shards (no TensorFlow needed).

Each preparation config gets its own TFDS builder config, named by a hash of the settings,
so re-running with the same settings is a no-op and changed settings never mix records.
Read back with `open_split`, a `tfds` data source over the array_record files.
"""

import hashlib
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from data_prep.patches import Patch, augment_patch, cut_patches, sample_origins
from socseg_jax.core.errors import MissingInputError, UserError

DATASET_NAME = "socseg_patches"


@dataclass(frozen=True)
class PreparedSample:
    """Paths of one prepared source image: normalised SEM, label map and confidence map."""

    name: str
    image_path: Path
    label_path: Path
    confidence_path: Path


def config_name(settings: Mapping[str, Any]) -> str:
    """A short, stable name for a preparation config: same settings → same dataset."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    return f"p{settings['patch_size']}_{digest.hexdigest()[:10]}"


class SocsegPatches(tfds.core.GeneratorBasedBuilder):
    """SEM patches with EDS-guided labels, split by source image."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Image, label, confidence, source id and origin per patch.",
        "1.1.0": "Configurable image dtype, random sampler, offline augmentation (`aug` id).",
    }

    def __init__(
        self,
        *,
        settings: Mapping[str, Any],
        splits: Mapping[str, Sequence[PreparedSample]],
        metadata: Mapping[str, Any],
        **kwargs: Any,
    ) -> None:
        self._settings = dict(settings)
        self._splits = {k: list(v) for k, v in splits.items() if v}
        self._metadata = dict(metadata)
        config = tfds.core.BuilderConfig(name=config_name(self._settings))
        super().__init__(config=config, file_format="array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        patch = int(self._settings["patch_size"])
        channels = int(self._settings.get("channels", 1))
        dtype = np.dtype(self._settings.get("image_dtype", "uint8"))
        features = tfds.features.FeaturesDict(
            {
                "image": tfds.features.Tensor(shape=(patch, patch, channels), dtype=dtype),
                "label": tfds.features.Tensor(shape=(patch, patch), dtype=np.uint8),
                "confidence": tfds.features.Tensor(shape=(patch, patch), dtype=np.uint8),
                "source": tfds.features.Tensor(shape=(), dtype=np.str_),
                "origin": tfds.features.Tensor(shape=(2,), dtype=np.int32),
                "aug": tfds.features.Tensor(shape=(), dtype=np.int32),
            }
        )
        metadata = tfds.core.MetadataDict(settings=self._settings, **self._metadata)
        return tfds.core.DatasetInfo(builder=self, features=features, metadata=metadata)

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator]:
        target = int(self._settings.get("augment_to", 0) or 0)
        return {
            split: self._generate_examples(samples, target if split == "train" else 0)
            for split, samples in self._splits.items()
        }

    def _patches(self, sample: PreparedSample) -> Iterator[Patch]:
        import tifffile

        patch = int(self._settings["patch_size"])
        image = tifffile.imread(sample.image_path)
        if image.ndim == 2:
            image = image[..., None]
        label = tifffile.imread(sample.label_path)
        confidence = tifffile.imread(sample.confidence_path)
        seed = int(self._settings.get("seed", 0))
        origins = sample_origins(label.shape, patch, self._settings, sample.name, seed)
        yield from cut_patches(
            sample.name, image, label, confidence, patch, int(self._settings["stride"]), origins
        )

    def _generate_examples(self, samples: Sequence[PreparedSample], augment_to: int) -> Iterator:
        """Original patches, then (train, `augment_to` > 0) augmented copies up to that count."""
        dtype = np.dtype(self._settings.get("image_dtype", "uint8"))
        count = 0
        for sample in samples:
            for p in self._patches(sample):
                count += 1
                yield _record(p, p.image, p.label, p.confidence, 0, dtype)
        originals, round_ = count, 0
        seed = int(self._settings.get("seed", 0))
        while originals and count < augment_to:
            round_ += 1
            for sample in samples:
                for p in self._patches(sample):
                    if count >= augment_to:
                        return
                    key = [seed, round_, p.origin[0], p.origin[1]] + [ord(c) for c in p.source]
                    rng = np.random.default_rng(np.random.SeedSequence(key))
                    image, label, conf = augment_patch(p.image, p.label, p.confidence, rng)
                    count += 1
                    yield _record(p, image, label, conf, round_, dtype)


def _record(
    p: Patch, image: np.ndarray, label: np.ndarray, conf: np.ndarray, aug: int, dtype: np.dtype
) -> tuple[str, dict[str, Any]]:
    key = f"{p.source}_{p.origin[0]:05d}_{p.origin[1]:05d}_{aug:03d}"
    return key, {
        "image": image.astype(dtype),
        "label": label.astype(np.uint8),
        "confidence": conf.astype(np.uint8),
        "source": p.source,
        "origin": np.asarray(p.origin, np.int32),
        "aug": np.int32(aug),
    }


def build_dataset(
    data_dir: Path,
    settings: Mapping[str, Any],
    splits: Mapping[str, Sequence[PreparedSample]],
    metadata: Mapping[str, Any],
) -> Path:
    """Writes (or reuses) the shards for these settings; returns the dataset version folder."""
    builder = SocsegPatches(
        settings=settings, splits=splits, metadata=metadata, data_dir=str(data_dir)
    )
    builder.download_and_prepare()
    return Path(builder.data_dir)


def remove_incomplete(data_dir: Path) -> int:
    """Deletes the ``incomplete.*`` folders and files a killed TFDS build left under
    ``data_dir`` (call it only while no build runs there); returns how many."""
    root = Path(data_dir) / DATASET_NAME
    found = list(root.rglob(f"{tfds.core.constants.INCOMPLETE_PREFIX}*")) if root.is_dir() else []
    for path in found:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(found)


def resolve_dataset_dir(path: str | Path) -> Path:
    """Finds the TFDS version folder from a prepare output_dir or the folder itself."""
    path = Path(path)
    if not path.exists():
        raise MissingInputError(f"dataset_dir {path} does not exist (run job=prepare first)")
    if (path / "dataset_info.json").exists():
        return path
    report = path / "prepare_report.json"
    if report.exists():
        return Path(json.loads(report.read_text())["dataset_path"])
    found = sorted(path.glob(f"{DATASET_NAME}/*/*/dataset_info.json"))
    if len(found) == 1:
        return found[0].parent
    raise MissingInputError(
        f"no prepared dataset found in {path}: expected a prepare output_dir "
        "(with prepare_report.json) or a TFDS version folder (with dataset_info.json)"
    )


def open_split(dataset_dir: str | Path, split: str) -> Any:
    """Random-access data source (array_record) for one split of a prepared dataset."""
    builder = tfds.builder_from_directory(str(resolve_dataset_dir(dataset_dir)))
    if split not in builder.info.splits:
        raise UserError(
            f"split '{split}' not in {builder.data_dir} (has {sorted(builder.info.splits)})"
        )
    return builder.as_data_source(split=split)


def dataset_metadata(dataset_dir: str | Path) -> dict[str, Any]:
    """The metadata stored with the shards: preparation settings, class frequencies, ..."""
    builder = tfds.builder_from_directory(str(resolve_dataset_dir(dataset_dir)))
    return dict(builder.info.metadata or {})
