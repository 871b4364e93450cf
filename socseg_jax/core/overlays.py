"""Pictures of label maps: class colours blended over the SEM image, with a legend."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from socseg_jax.core.atomic import atomic_path
from socseg_jax.core.phases import CLASS_COLORS, CLASS_NAMES, colorize


def _grey_to_float01(grey: np.ndarray) -> np.ndarray:
    """Grey image as float in [0, 1]; integers are scaled by their dtype maximum."""
    grey = np.asarray(grey)
    if np.issubdtype(grey.dtype, np.integer):
        return grey.astype(np.float32) / float(np.iinfo(grey.dtype).max)
    return np.clip(grey.astype(np.float32), 0.0, 1.0)


def overlay(grey: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend class colours over a grey image (float in [0,1] or integer) -> (H, W, 3) uint8."""
    g = _grey_to_float01(grey)
    if g.ndim == 3:
        g = g[..., :3].mean(axis=-1)
    if g.shape != np.shape(labels):
        raise ValueError(f"overlay: image shape {g.shape} != labels shape {np.shape(labels)}")
    base = np.repeat(g[..., None] * 255.0, 3, axis=-1)
    col = colorize(labels).astype(np.float32)
    out = (1.0 - alpha) * base + alpha * col
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def save_overlay_png(
    path: str | os.PathLike,
    grey: np.ndarray,
    labels: np.ndarray,
    title: str | None = None,
) -> None:
    """Write a PNG of the label overlay with a legend naming the phases (atomic write)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    path = Path(path)
    img = overlay(grey, labels)
    h, w = img.shape[:2]
    scale = 6.0 / max(h, w)
    fig = Figure(figsize=(max(w * scale, 3.0) + 1.6, max(h * scale, 3.0)), dpi=max(100, h // 5))
    ax = fig.add_axes((0.0, 0.0, 0.8, 0.92 if title else 1.0))
    ax.imshow(img, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    handles = [
        Patch(facecolor=CLASS_COLORS[i] / 255.0, edgecolor="k", label=name)
        for i, name in enumerate(CLASS_NAMES)
    ]
    fig.legend(handles=handles, loc="center right", frameon=False, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
