"""job=analyze: label maps -> microstructure metrics, group statistics, pictures, report."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from ml_collections import ConfigDict

from socseg_jax.analysis import plots, report, series
from socseg_jax.analysis.reading import ENCODINGS, LabelFile, find_label_files
from socseg_jax.analysis.records import Recorder
from socseg_jax.analysis.summary import key_columns
from socseg_jax.core.atomic import remove_temporaries, write_text_atomic
from socseg_jax.core.errors import UserError
from socseg_jax.core.run_lock import LOCK_NAME, run_lock

log = logging.getLogger(__name__)
_PANELS = 16
_NOT_PLOTTED = ("_count", "_se_pct", "_model_unc_pct", "_deff_", "pixel_size_nm", "height_px",
                "width_px")


def _check(config: ConfigDict) -> None:
    for key in ("input", "output_dir"):
        if not config.get(key):
            raise UserError(f"config.{key} is required for job=analyze")
    if config.label_encoding not in ENCODINGS:
        raise UserError(f"config.label_encoding must be one of {ENCODINGS}")
    if not float(config.pixel_size_nm) >= 0:
        raise UserError(f"config.pixel_size_nm must be >= 0 (0 = unknown): {config.pixel_size_nm}")
    if config.groups_csv and not Path(config.groups_csv).is_file():
        raise UserError(f"config.groups_csv {config.groups_csv} is not a file")


def _plot_series(out: Path, rows: list[dict[str, Any]], groups: list[dict[str, Any]]
                 ) -> dict[str, bytes]:
    """When some image has a time: series/key_metrics.png (the key metrics vs time) and
    series/series_NN.png (every metric vs time, one panel each, 16 panels per file)."""
    if not any(math.isfinite(g["time_min"]) for g in groups):
        return {}
    key = plots.key_series_plot(out / "series" / "key_metrics.png", groups, key_columns(rows))
    figures = {"key": key} if key else {}
    metrics = [k[: -len("_mean")] for k in groups[0] if k.endswith("_mean")]
    metrics = [m for m in metrics if not any(s in m for s in _NOT_PLOTTED)
               and any(math.isfinite(g[f"{m}_mean"]) for g in groups)]
    for i in range(0, len(metrics), _PANELS):
        name = f"series_{i // _PANELS + 1:02d}"
        figures[name] = plots.series_plot(out / "series" / f"{name}.png", groups,
                                          metrics[i : i + _PANELS])
    return figures


def run(config: ConfigDict, workdir: str | None) -> dict:
    """Analyses config.input into config.output_dir; returns the counts and output paths.
    Images analysed before with the same settings (records in <output_dir>/images) are not
    analysed again. Holds the output folder's run lock (``core.run_lock``), under which a
    killed run's temporaries are removed. Raises ValueError for a bad config or when every
    file failed."""
    _check(config)
    items = find_label_files(config.input)
    with run_lock(config.output_dir, "analyze"):
        remove_temporaries(config.output_dir, skip_marker=LOCK_NAME)
        return _analyze(config, items)


def _analyze(config: ConfigDict, items: list[LabelFile]) -> dict:
    """The analysis of ``items`` into config.output_dir (locked)."""
    recorder = Recorder.from_config(config)
    log.info("analysing %d label maps from %s", len(items), config.input)
    rows, problems = recorder.analyze_files(items, config.label_encoding)
    if not rows:
        first = problems[0] if problems else ""
        raise UserError(f"every label map failed ({len(problems)}): {first}")
    done = {row["path"] for row in rows}
    thumbnails = {str(item.relative): png for item in items if str(item.path) in done
                  and (png := recorder.thumbnail(item)) is not None}
    return write_report(config, rows, problems, thumbnails)


def write_report(
    config: ConfigDict, rows: list[dict[str, Any]], problems: list[str],
    thumbnails: dict[str, bytes],
) -> dict:
    """Groups, series plots, analysis.csv / _groups.csv / .json and report.html."""
    out = Path(config.output_dir)
    notes = series.assign_groups(rows, config.groups_csv, config.group_regex)
    groups = series.group_statistics(rows)
    pictures = _plot_series(out, rows, groups) if config.pictures else {}
    report.write_csv(out / "analysis.csv", rows)
    report.write_csv(out / "analysis_groups.csv", groups)
    report.write_json(out / "analysis.json", {
        "config": config.to_dict(), "grouping": notes, "images": rows, "groups": groups,
        "problems": problems})
    write_text_atomic(out / "report.html",
                      report.html_report(rows, groups, problems, thumbnails, pictures, notes))
    log.info("%d analysed, %d problems; report in %s", len(rows), len(problems), out)
    return {"num_analyzed": len(rows), "problems": problems, "output_dir": str(out),
            "report": str(out / "report.html")}
