"""Tests for the NNX U-Net: shapes, validation, dropout modes, transposed-conv equivalence."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from socseg_jax.models.unet import (
    ConvTranspose2x2,
    Dropout,
    UNet,
    UNetConfig,
    _dropout_base_key,
)

SMALL = dict(features=(4, 8, 16), encoder_dropout=(0.1, 0.1, 0.2), decoder_dropout=(0.2, 0.1))
TINY = dict(features=(4, 8), encoder_dropout=(0.3, 0.3), decoder_dropout=(0.3,))


@nnx.jit
def jit_call(model, x, key):
    """One compiled forward per (mode, shape): keeps the tests fast."""
    return model(x, rngs=key)


@pytest.mark.parametrize(
    "features,in_channels,num_classes,hw",
    [
        ((4, 8, 16), 1, 4, (32, 64)),
        ((4, 8), 3, 2, (16, 8)),
        ((4,), 2, 5, (7, 9)),  # depth 1: no pooling, any size
        ((4, 4, 8, 8), 1, 4, (32, 32)),
    ],
)
def test_output_shapes(features, in_channels, num_classes, hw):
    depth = len(features)
    config = UNetConfig(
        features=features,
        encoder_dropout=(0.1,) * depth,
        decoder_dropout=(0.1,) * (depth - 1),
        in_channels=in_channels,
        num_classes=num_classes,
    )
    model = UNet(config, rngs=nnx.Rngs(0))
    model.eval()
    logits = model(jnp.ones((2, *hw, in_channels)))
    assert logits.shape == (2, *hw, num_classes)
    assert logits.dtype == jnp.float32


def test_default_config_matches_study_parameter_count():
    model = nnx.eval_shape(lambda: UNet(UNetConfig(), rngs=nnx.Rngs(0)))
    params = nnx.state(model, nnx.Param)
    # Keras U-Net (16..256 filters, 1 input channel, 4 classes) has 1,940,868 parameters.
    assert sum(x.size for x in jax.tree.leaves(params)) == 1_940_868


def test_bfloat16_compute_keeps_float32_params_and_logits():
    model = UNet(UNetConfig(**SMALL, compute_dtype="bfloat16"), rngs=nnx.Rngs(0))
    model.eval()
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    assert model(jnp.ones((1, 16, 16, 1))).dtype == jnp.float32


@pytest.mark.parametrize("hw", [(30, 32), (32, 18), (5, 5)])
def test_bad_spatial_size_raises(hw):
    model = UNet(UNetConfig(**SMALL), rngs=nnx.Rngs(0))
    model.eval()
    with pytest.raises(ValueError, match="divisible by 4"):
        model(jnp.ones((1, *hw, 1)))


def test_bad_channel_count_raises():
    model = UNet(UNetConfig(**SMALL), rngs=nnx.Rngs(0))
    model.eval()
    with pytest.raises(ValueError, match="expects input"):
        model(jnp.ones((1, 16, 16, 3)))


def test_dropout_train_vs_eval():
    model = UNet(UNetConfig(**TINY), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
    # Train mode (the default): needs a key, different keys give different outputs,
    # the same key gives the same output; Rngs and raw keys both work.
    with pytest.raises(ValueError, match="no rngs"):
        jit_call(model, x, None)
    a = jit_call(model, x, jax.random.key(1))
    b = jit_call(model, x, jax.random.key(2))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, jit_call(model, x, jax.random.key(1)))
    from_rngs = _dropout_base_key(nnx.Rngs(dropout=1))
    expected = nnx.Rngs(dropout=1).dropout()
    np.testing.assert_array_equal(jax.random.key_data(from_rngs), jax.random.key_data(expected))
    # Eval mode: deterministic, no key needed, keys ignored.
    model.eval()
    e1 = jit_call(model, x, None)
    np.testing.assert_array_equal(e1, jit_call(model, x, jax.random.key(5)))
    assert not np.allclose(a, e1)
    model.train()
    np.testing.assert_array_equal(a, jit_call(model, x, jax.random.key(1)))


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_hash_dropout_mask_statistics(rate):
    x = jnp.ones((4, 64, 64, 16))
    drop = Dropout(rate)
    a = np.asarray(drop(x, rngs=jax.random.key(0)))
    b = np.asarray(drop(x, rngs=jax.random.key(1)))
    np.testing.assert_array_equal(a, np.asarray(drop(x, rngs=jax.random.key(0))))  # reproducible
    keep = 1.0 - rate
    n = a.size
    tol = 5 * np.sqrt(keep * rate / n)  # 5 binomial standard deviations
    ka, kb = a > 0, b > 0
    assert abs(ka.mean() - keep) < tol and abs(kb.mean() - keep) < tol
    np.testing.assert_allclose(a[ka], 1.0 / keep, rtol=1e-6)  # inverted-dropout scaling
    assert abs(a.mean() - 1.0) < 5 * tol  # unbiased on average
    # Independent across keys and between neighbouring elements along every axis.
    assert abs((ka & kb).mean() - keep**2) < 2 * tol
    for axis in range(4):
        pair = np.take(ka, range(1, ka.shape[axis]), axis) & np.take(
            ka, range(ka.shape[axis] - 1), axis
        )
        assert abs(pair.mean() - keep**2) < 4 * tol, axis
    drop.deterministic = True
    np.testing.assert_array_equal(np.asarray(drop(x)), np.asarray(x))


def test_zero_dropout_needs_no_key():
    config = UNetConfig(features=(4, 8), encoder_dropout=(0.0, 0.0), decoder_dropout=(0.0,))
    model = UNet(config, rngs=nnx.Rngs(0))
    x = jnp.ones((1, 8, 8, 1))
    train_out = model(x)
    model.eval()
    np.testing.assert_array_equal(train_out, model(x))


def test_functional_train_step_with_split_merge():
    model = UNet(UNetConfig(**TINY), rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
    y = jnp.zeros((2, 8, 8), jnp.int32)

    @jax.jit
    def loss_fn(params, key):
        m = nnx.merge(graphdef, params, rest)
        logits = m(x, rngs=key)
        return -jnp.mean(jax.nn.log_softmax(logits)[..., 0] * (y == 0))

    grads = jax.grad(loss_fn)(params, jax.random.key(1))
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    pure = nnx.to_pure_dict(params)
    merged = nnx.merge(graphdef, pure, rest)
    merged.eval()
    model.eval()
    np.testing.assert_array_equal(jit_call(merged, x, None), jit_call(model, x, None))


def _keras_reference(x, kernel, bias):
    # out[n, 2i + a, 2j + b, o] = bias[o] + sum_c x[n, i, j, c] * kernel[a, b, o, c]
    n, h, w, _ = x.shape
    out = np.zeros((n, 2 * h, 2 * w, kernel.shape[2]), np.float64)
    for a in range(2):
        for b in range(2):
            out[:, a::2, b::2, :] = np.einsum("nijc,oc->nijo", x, kernel[a, b])
    return out + bias


def test_upsample_equals_conv_transpose():
    layer = ConvTranspose2x2(5, 3, rngs=nnx.Rngs(0))
    assert layer.kernel.shape == (2, 2, 3, 5)  # Keras Conv2DTranspose layout
    rng = np.random.default_rng(0)
    layer.kernel[...] = jnp.asarray(rng.normal(size=(2, 2, 3, 5)), jnp.float32)
    layer.bias[...] = jnp.arange(3.0)
    x = jnp.asarray(rng.normal(size=(2, 6, 7, 5)), jnp.float32)
    kernel = layer.kernel[...]
    y = layer(x)
    expected = jax.lax.conv_transpose(
        x,
        kernel,
        strides=(2, 2),
        padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        transpose_kernel=True,
    ) + jnp.arange(3.0)
    assert y.shape == (2, 12, 14, 3)
    np.testing.assert_allclose(y, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(
        y, _keras_reference(np.asarray(x), np.asarray(kernel), np.arange(3.0)), atol=1e-5
    )


def test_config_round_trip_and_validation():
    config = UNetConfig(**SMALL, in_channels=3, num_classes=5, compute_dtype="bfloat16")
    data = json.loads(json.dumps(config.to_dict()))
    assert UNetConfig.from_dict(data) == config
    assert UNetConfig.from_dict(UNetConfig().to_dict()) == UNetConfig()
    assert UNetConfig(features=[4, 8], encoder_dropout=[0, 0], decoder_dropout=[0]).features == (
        4,
        8,
    )
    with pytest.raises(ValueError, match="encoder_dropout"):
        UNetConfig(features=(4, 8))
    with pytest.raises(ValueError, match="decoder_dropout"):
        UNetConfig(features=(4, 8), encoder_dropout=(0.1, 0.1), decoder_dropout=(0.1, 0.1))
    with pytest.raises(ValueError, match="compute_dtype"):
        UNetConfig(compute_dtype="int8")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        UNetConfig(encoder_dropout=(0.1, 0.1, 0.2, 0.2, 1.0))
    with pytest.raises(ValueError, match="Unknown"):
        UNetConfig.from_dict({"features": [4], "width": 3})


def test_keras_like_initialisation_is_deterministic():
    model = UNet(UNetConfig(**SMALL), rngs=nnx.Rngs(0))
    conv = np.asarray(model.encoder[2].conv2.kernel[...])  # (3, 3, 16, 16), he_normal
    std = np.sqrt(2.0 / (9 * 16))
    assert conv.std() == pytest.approx(std, rel=0.1)
    assert np.abs(conv).max() <= 2 * std / 0.87962566 + 1e-6  # truncated at 2 sigma
    up = np.asarray(model.upsample[0].kernel[...])  # (2, 2, 8, 16), glorot_uniform
    limit = np.sqrt(6.0 / (4 * 8 + 4 * 16))
    assert np.abs(up).max() <= limit and np.abs(up).max() > 0.8 * limit
    biases = [x for path, x in nnx.to_flat_state(nnx.state(model, nnx.Param)) if "bias" in path]
    assert all(np.all(np.asarray(b[...]) == 0) for b in biases)
    again = UNet(UNetConfig(**SMALL), rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(conv, again.encoder[2].conv2.kernel[...])
    other = UNet(UNetConfig(**SMALL), rngs=nnx.Rngs(1))
    assert not np.allclose(conv, other.encoder[2].conv2.kernel[...])
