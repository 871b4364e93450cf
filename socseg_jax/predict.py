"""Whole-image prediction by overlapping sliding windows with blended softmax outputs.

The study predicted full 2856x4096 SEM images with 256-px windows and averaged overlapping
softmax outputs; this module does the same on device, in the spirit of MONAI's
``sliding_window_inference`` and nnU-Net's predictor:

1. the image is padded (reflect by default) to at least one patch, centred, and copied to the
   device once, inside a canvas whose size is rounded up to ``size_bucket`` so that images of
   similar sizes share compiled programs;
2. patches are cut on device (vmapped ``lax.dynamic_slice``) in fixed-size batches (the last
   batch is filled with zero-weight dummy tiles), so the model compiles once per batch shape;
3. ``weight * probability`` and ``weight`` are accumulated on device (donated buffers);
4. the result ``sum(w * p) / sum(w)`` comes back in one transfer and is cropped to the image.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from data_prep.patches import tile_starts

ApplyFn = Callable[[jax.Array], jax.Array]
_PAD_MODES = ("reflect", "symmetric", "edge", "constant")


def blending_weights(
    patch: int,
    mode: Literal["uniform", "gaussian"] = "gaussian",
    sigma_scale: float = 1.0 / 8.0,
    min_weight: float = 1e-4,
) -> np.ndarray:
    """(patch, patch) float32 importance map for blending overlapping windows.

    ``uniform``: all ones (plain averaging, as the study). ``gaussian``: separable Gaussian
    centred on the patch with sigma = ``patch * sigma_scale`` (nnU-Net/MONAI default 1/8), max 1,
    clipped below at ``min_weight`` so border pixels never get zero weight; it down-weights the
    window borders, where a convolutional net sees the least context.
    """
    if patch < 1:
        raise ValueError(f"patch must be >= 1, got {patch}")
    if mode == "uniform":
        return np.ones((patch, patch), np.float32)
    if mode != "gaussian":
        raise ValueError(f"blending mode must be 'uniform' or 'gaussian', got {mode!r}")
    if sigma_scale <= 0 or not 0 < min_weight <= 1:
        raise ValueError(
            f"need sigma_scale > 0 and 0 < min_weight <= 1, got {sigma_scale}, {min_weight}"
        )
    sigma = patch * sigma_scale
    coords = np.arange(patch, dtype=np.float64) - (patch - 1) / 2.0
    profile = np.exp(-0.5 * (coords / sigma) ** 2)
    weights = np.outer(profile, profile)
    weights /= weights.max()
    return np.maximum(weights, min_weight).astype(np.float32)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class SlidingWindowPredictor:
    """Predict class probabilities for images of any size with overlapping windows.

    ``apply_fn`` maps a float32 batch ``(B, P, P, C)`` to class probabilities ``(B, P, P, K)``
    (for a model, softmax of the logits; see :func:`make_model_apply_fn`). Images are used as
    given (normalise them as in training). It is wrapped in ``jax.jit`` unless
    ``jit_apply=False``. ``trace_counts`` records how often each internal step was traced,
    i.e. compiled (one per batch shape for ``apply``, one per canvas size for the others).
    """

    def __init__(
        self,
        apply_fn: ApplyFn,
        patch_size: int = 256,
        stride: int | None = None,
        batch_size: int = 8,
        blending: Literal["uniform", "gaussian"] = "gaussian",
        pad_mode: str = "reflect",
        *,
        sigma_scale: float = 1.0 / 8.0,
        size_bucket: int = 128,
        jit_apply: bool = True,
    ):
        stride = patch_size // 2 if stride is None else stride
        if patch_size < 1 or not 1 <= stride <= patch_size:
            raise ValueError(f"need 1 <= stride <= patch_size, got {stride}, {patch_size}")
        if batch_size < 1 or size_bucket < 1:
            raise ValueError(
                f"batch_size and size_bucket must be >= 1: {batch_size}, {size_bucket}"
            )
        if pad_mode not in _PAD_MODES:
            raise ValueError(f"pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
        self.patch_size = patch_size
        self.stride = stride
        self.batch_size = batch_size
        self.blending = blending
        self.pad_mode = pad_mode
        self.size_bucket = size_bucket
        self.weights = blending_weights(patch_size, blending, sigma_scale)
        self.trace_counts: collections.Counter[str] = collections.Counter()
        self._weights_dev = jnp.asarray(self.weights)

        counts = self.trace_counts
        patch = patch_size

        def apply(batch: jax.Array) -> jax.Array:
            counts["apply"] += 1
            return apply_fn(batch)

        def extract(image: jax.Array, starts: jax.Array) -> jax.Array:
            counts["extract"] += 1
            channels = image.shape[-1]

            def one(start: jax.Array) -> jax.Array:
                return jax.lax.dynamic_slice(
                    image, (start[0], start[1], 0), (patch, patch, channels)
                )

            return jax.vmap(one)(starts)

        def accumulate(
            prob_sum: jax.Array,
            weight_sum: jax.Array,
            probs: jax.Array,
            starts: jax.Array,
            tile_weights: jax.Array,
            window: jax.Array,
        ) -> tuple[jax.Array, jax.Array]:
            counts["accumulate"] += 1
            num_classes = probs.shape[-1]
            weights = window[None] * tile_weights[:, None, None]  # (B, P, P)
            weighted = probs.astype(jnp.float32) * weights[..., None]

            def body(i: int, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
                acc, wsum = carry
                y, x = starts[i, 0], starts[i, 1]
                old = jax.lax.dynamic_slice(acc, (y, x, 0), (patch, patch, num_classes))
                acc = jax.lax.dynamic_update_slice(acc, old + weighted[i], (y, x, 0))
                old_w = jax.lax.dynamic_slice(wsum, (y, x), (patch, patch))
                wsum = jax.lax.dynamic_update_slice(wsum, old_w + weights[i], (y, x))
                return acc, wsum

            return jax.lax.fori_loop(0, probs.shape[0], body, (prob_sum, weight_sum))

        def normalise(prob_sum: jax.Array, weight_sum: jax.Array) -> jax.Array:
            counts["normalise"] += 1
            safe = jnp.where(weight_sum > 0, weight_sum, 1.0)
            return prob_sum / safe[..., None]

        def labels(prob_sum: jax.Array) -> jax.Array:
            counts["labels"] += 1
            return jnp.argmax(prob_sum, axis=-1).astype(jnp.uint8)

        self._apply = jax.jit(apply) if jit_apply else apply
        self._extract = jax.jit(extract)
        self._accumulate = jax.jit(accumulate, donate_argnums=(0, 1))
        self._normalise = jax.jit(normalise)
        self._labels = jax.jit(labels)

    # -- geometry ---------------------------------------------------------------------------

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """Padded canvas (Hc, Wc, C), tile starts (T, 2) and the image offset in the canvas."""
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1 or image.shape[2] < 1:
            raise ValueError(f"image must be (H, W) or (H, W, C) and non-empty, got {image.shape}")
        image = image.astype(np.float32, copy=False)
        h, w, _ = image.shape
        p = self.patch_size
        padded_h, padded_w = max(h, p), max(w, p)
        top, left = (padded_h - h) // 2, (padded_w - w) // 2
        pad = ((top, padded_h - h - top), (left, padded_w - w - left), (0, 0))
        if any(before or after for before, after in pad):
            mode = self.pad_mode
            if mode in ("reflect", "symmetric") and min(h, w) == 1:
                mode = "edge"  # nothing to reflect along a single row/column
            image = np.pad(image, pad, mode=mode)
        canvas_h = _round_up(padded_h, self.size_bucket)
        canvas_w = _round_up(padded_w, self.size_bucket)
        canvas = np.zeros((canvas_h, canvas_w, image.shape[2]), np.float32)
        canvas[:padded_h, :padded_w] = image
        ys = tile_starts(padded_h, p, self.stride)
        xs = tile_starts(padded_w, p, self.stride)
        starts = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1).reshape(-1, 2)
        return canvas, starts.astype(np.int32), (top, left)

    def _sums(self, image: np.ndarray) -> tuple[jax.Array, jax.Array, tuple[int, int, int, int]]:
        """Device accumulators over the canvas and the crop (top, left, H, W) of the image."""
        canvas, starts, (top, left) = self._prepare(image)
        h, w = np.asarray(image).shape[:2]
        b = self.batch_size
        num_tiles = len(starts)
        total = _round_up(num_tiles, b)
        tile_weights = np.zeros(total, np.float32)
        tile_weights[:num_tiles] = 1.0
        starts = np.concatenate([starts, np.zeros((total - num_tiles, 2), np.int32)])

        image_dev = jax.device_put(canvas)
        prob_sum = weight_sum = None
        for first in range(0, total, b):
            batch_starts = starts[first : first + b]
            probs = self._apply(self._extract(image_dev, batch_starts))
            if prob_sum is None:
                expected = (b, self.patch_size, self.patch_size)
                if probs.ndim != 4 or tuple(probs.shape[:3]) != expected:
                    raise ValueError(
                        f"apply_fn must return (B, P, P, K) = {expected} + (K,), "
                        f"got {tuple(probs.shape)}"
                    )
                prob_sum = jnp.zeros((*canvas.shape[:2], probs.shape[-1]), jnp.float32)
                weight_sum = jnp.zeros(canvas.shape[:2], jnp.float32)
            prob_sum, weight_sum = self._accumulate(
                prob_sum,
                weight_sum,
                probs,
                batch_starts,
                tile_weights[first : first + b],
                self._weights_dev,
            )
        return prob_sum, weight_sum, (top, left, h, w)

    # -- public API -------------------------------------------------------------------------

    def predict_sums(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unnormalised ``sum(w * p)`` (H, W, K) and ``sum(w)`` (H, W), e.g. to merge models."""
        prob_sum, weight_sum, (top, left, h, w) = self._sums(image)
        prob_sum, weight_sum = jax.device_get((prob_sum, weight_sum))
        crop = (slice(top, top + h), slice(left, left + w))
        return np.ascontiguousarray(prob_sum[crop]), np.ascontiguousarray(weight_sum[crop])

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Blended class probabilities (H, W, K) float32 for an (H, W) or (H, W, C) image."""
        prob_sum, weight_sum, (top, left, h, w) = self._sums(image)
        probs = np.asarray(jax.device_get(self._normalise(prob_sum, weight_sum)))
        return np.ascontiguousarray(probs[top : top + h, left : left + w])

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Label map (H, W) uint8: argmax of the blended probabilities (computed on device)."""
        prob_sum, _, (top, left, h, w) = self._sums(image)
        labels = np.asarray(jax.device_get(self._labels(prob_sum)))
        return np.ascontiguousarray(labels[top : top + h, left : left + w])


def make_model_apply_fn(model: nnx.Module) -> ApplyFn:
    """Jitted ``batch (B, P, P, C) -> softmax probabilities (B, P, P, K)`` float32 for a model.

    Uses a snapshot of the model's current weights, run in eval mode (dropout off). The
    caller's model is left unchanged: ``nnx.split`` happens once here and ``eval()`` is applied
    to the copy merged inside the jitted function, so the weights are jit arguments.
    """
    graphdef, state = nnx.split(model)

    @jax.jit
    def forward(state: nnx.State, batch: jax.Array) -> jax.Array:
        module = nnx.merge(graphdef, state)
        module.eval()
        logits = module(batch)
        return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

    return functools.partial(forward, state)


__all__ = [
    "SlidingWindowPredictor",
    "blending_weights",
    "make_model_apply_fn",
]
