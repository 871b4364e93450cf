"""Where `prepare` writes each file of a prepared dataset (one home for the layout).

``<output_dir>/images/<sample>.tif`` (normalised SEM), ``labels/<sample>_labels.tif`` (uint8
class ids, docs/design.md), ``labels/<sample>_confidence.tif``, ``qa/`` pictures with the
registered EDS maps, and the reports.
"""

from __future__ import annotations

import os
from pathlib import Path

REPORT_JSON = "prepare_report.json"
REPORT_HTML = "prepare_report.html"


def image_path(output_dir: str | os.PathLike, sample: str) -> Path:
    """The normalised SEM image of a prepared sample."""
    return Path(output_dir) / "images" / f"{sample}.tif"


def label_path(output_dir: str | os.PathLike, sample: str) -> Path:
    """The full-size label map (uint8 class ids) of a prepared sample."""
    return Path(output_dir) / "labels" / f"{sample}_labels.tif"


def confidence_path(output_dir: str | os.PathLike, sample: str) -> Path:
    """The per-pixel label confidence (uint8, 0-255) of a prepared sample."""
    return Path(output_dir) / "labels" / f"{sample}_confidence.tif"


def eds_maps_path(output_dir: str | os.PathLike, sample: str) -> Path:
    """The EDS element maps registered onto the SEM grid (uint8 planes, element names and
    count scales in the TIFF's JSON description), written for review beside the QA pictures."""
    return Path(output_dir) / "qa" / f"{sample}_eds.tif"


def qa_path(output_dir: str | os.PathLike, sample: str, kind: str) -> Path:
    """A QA picture of a sample: kind is 'overlay', 'confidence' or 'registration'."""
    return Path(output_dir) / "qa" / f"{sample}_{kind}.png"
