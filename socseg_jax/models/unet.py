"""Flax NNX U-Net for 4-class phase segmentation of Ni/YSZ SEM images.

The default configuration reproduces the study's Keras U-Net (16-32-64-128-256 filters, dropout
between the two 3x3 convolutions of every level, 2x2 max-pool, 2x2 stride-2 transposed
convolutions, 1x1 head). The model returns logits; softmax is applied outside.

Layout: NHWC everywhere. Kernels map one-to-one onto Keras kernels:

* ``nnx.Conv`` kernel ``(kh, kw, Cin, Cout)`` == Keras ``Conv2D`` kernel.
* :class:`ConvTranspose2x2` kernel ``(2, 2, Cout, Cin)`` == Keras ``Conv2DTranspose`` kernel.

Parameters are always float32; ``compute_dtype="bfloat16"`` only changes the arithmetic.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from socseg_jax.core.errors import UserError
from socseg_jax.models import study

_COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
_TRUNCATED_NORMAL_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]
Initializer = Callable[..., jax.Array]


def _host_zeros(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    """Zeros made on the host: a placeholder init that costs no XLA compilation per shape."""
    del key
    return jnp.asarray(np.zeros(shape, dtype))


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of :class:`UNet`; JSON-friendly via :meth:`to_dict` / :meth:`from_dict`.

    ``features[i]`` is the width of encoder level ``i`` (depth = ``len(features)``; the last entry
    is the bottleneck). ``encoder_dropout`` has one rate per level, ``decoder_dropout`` one per
    decoder level, ordered from the deepest (next to the bottleneck) to the shallowest.
    """

    features: tuple[int, ...] = study.FEATURES
    encoder_dropout: tuple[float, ...] = study.ENCODER_DROPOUT
    decoder_dropout: tuple[float, ...] = study.DECODER_DROPOUT
    in_channels: int = study.IN_CHANNELS
    num_classes: int = study.NUM_CLASSES
    compute_dtype: str = study.COMPUTE_DTYPE

    def __post_init__(self) -> None:
        # Normalise sequences to tuples (keeps the frozen dataclass hashable), then validate.
        for name in ("features", "encoder_dropout", "decoder_dropout"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise UserError(f"UNetConfig.{name} must be a sequence, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        depth = len(self.features)
        if depth < 1:
            raise UserError("UNetConfig.features must have at least one level")
        if any(int(f) != f or f < 1 for f in self.features):
            raise UserError(f"UNetConfig.features must be positive ints, got {self.features}")
        object.__setattr__(self, "features", tuple(int(f) for f in self.features))
        if len(self.encoder_dropout) != depth:
            raise UserError(
                f"UNetConfig.encoder_dropout needs len(features)={depth} rates, "
                f"got {len(self.encoder_dropout)}: {self.encoder_dropout}"
            )
        if len(self.decoder_dropout) != depth - 1:
            raise UserError(
                f"UNetConfig.decoder_dropout needs len(features)-1={depth - 1} rates, "
                f"got {len(self.decoder_dropout)}: {self.decoder_dropout}"
            )
        for name in ("encoder_dropout", "decoder_dropout"):
            rates = tuple(float(r) for r in getattr(self, name))
            if any(not 0.0 <= r < 1.0 for r in rates):
                raise UserError(f"UNetConfig.{name} rates must be in [0, 1), got {rates}")
            object.__setattr__(self, name, rates)
        for name in ("in_channels", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"UNetConfig.{name} must be a positive int, got {value!r}")
        if self.compute_dtype not in _COMPUTE_DTYPES:
            raise UserError(
                f"UNetConfig.compute_dtype must be one of {_COMPUTE_DTYPES}, "
                f"got {self.compute_dtype!r}"
            )

    @property
    def depth(self) -> int:
        """Number of resolution levels (encoder levels including the bottleneck)."""
        return len(self.features)

    @property
    def size_multiple(self) -> int:
        """Input H and W must be multiples of this (``2 ** (depth - 1)``)."""
        return 2 ** (self.depth - 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (lists, not tuples), e.g. to store in a checkpoint."""
        out = dataclasses.asdict(self)
        for name in ("features", "encoder_dropout", "decoder_dropout"):
            out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError, missing keys use defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(
                f"Unknown UNetConfig keys {unknown}; expected a subset of {sorted(known)}"
            )
        return cls(**dict(data))


class ConvTranspose2x2(nnx.Module):
    """2x2 stride-2 transposed convolution, computed as a 1x1 matmul + depth-to-space.

    Exactly equal to Keras ``Conv2DTranspose(Cout, 2, strides=2, padding="same")`` (and to
    ``jax.lax.conv_transpose(x, kernel, (2, 2), "VALID", ("NHWC", "HWIO", "NHWC"),
    transpose_kernel=True)``) but much faster on CPU, because the stride equals the kernel size:
    every output pixel receives exactly one input pixel::

        out[n, 2i + a, 2j + b, o] = bias[o] + sum_c x[n, i, j, c] * kernel[a, b, o, c]

    ``kernel`` has shape ``(2, 2, Cout, Cin)``, the Keras ``Conv2DTranspose`` layout, so Keras
    weights load one-to-one (``kernel = keras_kernel``, ``bias = keras_bias``). Internally it is
    reshaped to a ``(Cin, 4 * Cout)`` matrix whose column index is ``(a, b, o)`` row-major; the
    matmul output ``(N, H, W, 2, 2, Cout)`` is then interleaved to ``(N, 2H, 2W, Cout)``.
    Initialisation: glorot_uniform kernel (the Keras default the study kept), zero bias.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        dtype: Any = jnp.float32,
        kernel_init: Initializer | None = None,
        rngs: nnx.Rngs,
    ):
        self.in_features = in_features
        self.out_features = out_features
        self.dtype = dtype
        # Keras glorot_uniform on (2, 2, Cout, Cin): fan_in = 4*Cout, fan_out = 4*Cin.
        init = kernel_init or jax.nn.initializers.glorot_uniform(in_axis=-2, out_axis=-1)
        shape = (2, 2, out_features, in_features)
        self.kernel = nnx.Param(init(rngs.params(), shape, jnp.float32))
        self.bias = nnx.Param(_host_zeros(None, (out_features,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        """Upsample ``(N, H, W, Cin)`` to ``(N, 2H, 2W, Cout)``."""
        n, h, w, cin = x.shape
        if cin != self.in_features:
            raise UserError(f"ConvTranspose2x2 expects {self.in_features} channels, got {cin}")
        cout = self.out_features
        kernel = self.kernel[...].astype(self.dtype)
        matrix = jnp.transpose(kernel, (3, 0, 1, 2)).reshape(cin, 4 * cout)
        y = jnp.dot(x.astype(self.dtype), matrix)
        y = (
            y.reshape(n, h, w, 2, 2, cout)
            .transpose(0, 1, 3, 2, 4, 5)
            .reshape(n, 2 * h, 2 * w, cout)
        )
        return y + self.bias[...].astype(self.dtype)


def _hash32(x: jax.Array) -> jax.Array:
    """A strong 32-bit integer mixer (the 'lowbias32' finaliser): uint32 -> uint32, bijective."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


class Dropout(nnx.Module):
    """Inverted dropout whose mask is a hash of (element index, key), fused into the graph.

    Why not ``nnx.Dropout``: its mask comes from ``jax.random.bernoulli`` (threefry), whose
    random bits are an un-fused pass over every activation; on a 2-core CPU the study U-Net
    trained markedly slower with it than with this mask (figures in benchmarks/RESULTS.md).
    The mask of element ``i`` is ``hash(hash(i) ^ seed) < keep * 2**32`` with ``seed`` drawn
    from the call's PRNG key, so masks are reproducible, differ per key and per element, and
    need no stored state; the keep probability is exact to 2**-32. Same interface as
    ``nnx.Dropout`` (``rate``, ``deterministic``, toggled by ``model.eval()`` /
    ``model.train()``).
    """

    def __init__(self, rate: float, *, deterministic: bool = False):
        self.rate = rate
        self.deterministic = deterministic

    def __call__(self, x: jax.Array, *, rngs: jax.Array | None = None) -> jax.Array:
        """Drop elements with probability ``rate`` and scale the rest by 1 / keep."""
        if self.deterministic or self.rate == 0.0:
            return x
        if rngs is None:
            raise UserError("Dropout in train mode needs a PRNG key (rngs=...)")
        if x.size >= 2**32:
            raise UserError(f"Dropout supports arrays of < 2**32 elements, got {x.shape}")
        threshold = min(round((1.0 - self.rate) * 2.0**32), 2**32 - 1)
        seed = jax.random.bits(rngs, (), jnp.uint32)
        index = jax.lax.iota(jnp.uint32, x.size).reshape(x.shape)  # row-major element index
        keep = _hash32(_hash32(index) ^ seed) < np.uint32(threshold)
        return jnp.where(keep, x * (2.0**32 / threshold), 0).astype(x.dtype)


class ConvBlock(nnx.Module):
    """One U-Net level: 3x3 conv + ReLU -> dropout -> 3x3 conv + ReLU (as the study's Keras net).

    Convolutions use 'same' padding, he_normal kernels (as the study) and zero biases.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        dropout_rate: float,
        *,
        dtype: Any = jnp.float32,
        kernel_init: Initializer | None = None,
        rngs: nnx.Rngs,
    ):
        conv_kwargs = dict(
            kernel_size=(3, 3),
            padding="SAME",
            kernel_init=kernel_init or jax.nn.initializers.he_normal(),
            bias_init=_host_zeros,
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )
        self.conv1 = nnx.Conv(in_features, out_features, **conv_kwargs)
        self.dropout = Dropout(dropout_rate)
        self.conv2 = nnx.Conv(out_features, out_features, **conv_kwargs)

    def __call__(self, x: jax.Array, dropout_key: jax.Array | None) -> jax.Array:
        """Apply the block; ``dropout_key`` is only used when dropout is active."""
        x = jax.nn.relu(self.conv1(x))
        x = self.dropout(x, rngs=dropout_key)
        return jax.nn.relu(self.conv2(x))


def _max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 stride-2 max-pool on NHWC input with even H and W."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _dropout_base_key(rngs: nnx.Rngs | nnx.RngStream | jax.Array) -> jax.Array:
    """Turn the call-time ``rngs`` argument into one PRNG key."""
    if isinstance(rngs, nnx.Rngs):
        return rngs.dropout()  # falls back to the 'default' stream when there is no 'dropout'
    if isinstance(rngs, nnx.RngStream):
        return rngs()
    if isinstance(rngs, jax.Array):
        return rngs
    raise TypeError(f"rngs must be nnx.Rngs, nnx.RngStream or a PRNG key, got {type(rngs)}")


@functools.partial(jax.jit, static_argnums=1)
def _draw_flat(key: jax.Array, size: int) -> tuple[jax.Array, jax.Array]:
    """``size`` unit normals truncated to [-2, 2] and ``size`` U(-1, 1) samples."""
    normal_key, uniform_key = jax.random.split(key)
    normal = jax.random.truncated_normal(normal_key, -2.0, 2.0, (size,), jnp.float32)
    uniform = jax.random.uniform(uniform_key, (size,), jnp.float32, -1.0, 1.0)
    return normal, uniform


@functools.partial(jax.jit, static_argnums=2)
def _carve_kernels(
    normal: jax.Array, uniform: jax.Array, specs: tuple[tuple[tuple[int, ...], str, float], ...]
) -> tuple[jax.Array, ...]:
    out, offset = [], 0
    for shape, kind, scale in specs:
        size = math.prod(shape)
        source = normal if kind == "normal" else uniform
        out.append(source[offset : offset + size].reshape(shape) * scale)
        offset += size
    return tuple(out)


def _sample_kernels(
    key: jax.Array, specs: tuple[tuple[tuple[int, ...], str, float], ...]
) -> tuple[jax.Array, ...]:
    """Draw every kernel at once: ``(shape, "normal" | "uniform", scale)`` per kernel.

    "normal" is a unit normal truncated to [-2, 2] times ``scale`` (Keras truncated he_normal),
    "uniform" is U(-1, 1) times ``scale`` (Keras glorot_uniform with scale = limit). The random
    draw is one program for a power-of-two size (PRNG programs are slow to compile on CPU, so
    one per model instead of one per kernel shape, shared by similar configurations).
    """
    total = sum(math.prod(shape) for shape, _, _ in specs)
    size = max(4096, 1 << (total - 1).bit_length())
    normal, uniform = _draw_flat(key, size)
    return _carve_kernels(normal, uniform, specs)


class UNet(nnx.Module):
    """U-Net returning per-pixel logits ``(N, H, W, num_classes)`` in float32.

    A new model is in train mode (dropout active, as every NNX module); call ``model.eval()``
    for inference and ``model.train()`` to switch back. Dropout keys are not stored in the
    model: pass ``rngs`` (``nnx.Rngs`` or a PRNG key) at call time, so that a purely functional
    train step (``nnx.split`` / ``nnx.merge``) only has to thread one key. MC-dropout inference
    is ``model.train()`` plus a key per sample.
    """

    def __init__(self, config: UNetConfig, *, rngs: nnx.Rngs):
        self.config = config
        dtype = jnp.dtype(config.compute_dtype)
        self.dtype = dtype
        feats = config.features
        # Layers start with placeholder zeros; all kernels are then drawn in one compiled
        # program (see _sample_kernels), which avoids one slow XLA compile per kernel shape.
        layer_kwargs = dict(dtype=dtype, kernel_init=_host_zeros, rngs=rngs)
        encoder = []
        in_features = config.in_channels
        for width, rate in zip(feats, config.encoder_dropout, strict=True):
            encoder.append(ConvBlock(in_features, width, rate, **layer_kwargs))
            in_features = width
        self.encoder = nnx.List(encoder)
        upsample, decoder = [], []
        for level, rate in enumerate(config.decoder_dropout):
            deeper, width = feats[-1 - level], feats[-2 - level]
            upsample.append(ConvTranspose2x2(deeper, width, **layer_kwargs))
            decoder.append(ConvBlock(2 * width, width, rate, **layer_kwargs))
        self.upsample = nnx.List(upsample)
        self.decoder = nnx.List(decoder)
        self.head = nnx.Conv(
            feats[0],
            config.num_classes,
            kernel_size=(1, 1),
            kernel_init=_host_zeros,
            bias_init=_host_zeros,
            dtype=dtype,
            param_dtype=jnp.float32,
            rngs=rngs,
        )
        self._initialise_kernels(rngs.params())

    def _initialise_kernels(self, key: jax.Array) -> None:
        """Keras-like init: he_normal for 3x3 convs (as the study), glorot_uniform (the Keras
        default the study kept) for the transposed convs and the 1x1 head; biases stay zero."""
        kernels: list[nnx.Param] = []
        specs: list[tuple[tuple[int, ...], str, float]] = []
        for block in (*self.encoder, *self.decoder):
            for conv in (block.conv1, block.conv2):
                shape = tuple(conv.kernel.shape)
                fan_in = math.prod(shape[:-1])
                specs.append((shape, "normal", math.sqrt(2.0 / fan_in) / _TRUNCATED_NORMAL_STD))
                kernels.append(conv.kernel)
        for layer in (*self.upsample, self.head):
            shape = tuple(layer.kernel.shape)
            receptive = math.prod(shape[:-2])
            fan_in, fan_out = receptive * shape[-2], receptive * shape[-1]
            specs.append((shape, "uniform", math.sqrt(6.0 / (fan_in + fan_out))))
            kernels.append(layer.kernel)
        for param, value in zip(kernels, _sample_kernels(key, tuple(specs)), strict=True):
            param[...] = value

    def _dropouts(self) -> list[Dropout]:
        return [block.dropout for block in (*self.encoder, *self.decoder)]

    def __call__(
        self,
        x: jax.Array,
        *,
        rngs: nnx.Rngs | nnx.RngStream | jax.Array | None = None,
    ) -> jax.Array:
        """Logits ``(N, H, W, num_classes)`` float32 for images ``(N, H, W, in_channels)``.

        H and W must be multiples of ``2 ** (depth - 1)``. ``rngs`` is required in train mode
        when any dropout rate is non-zero.
        """
        cfg = self.config
        if x.ndim != 4 or x.shape[-1] != cfg.in_channels:
            raise UserError(
                f"UNet expects input (N, H, W, {cfg.in_channels}), got shape {tuple(x.shape)}"
            )
        h, w = x.shape[1], x.shape[2]
        m = cfg.size_multiple
        if h % m or w % m:
            raise UserError(
                f"UNet of depth {cfg.depth} needs H and W divisible by {m}, got H={h}, W={w}; "
                "pad the input (e.g. use socseg_jax.predict for whole images)"
            )
        dropouts = self._dropouts()
        active = any(not d.deterministic and d.rate > 0.0 for d in dropouts)
        keys: list[jax.Array | None] = [None] * len(dropouts)
        if active:
            if rngs is None:
                raise UserError(
                    "UNet is in train mode (dropout active) but no rngs were given: pass "
                    "rngs=nnx.Rngs(...) or a PRNG key, or call model.eval() for inference"
                )
            base = _dropout_base_key(rngs)
            keys = [jax.random.fold_in(base, i) for i in range(len(dropouts))]

        x = x.astype(self.dtype)
        skips = []
        n_enc = len(self.encoder)
        for level, block in enumerate(self.encoder):
            x = block(x, keys[level])
            if level < n_enc - 1:
                skips.append(x)
                x = _max_pool_2x2(x)
        for level, (up, block) in enumerate(zip(self.upsample, self.decoder, strict=True)):
            x = jnp.concatenate([up(x), skips[-1 - level]], axis=-1)
            x = block(x, keys[n_enc + level])
        return self.head(x).astype(jnp.float32)
