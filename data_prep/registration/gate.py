"""The checks that refuse EDS maps that do not fit their SEM, or warn about them.

The absolute gate (``MIN_REGISTRATION_QUALITY``, applied by ``maps.register_eds``), a run's
outliers (a sample registered far worse than the others of its run) and
warnings about maps too coarse for thin phases. The thresholds were set by
``benchmarks/registration_gate.py`` and ``benchmarks/label_quality.py`` (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from data_prep.samples.raw_sample import RawSample

# Correct registrations score well above this, maps of another sample or misplaced far below.
MIN_REGISTRATION_QUALITY = 0.7

# EDS grid (or H5OINA step) this many times coarser than the SEM pixel: warn (label quality
# falls between 4x and 8x; nothing measured in between, so the line sits past 4x).
COARSE_EDS_SCALE = 4.5
# What prepare does with a registration outlier (prepare.registration_outliers).
OUTLIER_ACTIONS = ("refuse", "warn")


def eds_resolution_warnings(grid_scale: float, raw: RawSample) -> list[str]:
    """Warnings about EDS maps too coarse for thin phases, or a pixel size that disagrees
    with the H5OINA step. ``grid_scale``: SEM pixels per EDS pixel of the registration."""
    messages = []
    coarse = grid_scale
    from_steps = raw.metadata.get("eds_scale_from_steps")
    if from_steps and 0.5 < from_steps / coarse < 2.0:
        coarse = max(coarse, from_steps)  # maps exported on a finer grid than acquired
    elif from_steps:
        messages.append(
            f"the pixel size ({raw.pixel_size_nm:g} nm) and the EDS step give maps "
            f"{from_steps:.3g}x coarser than the SEM, the grids {coarse:.3g}x: check the "
            "pixel size"
        )
    if coarse > COARSE_EDS_SCALE:
        advice = (
            ""
            if raw.scribbles is not None
            else ", or add scribbles.png (a few strokes in each phase)"
        )
        messages.append(
            f"EDS maps are {coarse:.1f}x coarser than the SEM image: phases narrower than "
            f"~{coarse:.0f} px (thin NiO shells, small Ni cores) get unreliable labels; "
            f"check the QA overlay{advice}"
        )
    return messages


def quality_outliers(
    qualities: dict[str, float], spreads: float, min_margin: float
) -> dict[str, str]:
    """Samples whose registration quality lies far below the others of the run, with why.

    Why: a misplaced field (wrong bar convention, maps of a neighbouring area) can still pass
    the absolute gate on easy data, yet it stands out from the run, whose samples share one
    microscope and one EDS setting. Limit: median − max(``spreads`` × 1.4826 MAD,
    ``min_margin``) (benchmarks/registration_gate.py measures both); needs >= 3 samples.
    """
    if len(qualities) < 3:
        return {}
    q = np.asarray(list(qualities.values()), np.float64)
    med = float(np.median(q))
    spread = 1.4826 * float(np.median(np.abs(q - med)))
    limit = med - max(spreads * spread, min_margin)
    return {
        name: (
            f"registration quality {v:.3f} far below the run's (median {med:.3f}, robust "
            f"spread {spread:.3f}, limit {limit:.3f}): EDS maps misplaced or of another field"
        )
        for name, v in qualities.items()
        if v < limit
    }
