"""An archive of SEM images to segment: discovery (folder, glob, list file), output paths and
sharding over hosts.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from socseg_jax.core.errors import MissingInputError, UserError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class ImageJob:
    """One input image and where its outputs go (relative folder kept from the input)."""

    path: Path
    relative: Path

    def outputs(self, output_dir: Path) -> tuple[Path, Path]:
        """(label TIFF, overlay PNG) paths for this image."""
        paths = self.paths(output_dir)
        return paths["labels"], paths["overlay"]

    def paths(self, output_dir: Path) -> dict[str, Path]:
        """Every output of this image: labels, overlay, proba, entropy, max_prob, and its
        summary row (record)."""
        base = Path(output_dir) / self.relative.parent / self.relative.stem
        suffixes = {
            "labels": "_labels.tif",
            "overlay": "_overlay.png",
            "proba": "_proba.tif",
            "entropy": "_entropy.tif",
            "max_prob": "_maxprob.tif",
            "record": "_summary.json",
        }
        return {kind: base.with_name(base.name + end) for kind, end in suffixes.items()}


def discover_images(source: str | Sequence[str]) -> list[ImageJob]:
    """Images from a folder (recursive), a glob pattern, a list file (.txt) or a list of paths.

    Suffixes are matched case-insensitively; hidden files are left out. Relative output paths
    keep the folder structure below the input folder (or the glob's fixed prefix).
    """
    if not isinstance(source, str):
        return [ImageJob(Path(p), Path(Path(p).name)) for p in source]
    path = Path(source)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and _is_image(p))
        return [ImageJob(p, p.relative_to(path)) for p in found]
    if path.is_file() and path.suffix.lower() == ".txt":
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        return [ImageJob(Path(ln), Path(Path(ln).name)) for ln in lines if ln]
    if path.is_file():
        return [ImageJob(path, Path(path.name))]
    matches = sorted(Path(p) for p in glob.glob(source, recursive=True))
    if matches:
        root = Path(_glob_root(source))
        jobs = []
        for p in matches:
            if p.is_file():
                rel = p.relative_to(root) if p.is_relative_to(root) else Path(p.name)
                jobs.append(ImageJob(p, rel))
        return jobs
    raise MissingInputError(f"input {source} is not a folder, image, list file or matching glob")


def _glob_root(pattern: str) -> str:
    """The longest leading folder of a glob pattern without wildcards."""
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next((i for i, p in enumerate(parts) if glob.has_magic(p)),
                                      len(parts))]]
    return str(Path(*fixed)) if fixed else "."


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def shard_jobs(jobs: Sequence[ImageJob], shard_index: int, num_shards: int) -> list[ImageJob]:
    """Every ``num_shards``-th job starting at ``shard_index``, to split an archive over hosts."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise UserError(f"need 0 <= shard_index < num_shards, got {shard_index}, {num_shards}")
    return list(jobs[shard_index::num_shards])
