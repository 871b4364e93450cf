"""Data bars in both conventions give the labels of the same image without a bar, and the
normalisation does not depend on the detector's gain, offset or bit depth."""

from pathlib import Path

import numpy as np
import tifffile

from data_prep import synthetic
from socseg_jax.core.intensity import normalize_sem
from socseg_jax.inference import archive_loop
from socseg_jax.inference.archive import ImageJob
from socseg_jax.inference.predictor import SlidingWindowPredictor
from tests.jobs.test_segment import options, pixelwise_model

BAR_ROWS = 40


def simulated_sem() -> np.ndarray:
    params = synthetic.SimulationParams(shape=(256, 256))
    return synthetic.simulate_sample(params, seed=7).sem


def segment_one(path: Path, out: Path) -> tuple[np.ndarray, dict]:
    predictor = SlidingWindowPredictor(pixelwise_model, patch_size=64)
    rows = archive_loop.segment_images(predictor, [ImageJob(path, Path(path.name))], out, options())
    return tifffile.imread(out / f"{path.stem}_labels.tif"), rows[0]


def test_both_bar_conventions_give_the_labels_without_a_bar(tmp_path):
    sem = simulated_sem()
    appended = synthetic.add_data_bar(sem, BAR_ROWS)  # FEI/Thermo: below the scan
    overlay = appended[BAR_ROWS:]  # Zeiss: drawn over the bottom rows of the scanned field
    for name, image in (("plain", sem), ("appended", appended), ("overlay", overlay)):
        tifffile.imwrite(tmp_path / f"{name}.tif", image)
    plain, plain_row = segment_one(tmp_path / "plain.tif", tmp_path / "out")
    below, below_row = segment_one(tmp_path / "appended.tif", tmp_path / "out")
    over, over_row = segment_one(tmp_path / "overlay.tif", tmp_path / "out")
    assert plain_row["data_bar_rows"] == 0
    assert below_row["data_bar_rows"] == BAR_ROWS and over_row["data_bar_rows"] == BAR_ROWS
    np.testing.assert_array_equal(below, plain)  # the same pixels: the same labels
    rows = over.shape[0]
    assert rows == sem.shape[0] - BAR_ROWS
    # The overlay bar hides the field's bottom rows; on the rows both show, the labels agree
    # (the normalisation percentiles then come from slightly fewer pixels).
    assert np.mean(over == plain[BAR_ROWS : BAR_ROWS + rows]) > 0.99


def test_normalisation_ignores_gain_offset_and_bit_depth():
    sem = simulated_sem()
    sixteen = (sem.astype(np.uint32) * 4 * 60 + 1500).astype(np.uint16)  # x4 gain, 16-bit
    np.testing.assert_allclose(normalize_sem(sixteen), normalize_sem(sem), atol=1e-5)
