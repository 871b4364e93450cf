"""Outputs of the analyze job: CSV tables, JSON, pictures and one self-contained HTML page.

Every file is written to a temporary name and renamed (socseg_jax.core.atomic).
"""

from __future__ import annotations

import base64
import csv
import html
import io as _io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from socseg_jax.core.atomic import atomic_path, write_json_atomic, write_text_atomic
from socseg_jax.core.phases import colorize

_MAX_PICTURE_PX = 1024  # longest side of a picture panel (larger maps are subsampled)
_MAX_MARKERS = 20000


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def csv_text(rows: list[dict[str, Any]]) -> str:
    """CSV of ``rows`` with the union of their keys as header (first-seen order)."""
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text_atomic(path, csv_text(rows))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
        return str(float(value))  # "inf" / "nan": JSON has no such numbers
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        return _json_safe(obj)

    write_json_atomic(path, clean(payload))


def _save_png(fig: Any, path: Path, dpi: int = 100) -> bytes:
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    _pyplot().close(fig)
    data = buffer.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return data


def image_picture(path: Path, maps: dict[str, np.ndarray], axis: str, title: str) -> bytes:
    """Colourised labels with active (white) / inactive (red) TPB points, and the local
    thickness map (px). Returns the PNG bytes."""
    plt = _pyplot()
    labels = maps["labels"]
    step = max(1, math.ceil(max(labels.shape) / _MAX_PICTURE_PX))
    fig, axes = plt.subplots(1, 2, figsize=(12, 6 * labels.shape[0] / labels.shape[1] + 0.8))
    axes[0].imshow(colorize(labels[::step, ::step]), interpolation="nearest")
    active = maps.get(f"active_{axis}", np.zeros_like(maps["tpb"]))
    for corners, colour, name in ((maps["tpb"] & ~active, "red", "inactive TPB"),
                                  (active, "white", f"active TPB ({axis})")):
        ys, xs = np.nonzero(corners)
        keep = slice(None, None, max(1, len(ys) // _MAX_MARKERS))
        axes[0].scatter((xs[keep] + 0.5) / step, (ys[keep] + 0.5) / step, s=2, c=colour,
                        marker=".", linewidths=0, label=name)
    axes[0].legend(loc="upper right", fontsize=7, markerscale=4)
    axes[0].set_title(title, fontsize=8)
    im = axes[1].imshow(maps["local_thickness_px"][::step, ::step], cmap="viridis")
    axes[1].set_title("local thickness (px)", fontsize=8)
    fig.colorbar(im, ax=axes[1], fraction=0.04)
    for a in axes:
        a.axis("off")
    fig.tight_layout()
    return _save_png(fig, path)


def series_plot(path: Path, groups: list[dict[str, Any]], metrics: list[str]) -> bytes:
    """One panel per metric: its mean vs time_min with std error bars, one line per group."""
    plt = _pyplot()
    cols = min(4, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    names = list(dict.fromkeys(g["group"] for g in groups))
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        for name in names:
            rows_g = [g for g in groups if g["group"] == name]
            std = [0.0 if math.isnan(g[f"{metric}_std"]) else g[f"{metric}_std"] for g in rows_g]
            ax.errorbar([g["time_min"] for g in rows_g], [g[f"{metric}_mean"] for g in rows_g],
                        yerr=std, marker="o", capsize=3, label=str(name))
        ax.set_title(metric, fontsize=8)
        ax.set_xlabel("time (min)", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=6)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.94, hspace=0.7, wspace=0.3)
    return _save_png(fig, path, dpi=60)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _img(data: bytes, width: int) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img width="{width}" src="data:image/png;base64,{b64}">'


def _table(rows: list[dict[str, Any]]) -> str:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(f)}</th>" for f in fields)

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float | np.floating) else html.escape(str(v))

    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(f, ''))}</td>" for f in fields) + "</tr>"
                   for r in rows)
    return f"<div class='t'><table><tr>{head}</tr>{body}</table></div>"


def html_report(
    rows: list[dict[str, Any]], groups: list[dict[str, Any]], problems: list[str],
    thumbnails: dict[str, bytes], plots: dict[str, bytes],
) -> str:
    """One self-contained page: problems, per-image table, group table, plots, thumbnails."""
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>socseg analysis</title>",
             "<style>body{font-family:sans-serif;font-size:12px}.t{overflow-x:auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 4px}"
             "</style></head><body><h1>Microstructure analysis</h1>"]
    if problems:
        parts.append("<h2>Problems</h2><ul>" + "".join(
            f"<li>{html.escape(p)}</li>" for p in problems) + "</ul>")
    parts += ["<h2>Images</h2>", _table(rows), "<h2>Groups</h2>", _table(groups)]
    parts.append("<h2>Series</h2>" + "".join(_img(d, 420) for d in plots.values()))
    parts.append("<h2>Pictures</h2>" + "".join(
        f"<figure>{_img(d, 900)}<figcaption>{html.escape(n)}</figcaption></figure>"
        for n, d in thumbnails.items()))
    return "".join(parts) + "</body></html>"
