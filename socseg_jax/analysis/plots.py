"""Pictures of the analyze job: per-image maps, key metrics vs time, every metric vs time.

Each PNG is written to a temporary name and renamed (socseg_jax.core.atomic); its bytes are
returned for embedding in report.html.
"""

from __future__ import annotations

import io as _io
import math
from pathlib import Path
from typing import Any

import numpy as np

from socseg_jax.analysis.summary import KeyColumn, by_heading
from socseg_jax.core.atomic import atomic_path
from socseg_jax.core.phases import colorize

_MAX_PICTURE_PX = 1024  # longest side of a picture panel (larger maps are subsampled)
_MAX_MARKERS = 20000
_GROUP_MARKERS = "osD^v<>ph*"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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


def _timed(groups: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The group rows that have a time, per group name (in time order, as sorted)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for g in groups:
        if math.isfinite(g["time_min"]):
            out.setdefault(str(g["group"]), []).append(g)
    return out


def _errorbar(ax: Any, rows: list[dict[str, Any]], column: str, **style: Any) -> None:
    """Mean of ``column`` vs time with std error bars (none where std is NaN)."""
    std = [0.0 if math.isnan(g[f"{column}_std"]) else g[f"{column}_std"] for g in rows]
    ax.errorbar([g["time_min"] for g in rows], [g[f"{column}_mean"] for g in rows], yerr=std,
                capsize=3, **style)


def key_series_plot(path: Path, groups: list[dict[str, Any]], columns: list[KeyColumn]) -> bytes:
    """One panel per key metric (summary.key_columns): its columns' group means vs time with
    std error bars; a colour per column, a marker per group. Columns without a finite mean
    (e.g. the tortuosity of a phase that never percolates) are left out; b"" (nothing
    written) when no column is left."""
    plt = _pyplot()
    timed = _timed(groups)
    finite = [c for c in columns if any(math.isfinite(g[f"{c.column}_mean"])
                                        for rows_g in timed.values() for g in rows_g)]
    panels = by_heading(finite)
    if not panels:
        return b""
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    for ax, (heading, members) in zip(axes.ravel(), panels.items(), strict=False):
        for i, column in enumerate(members):
            for j, (name, rows_g) in enumerate(timed.items()):
                label = " ".join(t for t in (column.name, name if len(timed) > 1 else "") if t)
                _errorbar(ax, rows_g, column.column, color=f"C{i % 10}", label=label or None,
                          marker=_GROUP_MARKERS[j % len(_GROUP_MARKERS)], markersize=4)
        ax.set_title(heading, fontsize=10)
        ax.set_xlabel("time (min)", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=7, ncol=2 if len(members) > 3 else 1)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return _save_png(fig, path, dpi=80)


def series_plot(path: Path, groups: list[dict[str, Any]], metrics: list[str]) -> bytes:
    """One panel per metric: its mean vs time_min with std error bars, one line per group."""
    plt = _pyplot()
    cols = min(4, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    timed = _timed(groups)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        for name, rows_g in timed.items():
            _errorbar(ax, rows_g, metric, marker="o", label=name)
        ax.set_title(metric, fontsize=8)
        ax.set_xlabel("time (min)", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=6)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.94, hspace=0.7, wspace=0.3)
    return _save_png(fig, path, dpi=60)
