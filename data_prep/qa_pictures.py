"""QA pictures written by ``prepare`` next to each sample's labels: confidence and registration.

Why: a user checks a prepared sample by looking, not by reading numbers. The registration
picture shows the aligned element maps as a colour composite over the SEM image (as AZtec's
layered image does), so a misregistered sample is visible at a glance: colours offset from
the SEM's particles.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from socseg_jax.core.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Composite channels (red, green, blue) and the elements that feed them, first found wins.
COMPOSITE = (("Zr", "Y"), ("Ni",), ("O",))


def _figure(h: int, w: int, extra_width: float) -> Figure:
    """An off-screen figure sized for an h x w picture plus ``extra_width`` inches."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    scale = 6.0 / max(h, w)
    return Figure(figsize=(max(w * scale, 3.0) + extra_width, max(h * scale, 3.0)), dpi=100)


def save_confidence_png(path: Path, confidence: np.ndarray, name: str) -> None:
    """Label-confidence map as a PNG (viridis), written atomically."""
    fig = _figure(*confidence.shape, extra_width=1.2)
    ax = fig.add_axes((0.0, 0.0, 0.82, 0.92))
    im = ax.imshow(confidence, vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(f"{name} label confidence", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.05)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def element_composite(sem: np.ndarray, maps: Mapping[str, np.ndarray]) -> np.ndarray:
    """(H, W, 3) uint8: element maps (red Zr/Y, green Ni, blue O; each stretched to its
    99th percentile) blended half and half with the grey SEM image in [0, 1]."""
    rgb = np.zeros(sem.shape + (3,), np.float32)
    for channel, elements in enumerate(COMPOSITE):
        present = [np.asarray(maps[el], np.float32) for el in elements if el in maps]
        if present:
            m = np.sum(present, axis=0)
            top = float(np.percentile(m, 99)) or 1.0
            rgb[..., channel] = np.clip(m / top, 0.0, 1.0)
    out = 0.5 * np.asarray(sem, np.float32)[..., None] + 0.5 * rgb
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def save_registration_png(
    path: Path, sem: np.ndarray, maps: Mapping[str, np.ndarray], title: str
) -> None:
    """SEM image | registered element maps over it, side by side, as a PNG (atomic write)."""
    h, w = sem.shape
    fig = _figure(h, 2 * w, extra_width=0.0)
    for i, img in enumerate((sem, element_composite(sem, maps))):
        ax = fig.add_axes((0.5 * i, 0.0, 0.5, 0.86))
        ax.imshow(
            img,
            cmap="gray" if i == 0 else None,
            vmin=0,
            vmax=1 if i == 0 else None,
            interpolation="nearest",
        )
        ax.set_axis_off()
    fig.suptitle(
        f"{title}\nleft: SEM; right: registered EDS, red Zr+Y, green Ni, blue O", fontsize=9
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
