"""Agreement with PoreSpy (local thickness, chords) when it is installed (not needed by CI)."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from socseg_jax.analysis.sizes import chord_lengths, local_thickness


def _field(seed=0, shape=(160, 160)):
    rng = np.random.default_rng(seed)
    f = ndi.gaussian_filter(rng.standard_normal(shape), 4)
    return f > np.quantile(f, 0.5)


def test_local_thickness_matches_porespy():
    ps = pytest.importorskip("porespy")
    mask = _field()
    ours = local_thickness(mask)
    theirs = 2 * ps.filters.local_thickness(mask, method="dt", smooth=False)
    # PoreSpy rounds radii to whole pixels and takes disks |q - c| <= r: diameters agree
    # within one radius step (2 px) for most pixels, and the median within 1 px
    diff = np.abs(ours[mask] - theirs[mask])
    assert np.mean(diff <= 2.0) > 0.95
    assert np.median(ours[mask]) == pytest.approx(np.median(theirs[mask]), abs=1.0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mean_chord_matches_porespy():
    ps = pytest.importorskip("porespy")
    mask = _field(1)
    chords = ps.filters.apply_chords(mask, axis=1, spacing=0, trim_edges=True)
    along_rows = [[0, 0, 0], [1, 1, 1], [0, 0, 0]]
    lengths = np.bincount(ndi.label(chords > 0, structure=along_rows)[0].ravel())[1:]
    ours = chord_lengths(mask.astype(np.uint8), 1, axis=1)
    assert ours.mean() == pytest.approx(lengths.mean(), rel=0.02)
