"""The SEM normalisation a model was trained with is the one segment applies."""

import json

import numpy as np
import pytest
import tifffile
from socseg_jax.configs.segment import get_config

from socseg_jax.core.errors import UserError
from socseg_jax.core.intensity import (
    NORMALISATION_FILE,
    apply_normalisation,
    normalisation_settings,
    normalize_sem,
)
from socseg_jax.inference.image_input import KERAS_L2_ROWS, resolve_normalisation


def _gradient_image() -> np.ndarray:
    """Two phases under a strong left-to-right shading, as on a tilted or shaded detector."""
    rng = np.random.default_rng(0)
    phase = (rng.random((128, 128)) > 0.5).repeat(2, 0).repeat(2, 1)[:128, :128]
    shading = np.linspace(0.2, 1.0, 128)[None, :]
    return ((0.3 + 0.4 * phase) * shading * 60000).astype(np.uint16)


def test_local_contrast_evens_out_shading():
    image = _gradient_image()
    plain, local = normalize_sem(image), normalize_sem(image, local_contrast_px=32)
    assert local.dtype == np.float32 and 0.0 <= local.min() and local.max() <= 1.0
    drift = [abs(float(m[:, :32].mean() - m[:, -32:].mean())) for m in (plain, local)]
    assert drift[1] < 0.5 * drift[0], drift
    np.testing.assert_array_equal(apply_normalisation(image, normalisation_settings(32)), local)


def test_recorded_settings_are_honoured_and_unknown_methods_refused():
    with pytest.raises(UserError, match="unknown SEM normalisation"):
        apply_normalisation(np.zeros((4, 4)), {"method": "zscore"})
    image = _gradient_image()
    older = {**normalisation_settings(32), "clip_limit": 0.01, "percentiles": [1.0, 99.0]}
    np.testing.assert_array_equal(apply_normalisation(image, older),
                                  normalize_sem(image, 32, 0.01, (1.0, 99.0)))
    assert not np.array_equal(apply_normalisation(image, older), normalize_sem(image, 32))


def test_auto_follows_the_checkpoints_record(tmp_path):
    a, b, old = tmp_path / "a", tmp_path / "b", tmp_path / "old"
    for folder, px in ((a, 32), (b, 0)):
        (folder / "checkpoints" / "7").mkdir(parents=True)
        (folder / NORMALISATION_FILE).write_text(json.dumps(normalisation_settings(px)))
    old.mkdir()
    assert resolve_normalisation("auto", str(a / "checkpoints" / "7")) == normalisation_settings(32)
    assert resolve_normalisation("auto", str(old)) == normalisation_settings()  # no record
    assert resolve_normalisation("percentile", str(a)) == normalisation_settings()
    assert resolve_normalisation("keras_l2_rows", "") == KERAS_L2_ROWS
    with pytest.raises(UserError, match="different SEM normalisations"):
        resolve_normalisation("auto", f"{a}, {b}")


def test_segment_applies_the_checkpoints_local_contrast(tmp_path, checkpoint_dir):
    from socseg_jax.inference.loading import build_predictor, load_models
    from socseg_jax.jobs import segment

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for item in checkpoint_dir.iterdir():
        (model_dir / item.name).symlink_to(item)
    (model_dir / NORMALISATION_FILE).write_text(json.dumps(normalisation_settings(32)))
    (tmp_path / "in").mkdir()
    image = _gradient_image()
    tifffile.imwrite(tmp_path / "in" / "shaded.tif", image)
    config = get_config()
    config.input, config.output_dir = str(tmp_path / "in"), str(tmp_path / "out")
    config.checkpoint, config.data_bar = str(model_dir), "none"
    config.predict.update(patch_size=32, stride=32, batch_size=4)
    segment.run(config, None)
    written = tifffile.imread(tmp_path / "out" / "shaded_labels.tif")
    predictor = build_predictor(load_models(str(model_dir)), config.predict)
    np.testing.assert_array_equal(written, predictor.predict(normalize_sem(image, 32)))
    assert not np.array_equal(written, predictor.predict(normalize_sem(image)))
