"""Pictures people look at instead of numbers: side-by-side comparisons of label maps."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from socseg_jax.core.atomic import atomic_path
from socseg_jax.core.phases import CLASS_COLORS, CLASS_NAMES, colorize


def save_comparison(
    path: str | Path,
    rows: Sequence[tuple[str, np.ndarray, dict[str, np.ndarray]]],
) -> None:
    """One row per image: the SEM image, then each named label map in the phase colours."""
    path = Path(path)
    ncols = 1 + max(len(maps) for _, _, maps in rows)
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(3.2 * ncols, 3.2 * len(rows)), squeeze=False
    )
    for r, (name, image, maps) in enumerate(rows):
        axes[r, 0].imshow(image, cmap="gray")
        axes[r, 0].set_title(name, fontsize=9)
        for c, (title, labels) in enumerate(maps.items(), start=1):
            axes[r, c].imshow(colorize(labels))
            axes[r, c].set_title(title, fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    handles = [
        Patch(color=np.asarray(color) / 255, label=name)
        for name, color in zip(CLASS_NAMES, CLASS_COLORS, strict=True)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
