"""The functional core of sliding-window inference: module-level jitted window functions.

Each function is jitted once at module level, so every predictor with the same shapes shares
its compiled programs: cut windows out of a band on device (``extract_windows``), add
``weight * probability`` into the band accumulator (``accumulate_windows``, donated buffers),
finish rows into labels / probabilities / uncertainty (``finish_maps``) and slide the
unfinished rows up (``shift_band``). ``make_window_apply`` builds the per-batch model call
(test-time augmentation, per-window PRNG keys, micro-batching, split over local devices).
``TRACE_COUNTS`` counts how often each was traced, i.e. compiled.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from socseg_jax.core.errors import UserError

ApplyFn = Callable[[jax.Array], jax.Array]
TRACE_COUNTS: collections.Counter[str] = collections.Counter()

# (transpose, flip rows, flip columns) per test-time augmentation; 'd4' is the dihedral group.
TTA_TRANSFORMS = {
    "none": ((0, 0, 0),),
    "flips": ((0, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 1)),
    "d4": tuple((t, fy, fx) for t in (0, 1) for fy in (0, 1) for fx in (0, 1)),
}


MAP_KINDS = ("labels", "proba", "entropy", "max_prob", "prob_sum", "weight_sum",
             "class_row_sums")


@dataclasses.dataclass(frozen=True)
class KeyedApply:
    """An apply function that also takes one PRNG key per patch: ``(batch, keys) -> probs``.

    Used for stochastic models (MC dropout): the predictor derives each window's key from the
    seed and the window's position, so results do not depend on batching or banding.
    """

    fn: Callable[[jax.Array, jax.Array], jax.Array]

    def __call__(self, batch: jax.Array, keys: jax.Array) -> jax.Array:
        return self.fn(batch, keys)


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
        raise UserError(f"patch must be >= 1, got {patch}")
    if mode == "uniform":
        return np.ones((patch, patch), np.float32)
    if mode != "gaussian":
        raise UserError(f"blending mode must be 'uniform' or 'gaussian', got {mode!r}")
    if sigma_scale <= 0 or not 0 < min_weight <= 1:
        raise UserError(
            f"need sigma_scale > 0 and 0 < min_weight <= 1, got {sigma_scale}, {min_weight}"
        )
    sigma = patch * sigma_scale
    coords = np.arange(patch, dtype=np.float64) - (patch - 1) / 2.0
    profile = np.exp(-0.5 * (coords / sigma) ** 2)
    weights = np.outer(profile, profile)
    weights /= weights.max()
    return np.maximum(weights, min_weight).astype(np.float32)


def window_devices(batch_size: int) -> list[jax.Device]:
    """The most local devices (up to all) that split a batch of windows evenly."""
    devices = jax.local_devices()
    count = max(n for n in range(1, len(devices) + 1) if batch_size % n == 0)
    return devices[:count]


def _transform(x: jax.Array, flags: jax.Array, inverse: bool) -> jax.Array:
    """Apply (or undo) transpose/flip-rows/flip-columns on square NHWC patches, flags traced."""
    def transpose(v: jax.Array) -> jax.Array:
        return jnp.where(flags[0] > 0, jnp.swapaxes(v, 1, 2), v)

    def flips(v: jax.Array) -> jax.Array:
        v = jnp.where(flags[1] > 0, v[:, ::-1], v)
        return jnp.where(flags[2] > 0, v[:, :, ::-1], v)

    return transpose(flips(x)) if inverse else flips(transpose(x))


def uncertainty_maps(probs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Predictive entropy (nats, 0..log K) and max probability (1/K..1) of mean probabilities."""
    entropy = -jnp.sum(probs * jnp.log(jnp.maximum(probs, 1e-12)), axis=-1)
    return entropy, jnp.max(probs, axis=-1)


@functools.partial(jax.jit, static_argnames="patch")
def extract_windows(image: jax.Array, starts: jax.Array, patch: int) -> jax.Array:
    """(B, P, P, C) windows of a band ``image`` (H, W, C) at ``starts`` (B, 2)."""
    TRACE_COUNTS["extract"] += 1
    channels = image.shape[-1]

    def one(start: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(image, (start[0], start[1], 0), (patch, patch, channels))

    return jax.vmap(one)(starts)


@functools.partial(jax.jit, donate_argnums=(0, 1))
def accumulate_windows(
    prob_sum: jax.Array,
    weight_sum: jax.Array,
    probs: jax.Array,
    starts: jax.Array,
    tile_weights: jax.Array,
    window: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Adds ``window * tile_weight * probs`` of each window (and the weights) at its start."""
    TRACE_COUNTS["accumulate"] += 1
    patch, num_classes = probs.shape[1], probs.shape[-1]
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


@functools.partial(jax.jit, static_argnames="kinds")
def finish_maps(
    prob_sum: jax.Array, weight_sum: jax.Array, kinds: tuple[str, ...],
    class_weights: jax.Array,
) -> dict[str, jax.Array]:
    """The requested :data:`MAP_KINDS` of accumulated rows: the blended probabilities times
    ``class_weights`` (K,), renormalised (the class calibration, ``inference.class_bias``;
    ones: none), their argmax and uncertainty. ``prob_sum`` and ``weight_sum`` stay raw."""
    TRACE_COUNTS["normalise"] += 1
    safe = jnp.where(weight_sum > 0, weight_sum, 1.0)
    probs = prob_sum / safe[..., None]
    weighted = probs * class_weights  # rescaled to the same total (ones: unchanged)
    total = weighted.sum(axis=-1, keepdims=True)
    probs = weighted * (probs.sum(axis=-1, keepdims=True) / jnp.where(total > 0, total, 1.0))
    out = {"prob_sum": prob_sum + 0.0, "weight_sum": weight_sum + 0.0, "proba": probs,
           "class_row_sums": probs}  # summed over the image's columns on the host
    out["labels"] = jnp.argmax(prob_sum * class_weights, axis=-1).astype(jnp.uint8)
    out["entropy"], out["max_prob"] = uncertainty_maps(probs)
    return {kind: out[kind] for kind in kinds}


@functools.partial(jax.jit, donate_argnums=(0, 1))
def shift_band(
    prob_sum: jax.Array, weight_sum: jax.Array, rows: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Move rows [rows, A) to the top (finished rows leave), zeros below."""
    TRACE_COUNTS["shift"] += 1
    height = prob_sum.shape[0]
    acc = jnp.concatenate([prob_sum, jnp.zeros_like(prob_sum)])
    wsum = jnp.concatenate([weight_sum, jnp.zeros_like(weight_sum)])
    acc = jax.lax.dynamic_slice(acc, (rows, 0, 0), prob_sum.shape)
    return acc, jax.lax.dynamic_slice(wsum, (rows, 0), (height, weight_sum.shape[1]))


def _tta_average(
    apply_fn: ApplyFn | KeyedApply, transforms: np.ndarray
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``(windows, keys) -> probabilities`` averaged over the TTA transforms."""
    keyed = apply_fn if isinstance(apply_fn, KeyedApply) else None

    def one_pass(batch: jax.Array, keys: jax.Array) -> jax.Array:
        return keyed(batch, keys) if keyed is not None else apply_fn(batch)

    def run_windows(batch: jax.Array, keys: jax.Array) -> jax.Array:
        if len(transforms) == 1:
            return one_pass(batch, keys).astype(jnp.float32)

        def body(total: jax.Array, index: jax.Array) -> tuple[jax.Array, None]:
            flags = jnp.asarray(transforms)[index]
            pass_keys = jax.vmap(jax.random.fold_in, (0, None))(keys, index)
            probs = one_pass(_transform(batch, flags, inverse=False), pass_keys)
            return total + _transform(probs.astype(jnp.float32), flags, inverse=True), None

        first = one_pass(batch, jax.vmap(jax.random.fold_in, (0, None))(keys, 0))
        total, _ = jax.lax.scan(body, first.astype(jnp.float32), jnp.arange(1, len(transforms)))
        return total / len(transforms)

    return run_windows


def make_window_apply(
    apply_fn: ApplyFn | KeyedApply,
    tta: str,
    devices: Sequence[jax.Device],
    counts: collections.Counter[str],
    jit_apply: bool = True,
) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
    """``(windows, positions, base_key) -> probabilities`` for one call's windows.

    Each window's PRNG key is ``fold_in(fold_in(base_key, y), x)`` of its position, so
    results do not depend on batching or banding. With several ``devices`` the windows are
    split over them (``jax.shard_map``). ``counts["apply"]`` counts traces.
    """
    run_windows = _tta_average(apply_fn, np.asarray(TTA_TRANSFORMS[tta], np.int32))

    def apply(batch: jax.Array, positions: jax.Array, base_key: jax.Array) -> jax.Array:
        counts["apply"] += 1
        keys = jax.vmap(
            lambda pos: jax.random.fold_in(jax.random.fold_in(base_key, pos[0]), pos[1])
        )(positions)
        return run_windows(batch, keys)

    if len(devices) > 1:  # split every batch of windows over the local devices
        mesh = jax.sharding.Mesh(np.asarray(devices), ("windows",))
        spec = jax.sharding.PartitionSpec("windows")
        apply = jax.shard_map(
            apply,
            mesh=mesh,
            in_specs=(spec, spec, jax.sharding.PartitionSpec()),
            out_specs=spec,
            check_vma=False,
        )
    return jax.jit(apply) if jit_apply else apply
