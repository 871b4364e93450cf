"""Tests for sliding-window prediction: tiling, blending weights, exactness, compilation."""

import collections
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from data_prep.patches import tile_starts
from socseg_jax.inference import windows
from socseg_jax.inference.model_apply import make_ensemble_apply_fn, make_model_apply_fn
from socseg_jax.inference.predictor import SlidingWindowPredictor
from socseg_jax.inference.windows import blending_weights
from socseg_jax.models.unet import UNet, UNetConfig
from tests.processes import run_side_by_side

PATCH = 32
ROOT = Path(__file__).resolve().parents[2]
LINEAR = np.random.default_rng(0).normal(size=(1, 4)).astype(np.float32) * 3.0


def pixelwise_model(batch):
    """Softmax of a 1x1 linear map: exactly translation-equivariant, no padding effects."""
    return jax.nn.softmax(batch @ LINEAR, axis=-1)


def test_stride_larger_than_patch_is_rejected():
    with pytest.raises(ValueError, match="stride"):
        SlidingWindowPredictor(pixelwise_model, patch_size=32, stride=40)


def test_blending_weights():
    uniform = blending_weights(PATCH, "uniform")
    assert uniform.shape == (PATCH, PATCH) and np.all(uniform == 1)
    gauss = blending_weights(PATCH, "gaussian")
    assert gauss.dtype == np.float32
    assert np.all(gauss > 0) and gauss.max() == pytest.approx(1.0)
    np.testing.assert_allclose(gauss, gauss.T)
    np.testing.assert_allclose(gauss, gauss[::-1, ::-1])
    assert gauss[0, 0] == pytest.approx(1e-4)  # clipped minimum at the corner
    assert gauss[PATCH // 2, PATCH // 2] > 0.99
    with pytest.raises(ValueError):
        blending_weights(PATCH, "cosine")


@pytest.mark.parametrize("shape", [(37, 53), (100, 70), (20, 13), (32, 32)])
def test_weight_sums_match_reference(shape):
    predictor = SlidingWindowPredictor(
        pixelwise_model, patch_size=PATCH, stride=12, batch_size=3, blending="gaussian"
    )
    image = np.random.default_rng(1).random(shape, dtype=np.float32)
    prob_sum, weight_sum = predictor.predict_sums(image)
    # Reference: accumulate the window over every tile of the padded (centred) image.
    h, w = shape
    ph, pw = max(h, PATCH), max(w, PATCH)
    reference = np.zeros((ph, pw))
    for y in tile_starts(h, PATCH, 12):
        for x in tile_starts(w, PATCH, 12):
            reference[y : y + PATCH, x : x + PATCH] += predictor.weights
    top, left = (ph - h) // 2, (pw - w) // 2
    np.testing.assert_allclose(weight_sum, reference[top : top + h, left : left + w], rtol=1e-5)
    assert np.all(weight_sum > 0)
    np.testing.assert_allclose(prob_sum.sum(-1), weight_sum, rtol=1e-5)


@pytest.mark.parametrize("shape", [(37, 53), (100, 70), (20, 13), (5, 1), (64, 32)])
@pytest.mark.parametrize("blending", ["uniform", "gaussian"])
def test_equivariant_model_reproduces_whole_image(shape, blending):
    predictor = SlidingWindowPredictor(
        pixelwise_model, patch_size=PATCH, batch_size=4, blending=blending
    )
    image = np.random.default_rng(2).random(shape, dtype=np.float32)
    probs = predictor.predict_proba(image)
    expected = np.asarray(pixelwise_model(image[..., None]))
    assert probs.shape == (*shape, 4) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    labels = predictor.predict(image)
    assert labels.dtype == np.uint8 and labels.shape == shape
    np.testing.assert_array_equal(labels, expected.argmax(-1))


def test_multichannel_image_and_edge_padding():
    weights = np.random.default_rng(3).normal(size=(3, 2)).astype(np.float32)
    predictor = SlidingWindowPredictor(
        lambda b: jax.nn.softmax(b @ weights, axis=-1), patch_size=PATCH, pad_mode="edge"
    )
    image = np.random.default_rng(4).random((40, 21, 3), dtype=np.float32)
    expected = np.asarray(jax.nn.softmax(image @ weights, axis=-1))
    np.testing.assert_allclose(predictor.predict_proba(image), expected, atol=1e-6)


def test_compiles_once_per_bucket():
    traces = []

    def counting_model(batch):
        traces.append(batch.shape)
        return pixelwise_model(batch)

    core = (windows.extract_windows, windows.accumulate_windows, windows.finish_maps)
    for fn in core:  # the window functions are jitted once per process: start afresh
        fn.clear_cache()
    before = collections.Counter(windows.TRACE_COUNTS)

    def traced(name):
        return windows.TRACE_COUNTS[name] - before[name]

    predictor = SlidingWindowPredictor(
        counting_model, patch_size=PATCH, batch_size=4, size_bucket=128
    )
    for shape in [(37, 53), (100, 70), (128, 128), (10, 10)]:  # all in the 128x128 bucket
        predictor.predict_proba(np.zeros(shape, np.float32))
    assert set(traces) == {(predictor.micro_batch, PATCH, PATCH, 1)}
    assert predictor.trace_counts["apply"] == 1
    assert traced("extract") == 1
    assert traced("accumulate") == 1
    assert traced("normalise") == 1
    model_traces = len(traces)
    predictor.predict_proba(np.zeros((130, 40), np.float32))  # new bucket: model not retraced
    assert len(traces) == model_traces
    assert traced("accumulate") == 2


def test_micro_batches_run_no_dummy_tail_and_match_whole_batches():
    executed = []

    def counting_model(batch):
        jax.debug.callback(lambda: executed.append(1))
        return pixelwise_model(batch)

    image = np.random.default_rng(5).random((PATCH, PATCH + 2 * 8), dtype=np.float32)
    devices = jax.local_device_count() if 4 % jax.local_device_count() == 0 else 1
    results = {}
    # 3 windows, batch_size 4: a call takes micro windows per device, so with one device and
    # micro 1 the batch's 4th (dummy) window is never run; every device runs each call.
    for micro in (1, 2, 4 // devices):
        runs = -(-3 // (micro * devices)) * devices
        executed.clear()
        predictor = SlidingWindowPredictor(
            counting_model, patch_size=PATCH, stride=8, batch_size=4, micro_batch=micro
        )
        results[micro] = predictor.predict_proba(image)
        assert len(executed) == runs, micro
    np.testing.assert_allclose(results[1], results[4 // devices], atol=1e-6)
    np.testing.assert_allclose(results[2], results[4 // devices], atol=1e-6)
    with pytest.raises(ValueError, match="micro_batch"):
        SlidingWindowPredictor(pixelwise_model, patch_size=PATCH, batch_size=4, micro_batch=3)


def test_windows_split_over_host_devices_give_the_same_maps(tmp_path):
    """Two CPU devices (one per core, as launch.py sets up) predict what one device does."""
    code = """
import numpy as np, jax
from flax import nnx
from socseg_jax.models.unet import UNet, UNetConfig
from socseg_jax.inference.model_apply import make_model_apply_fn
from socseg_jax.inference.predictor import SlidingWindowPredictor
model = UNet(UNetConfig(features=(4, 8), encoder_dropout=(0, 0), decoder_dropout=(0,)),
             rngs=nnx.Rngs(0))
image = np.random.default_rng(0).random((70, 90), dtype=np.float32)
p = SlidingWindowPredictor(make_model_apply_fn(model), patch_size=32, stride=16, batch_size=4)
np.save("OUT", p.predict_proba(image))
print(jax.local_device_count(), p._window_sharding is not None)
"""
    devices = (1, 2)
    results = run_side_by_side(
        [[sys.executable, "-c", code.replace("OUT", str(tmp_path / f"proba{n}.npy"))]
         for n in devices],
        [dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
         for n in devices],
        cwd=ROOT, timeout=300,
    )
    out = {}
    for n, proc in zip(devices, results, strict=True):
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.split() == [str(n), str(n > 1)]
        out[n] = np.load(tmp_path / f"proba{n}.npy")
    np.testing.assert_allclose(out[2], out[1], atol=1e-6)


def test_bad_inputs():
    predictor = SlidingWindowPredictor(pixelwise_model, patch_size=PATCH)
    with pytest.raises(ValueError, match="image must be"):
        predictor.predict_proba(np.zeros((4, 4, 1, 1), np.float32))
    with pytest.raises(ValueError, match="stride"):
        SlidingWindowPredictor(pixelwise_model, patch_size=PATCH, stride=64)
    with pytest.raises(ValueError, match="pad_mode"):
        SlidingWindowPredictor(pixelwise_model, patch_size=PATCH, pad_mode="wrap")
    bad = SlidingWindowPredictor(lambda b: b[:, ::2], patch_size=PATCH)
    with pytest.raises(ValueError, match="apply_fn must return"):
        bad.predict_proba(np.zeros((40, 40), np.float32))


def test_unet_apply_fn_end_to_end():
    config = UNetConfig(
        features=(4, 8, 16), encoder_dropout=(0.1, 0.1, 0.2), decoder_dropout=(0.2, 0.1)
    )
    model = UNet(config, rngs=nnx.Rngs(0))
    apply_fn = make_model_apply_fn(model)
    assert not model.encoder[0].dropout.deterministic  # caller's model left in train mode
    batch = jax.random.uniform(jax.random.key(0), (2, PATCH, PATCH, 1))
    probs = apply_fn(batch)
    np.testing.assert_allclose(probs, apply_fn(batch))  # deterministic: dropout off
    np.testing.assert_allclose(jnp.sum(probs, -1), 1.0, atol=1e-5)
    predictor = SlidingWindowPredictor(apply_fn, patch_size=PATCH, batch_size=2)
    image = np.random.default_rng(5).random((45, 70), dtype=np.float32)
    out = predictor.predict_proba(image)
    assert out.shape == (45, 70, 4)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    # A single tile covering the image exactly equals the model's own prediction.
    tile = np.asarray(batch[0, ..., 0])
    np.testing.assert_allclose(predictor.predict_proba(tile), probs[0], atol=1e-6)


def tiny_unet(seed: int = 0, dropout: float = 0.1) -> UNet:
    config = UNetConfig(
        features=(4, 8), encoder_dropout=(dropout, dropout), decoder_dropout=(dropout,)
    )
    return UNet(config, rngs=nnx.Rngs(seed))


@pytest.mark.parametrize("blending", ["uniform", "gaussian"])
def test_band_wise_equals_whole_image(blending):
    """A non-equivariant model (a U-Net) gives the same maps with and without row bands."""
    apply_fn = make_model_apply_fn(tiny_unet())
    image = np.random.default_rng(6).random((150, 70), dtype=np.float32)
    kinds = ("labels", "proba", "entropy", "max_prob", "weight_sum")
    whole = SlidingWindowPredictor(apply_fn, patch_size=PATCH, stride=12, blending=blending)
    banded = SlidingWindowPredictor(
        apply_fn, patch_size=PATCH, stride=12, blending=blending, max_band_pixels=60 * 128
    )
    height, bands = banded.band_plan(150, 128)
    assert len(bands) > 3 and height < 150
    expected, got = whole.predict_maps(image, kinds), banded.predict_maps(image, kinds)
    for kind in kinds:
        np.testing.assert_allclose(got[kind], expected[kind], atol=1e-6, err_msg=kind)
    # per-row probability sums over the image's own columns (not the padding)
    sums = banded.predict_maps(image, ("class_row_sums",))["class_row_sums"]
    assert sums.shape == (150, 4) and sums.dtype == np.float64
    np.testing.assert_allclose(sums, expected["proba"].sum(axis=1), rtol=1e-5)


def test_banded_gaussian_weight_sums_at_borders():
    predictor = SlidingWindowPredictor(
        pixelwise_model, patch_size=PATCH, stride=12, max_band_pixels=50 * 128
    )
    h, w = 101, 45
    _, weight_sum = predictor.predict_sums(np.zeros((h, w), np.float32))
    reference = np.zeros((h, w))
    for y in tile_starts(h, PATCH, 12):
        for x in tile_starts(w, PATCH, 12):
            reference[y : y + PATCH, x : x + PATCH] += predictor.weights
    np.testing.assert_allclose(weight_sum, reference, rtol=1e-5)
    assert weight_sum[0, 0] == pytest.approx(predictor.weights[0, 0])  # one window at a corner


@pytest.mark.parametrize("tta", ["flips", "d4"])
def test_tta_of_equivariant_model_changes_nothing(tta):
    image = np.random.default_rng(7).random((45, 60), dtype=np.float32)
    plain = SlidingWindowPredictor(pixelwise_model, patch_size=PATCH)
    augmented = SlidingWindowPredictor(pixelwise_model, patch_size=PATCH, tta=tta)
    np.testing.assert_allclose(
        augmented.predict_proba(image), plain.predict_proba(image), atol=1e-6
    )


def test_tta_averages_flipped_predictions():
    apply_fn = make_model_apply_fn(tiny_unet())
    tile = np.random.default_rng(8).random((PATCH, PATCH), dtype=np.float32)
    predictor = SlidingWindowPredictor(apply_fn, patch_size=PATCH, tta="flips")
    x = tile[None, ..., None]
    expected = np.mean(
        [
            np.asarray(apply_fn(x))[0],
            np.asarray(apply_fn(x[:, ::-1]))[0, ::-1],
            np.asarray(apply_fn(x[:, :, ::-1]))[0, :, ::-1],
            np.asarray(apply_fn(x[:, ::-1, ::-1]))[0, ::-1, ::-1],
        ],
        axis=0,
    )
    np.testing.assert_allclose(predictor.predict_proba(tile), expected, atol=1e-5)
    with pytest.raises(ValueError, match="tta"):
        SlidingWindowPredictor(apply_fn, patch_size=PATCH, tta="rot45")


def test_ensemble_averages_members():
    models = [tiny_unet(0), tiny_unet(1)]
    batch = jax.random.uniform(jax.random.key(1), (2, PATCH, PATCH, 1))
    keys = jax.random.split(jax.random.key(0), 2)
    ensemble = make_ensemble_apply_fn(models)
    expected = (make_model_apply_fn(models[0])(batch) + make_model_apply_fn(models[1])(batch)) / 2
    np.testing.assert_allclose(ensemble(batch, keys), expected, atol=1e-6)
    other = UNet(UNetConfig(features=(4, 8, 16), encoder_dropout=(0, 0, 0),
                            decoder_dropout=(0, 0)), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="architecture"):
        make_ensemble_apply_fn([models[0], other])


def test_mc_dropout_uncertainty_is_seeded_and_band_invariant():
    model = tiny_unet(dropout=0.3)
    mc = make_ensemble_apply_fn([model], mc_samples=3)
    image = np.random.default_rng(9).random((90, 40), dtype=np.float32)
    kinds = ("proba", "entropy", "max_prob")
    predictor = SlidingWindowPredictor(mc, patch_size=PATCH, stride=16, seed=1)
    whole = predictor.predict_maps(image, kinds)
    predictor.max_band_pixels = 40 * 128
    banded = predictor.predict_maps(image, kinds)
    for kind in kinds:
        np.testing.assert_allclose(banded[kind], whole[kind], atol=1e-6, err_msg=kind)
    predictor.seed = 2
    assert not np.allclose(predictor.predict_proba(image), whole["proba"], atol=1e-4)
    deterministic = SlidingWindowPredictor(
        make_model_apply_fn(model), patch_size=PATCH, stride=16
    ).predict_proba(image)
    assert not np.allclose(deterministic, whole["proba"], atol=1e-4)
    probs = whole["proba"]
    entropy = -(probs * np.log(np.maximum(probs, 1e-12))).sum(-1)
    np.testing.assert_allclose(whole["entropy"], entropy, atol=1e-5)
    np.testing.assert_allclose(whole["max_prob"], probs.max(-1), atol=1e-6)
    assert np.all(whole["entropy"] <= np.log(4) + 1e-5)


def test_map_dtypes_and_bad_kinds():
    predictor = SlidingWindowPredictor(pixelwise_model, patch_size=PATCH)
    image = np.random.default_rng(10).random((40, 40), dtype=np.float32)
    maps = predictor.predict_maps(image, ("proba", "labels"), {"proba": np.float16})
    assert maps["proba"].dtype == np.float16 and maps["labels"].dtype == np.uint8
    with pytest.raises(ValueError, match="map kinds"):
        predictor.predict_maps(image, ("logits",))
