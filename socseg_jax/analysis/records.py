"""Per-image analysis records: one JSON (and picture) per label map, written as it is done.

``<output_dir>/images/<name>.json`` holds an image's metrics row, its problem lines, the
pixel size and the analysis settings used. A record is reused when it is newer than its
label map and was made with the same settings and pixel size, so an interrupted analysis
(or a ``segment`` run with ``analyze=True``, which records each image as it writes it)
resumes where it stopped and the final report only gathers the records.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from socseg_jax.analysis import plots, reading, report
from socseg_jax.analysis.image_metrics import AnalysisOptions, analyze_with_maps
from socseg_jax.analysis.reading import LabelFile
from socseg_jax.core.atomic import write_text_atomic
from socseg_jax.core.phases import CLASS_NAMES

log = logging.getLogger(__name__)
RECORDS_DIR = "images"
PICTURES_DIR = "pictures"


@dataclasses.dataclass(frozen=True)
class Recorder:
    """Where and how records are made: the output folder, options, pictures on/off and the
    pixel size (nm) for maps whose summary and metadata have none (0 = unknown)."""

    output_dir: Path
    options: AnalysisOptions
    pictures: bool
    fallback_pixel_size_nm: float = 0.0

    @classmethod
    def from_config(cls, config: Any) -> Recorder:
        """From job=analyze's keys (output_dir, pictures, pixel_size_nm and the options)."""
        return cls(Path(config.output_dir), AnalysisOptions.from_config(config),
                   bool(config.pictures), float(config.pixel_size_nm))

    def _name(self, item: LabelFile) -> str:
        return report.safe_name(str(Path(item.relative).with_suffix("")))

    def record_path(self, item: LabelFile) -> Path:
        return self.output_dir / RECORDS_DIR / f"{self._name(item)}.json"

    def picture_path(self, item: LabelFile) -> Path:
        return self.output_dir / PICTURES_DIR / f"{self._name(item)}.png"

    def settings(self, pixel_size_nm: float | None) -> dict[str, Any]:
        return {**dataclasses.asdict(self.options), "pictures": self.pictures,
                "pixel_size_nm": pixel_size_nm}

    def analyze(
        self, item: LabelFile, labels: np.ndarray, pixel_size_nm: float | None
    ) -> tuple[dict[str, Any], list[str]]:
        """Metrics row and problem lines of one label map; writes its picture and record."""
        metrics, maps = analyze_with_maps(labels, pixel_size_nm, self.options)
        empty = [name for name in CLASS_NAMES if metrics[f"{name}_area_pct"] == 0]
        problems = [f"{item.path}: empty phase {', '.join(empty)} (its metrics are NaN/inf)"
                    ] if empty else []
        row = {"path": str(item.path), "relative": str(item.relative), **metrics}
        if self.pictures:
            plots.image_picture(self.picture_path(item), maps, self.options.axes[0],
                                str(item.relative))
        record = {"settings": self.settings(pixel_size_nm), "row": row, "problems": problems}
        write_text_atomic(self.record_path(item), json.dumps(record, default=_plain))
        return row, problems

    def load(
        self, item: LabelFile, pixel_size_nm: float | None
    ) -> tuple[dict[str, Any], list[str]] | None:
        """The record of ``item`` if it is still valid (see the module doc), else None."""
        path = self.record_path(item)
        try:
            if path.stat().st_mtime_ns < item.path.stat().st_mtime_ns:
                return None
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if record.get("settings") != self.settings(pixel_size_nm):
            return None
        if self.pictures and not self.picture_path(item).is_file():
            return None
        return record["row"], record["problems"]

    def record_labels(self, item: LabelFile, labels: np.ndarray) -> None:
        """Records a label map already in memory (segment, as it writes ``item``), with the
        pixel size a later ``analyze_files`` reads for it, so that it reuses the record."""
        self.analyze(item, labels, reading.pixel_size_of(item, self.fallback_pixel_size_nm))

    def analyze_files(
        self, items: Sequence[LabelFile], encoding: str = "auto"
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Every file, its valid record reused; a bad file gives one line ``<path>: <problem>``
        and the batch goes on. Returns (rows of the files analysed, problem lines)."""
        rows, problems, reused = [], [], 0
        unknown_px = None
        for item in tqdm(items, desc="analyze", unit="map", dynamic_ncols=True):
            try:
                px = reading.pixel_size_of(item, self.fallback_pixel_size_nm)
                done = self.load(item, px)
                if done is None:
                    done = self.analyze(item, reading.read_labels(item, encoding), px)
                else:
                    reused += 1
            except Exception as err:  # noqa: BLE001 - one line per file, the batch goes on
                line = f"{item.path}: {' '.join(str(err).split()) or type(err).__name__}"
                log.warning("%s", line)
                problems.append(line)
                continue
            unknown_px = unknown_px or (item.path if px is None else None)
            rows.append(item.with_model_uncertainty(done[0]))
            problems += done[1]
            for line in done[1]:
                log.warning("%s", line)
        if unknown_px is not None:
            log.warning("no pixel size (summary, TIFF metadata or config.pixel_size_nm): "
                        "results in px, first at %s", unknown_px)
        if reused:
            log.info("%d of %d maps: analysed before (records in %s)", reused, len(items),
                     self.output_dir / RECORDS_DIR)
        return rows, problems

    def thumbnail(self, item: LabelFile) -> bytes | None:
        """PNG bytes of the picture of ``item`` (None when pictures are off or it is gone)."""
        path = self.picture_path(item)
        return path.read_bytes() if self.pictures and path.is_file() else None


def _plain(value: Any) -> Any:
    """NumPy scalars as Python numbers for json (inf / nan stay numbers: json reads them)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
