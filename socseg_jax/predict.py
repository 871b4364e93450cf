"""Whole-image prediction by overlapping sliding windows with blended softmax outputs.

The study predicted full 2856x4096 SEM images with 256-px windows and averaged overlapping
softmax outputs; this module does the same on device, in the spirit of MONAI's
``sliding_window_inference`` and nnU-Net's predictor, with bounded memory for any image size:

1. the image is padded (reflect by default) to at least one patch, centred; its width is
   rounded up to ``size_bucket`` so that images of similar sizes share compiled programs;
2. the canvas is processed in row bands: each band's input rows are copied to the device,
   patches are cut there (vmapped ``lax.dynamic_slice``) in fixed-size batches (the last batch
   is filled with zero-weight dummy tiles), so the model compiles once per batch shape;
3. ``weight * probability`` and ``weight`` are accumulated on device (donated buffers) in a
   band accumulator; rows no later window touches are finished on device (labels,
   probabilities, uncertainty) and leave it, the overlap rows slide up for the next band.
   Device and host working memory are bounded by ``max_band_pixels``, not by the image size.

Options: test-time augmentation (``tta``: flips or the 8 flips/rotations of a square),
ensembles and Monte-Carlo dropout (:func:`make_ensemble_apply_fn`). All of them average
softmax outputs per window, which the (linear) blending then averages over windows, so
the uncertainty maps (predictive entropy, max probability) come from the final mean.
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
from flax import nnx

from data_prep.patches import tile_starts

ApplyFn = Callable[[jax.Array], jax.Array]
_PAD_MODES = ("reflect", "symmetric", "edge", "constant")
# (transpose, flip rows, flip columns) per test-time augmentation; 'd4' is the dihedral group.
TTA_TRANSFORMS = {
    "none": ((0, 0, 0),),
    "flips": ((0, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 1)),
    "d4": tuple((t, fy, fx) for t in (0, 1) for fy in (0, 1) for fx in (0, 1)),
}
MAP_KINDS = ("labels", "proba", "entropy", "max_prob", "prob_sum", "weight_sum")


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


def _window_devices(batch_size: int) -> list[jax.Device]:
    """The most local devices (up to all) that split a batch of windows evenly."""
    devices = jax.local_devices()
    count = max(n for n in range(1, len(devices) + 1) if batch_size % n == 0)
    return devices[:count]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


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


class SlidingWindowPredictor:
    """Predict class probabilities for images of any size with overlapping windows.

    ``apply_fn`` maps a float32 batch ``(B, P, P, C)`` to class probabilities ``(B, P, P, K)``
    (for a model, softmax of the logits; see :func:`make_model_apply_fn`), or is a
    :class:`KeyedApply` taking per-window PRNG keys too (see :func:`make_ensemble_apply_fn`).
    Images are used as given (normalise them as in training). The model call is wrapped in
    ``jax.jit`` unless ``jit_apply=False``. ``tta`` averages over flips ('flips', 4 passes) or
    flips and transposes ('d4', 8 passes). ``max_band_pixels`` bounds the band accumulator
    (rows x canvas width); taller images are processed in row bands. ``seed`` seeds the
    per-window keys of a :class:`KeyedApply`; both attributes may be changed between calls.
    Each batch of windows is split over the local devices (as many as divide ``batch_size``;
    on CPU, one per core with ``socseg_jax.host_devices``); on each, ``micro_batch`` windows
    go through the model at a time, and groups holding only the dummy windows that fill the
    last batch are skipped. Default: 1 on CPU (activations stay in cache: 1.2x faster than
    8 windows at once, and no work on dummy windows), all of a device's windows on
    accelerators, which want large batches.
    ``trace_counts`` records how often each internal step was traced, i.e. compiled (one per
    batch shape for ``apply``, one per band shape for the others).
    """

    def __init__(
        self,
        apply_fn: ApplyFn | KeyedApply,
        patch_size: int = 256,
        stride: int | None = None,
        batch_size: int = 8,
        blending: Literal["uniform", "gaussian"] = "gaussian",
        pad_mode: str = "reflect",
        *,
        sigma_scale: float = 1.0 / 8.0,
        size_bucket: int = 128,
        jit_apply: bool = True,
        tta: str = "none",
        max_band_pixels: int = 1 << 24,
        seed: int = 0,
        micro_batch: int | None = None,
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
        if tta not in TTA_TRANSFORMS:
            raise ValueError(f"tta must be one of {sorted(TTA_TRANSFORMS)}, got {tta!r}")
        if max_band_pixels < 1:
            raise ValueError(f"max_band_pixels must be >= 1, got {max_band_pixels}")
        devices = _window_devices(batch_size)
        per_device = batch_size // len(devices)
        if micro_batch is None:
            micro_batch = 1 if jax.default_backend() == "cpu" else per_device
        if micro_batch < 1 or per_device % micro_batch:
            raise ValueError(
                f"micro_batch must divide the windows per device "
                f"({batch_size} over {len(devices)} devices), got {micro_batch}"
            )
        self.patch_size = patch_size
        self.stride = stride
        self.batch_size = batch_size
        self.blending = blending
        self.pad_mode = pad_mode
        self.size_bucket = size_bucket
        self.tta = tta
        self.max_band_pixels = max_band_pixels
        self.weights = blending_weights(patch_size, blending, sigma_scale)
        self.trace_counts: collections.Counter[str] = collections.Counter()
        self._weights_dev = jnp.asarray(self.weights)
        self.seed = seed
        self.micro_batch = micro_batch

        counts = self.trace_counts
        patch = patch_size
        keyed = apply_fn if isinstance(apply_fn, KeyedApply) else None
        transforms = np.asarray(TTA_TRANSFORMS[tta], np.int32)

        def one_pass(batch: jax.Array, keys: jax.Array) -> jax.Array:
            return keyed(batch, keys) if keyed is not None else apply_fn(batch)

        def run_windows(batch: jax.Array, keys: jax.Array) -> jax.Array:
            """Probabilities of a group of windows, averaged over the TTA transforms."""
            if len(transforms) == 1:
                return one_pass(batch, keys).astype(jnp.float32)

            def body(total: jax.Array, index: jax.Array) -> tuple[jax.Array, None]:
                flags = jnp.asarray(transforms)[index]
                pass_keys = jax.vmap(jax.random.fold_in, (0, None))(keys, index)
                probs = one_pass(_transform(batch, flags, inverse=False), pass_keys)
                return total + _transform(probs.astype(jnp.float32), flags, inverse=True), None

            first = one_pass(batch, jax.vmap(jax.random.fold_in, (0, None))(keys, 0))
            total, _ = jax.lax.scan(
                body, first.astype(jnp.float32), jnp.arange(1, len(transforms))
            )
            return total / len(transforms)

        def apply(
            batch: jax.Array, positions: jax.Array, base_key: jax.Array, valid: jax.Array
        ) -> jax.Array:
            counts["apply"] += 1
            keys = jax.vmap(
                lambda pos: jax.random.fold_in(jax.random.fold_in(base_key, pos[0]), pos[1])
            )(positions)
            micro = self.micro_batch
            if micro == len(batch):
                return run_windows(batch, keys)
            groups = len(batch) // micro

            def group(inputs: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
                windows, window_keys, window_valid = inputs
                # Groups of dummy windows (the tail of the last batch) are skipped, not run.
                return jax.lax.cond(
                    window_valid.any(),
                    run_windows,
                    lambda b, k: jnp.zeros(out_shape.shape, jnp.float32),
                    windows,
                    window_keys,
                )

            out_shape = jax.eval_shape(run_windows, batch[:micro], keys[:micro])
            split = (batch, keys, valid)
            probs = jax.lax.map(
                group, jax.tree.map(lambda v: v.reshape(groups, micro, *v.shape[1:]), split)
            )
            return probs.reshape(len(batch), *probs.shape[2:])

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

        def finish(
            prob_sum: jax.Array, weight_sum: jax.Array, kinds: tuple[str, ...]
        ) -> dict[str, jax.Array]:
            counts["normalise"] += 1
            safe = jnp.where(weight_sum > 0, weight_sum, 1.0)
            probs = prob_sum / safe[..., None]
            out = {"prob_sum": prob_sum + 0.0, "weight_sum": weight_sum + 0.0, "proba": probs}
            out["labels"] = jnp.argmax(prob_sum, axis=-1).astype(jnp.uint8)
            out["entropy"], out["max_prob"] = uncertainty_maps(probs)
            return {kind: out[kind] for kind in kinds}

        def shift(
            prob_sum: jax.Array, weight_sum: jax.Array, rows: jax.Array
        ) -> tuple[jax.Array, jax.Array]:
            """Move rows [rows, A) to the top (finished rows leave), zeros below."""
            counts["shift"] += 1
            height = prob_sum.shape[0]
            acc = jnp.concatenate([prob_sum, jnp.zeros_like(prob_sum)])
            wsum = jnp.concatenate([weight_sum, jnp.zeros_like(weight_sum)])
            acc = jax.lax.dynamic_slice(acc, (rows, 0, 0), prob_sum.shape)
            return acc, jax.lax.dynamic_slice(wsum, (rows, 0), (height, weight_sum.shape[1]))

        self._window_sharding = None
        if len(devices) > 1:  # split every batch of windows over the local devices
            mesh = jax.sharding.Mesh(np.asarray(devices), ("windows",))
            spec = jax.sharding.PartitionSpec("windows")
            self._window_sharding = jax.sharding.NamedSharding(mesh, spec)
            self._home = devices[0]
            apply = jax.shard_map(
                apply,
                mesh=mesh,
                in_specs=(spec, spec, jax.sharding.PartitionSpec(), spec),
                out_specs=spec,
                check_vma=False,
            )
        self._apply = jax.jit(apply) if jit_apply else apply
        self._extract = jax.jit(extract)
        self._accumulate = jax.jit(accumulate, donate_argnums=(0, 1))
        self._finish = jax.jit(finish, static_argnums=2)
        self._shift = jax.jit(shift, donate_argnums=(0, 1))

    # -- geometry ---------------------------------------------------------------------------

    def _pad(self, image: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """(H', W', C) float32 image padded (centred) to at least one patch; its offset."""
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
        return image, (top, left)

    def band_plan(self, padded_h: int, canvas_w: int) -> tuple[int, list[tuple[int, int]]]:
        """Accumulator height and the tile-row ranges [i0, i1) of each band.

        One band covers the whole (bucketed) height when its accumulator fits in
        ``max_band_pixels``; otherwise bands of R tile rows use an accumulator of
        ``(R - 1) * stride + patch`` rows, of which ``R * stride`` rows are finished per band.
        """
        p, s = self.patch_size, self.stride
        rows = len(tile_starts(padded_h, p, s))
        canvas_h = _round_up(padded_h, self.size_bucket)
        if canvas_h * canvas_w <= self.max_band_pixels:
            return canvas_h, [(0, rows)]
        per_band = max(1, (self.max_band_pixels // canvas_w - p) // s + 1)
        if per_band >= rows:
            return canvas_h, [(0, rows)]
        bands = [(i, min(i + per_band, rows)) for i in range(0, rows, per_band)]
        return (per_band - 1) * s + p, bands

    # -- band-wise prediction ---------------------------------------------------------------

    def predict_maps(
        self,
        image: np.ndarray,
        kinds: Sequence[str] = ("labels",),
        dtypes: dict[str, np.dtype] | None = None,
    ) -> dict[str, np.ndarray]:
        """Maps of the image, computed band by band: any of :data:`MAP_KINDS`.

        ``labels`` (H, W) uint8, ``proba`` (H, W, K), ``entropy`` and ``max_prob`` (H, W)
        (uncertainty of the blended probabilities), ``prob_sum`` / ``weight_sum`` (the raw
        blending sums). Host arrays are float32 unless ``dtypes`` says otherwise (e.g.
        float16 to halve the memory of huge probability maps).
        """
        kinds = tuple(kinds)
        unknown = [k for k in kinds if k not in MAP_KINDS]
        if unknown or not kinds:
            raise ValueError(f"map kinds must be a non-empty subset of {MAP_KINDS}, got {kinds}")
        dtypes = dtypes or {}
        h, w = np.shape(image)[:2]
        padded, (top, left) = self._pad(image)
        padded_h, padded_w, channels = padded.shape
        p, b = self.patch_size, self.batch_size
        canvas_w = _round_up(padded_w, self.size_bucket)
        height, bands = self.band_plan(padded_h, canvas_w)
        ys = tile_starts(padded_h, p, self.stride)
        xs = tile_starts(padded_w, p, self.stride)
        outputs: dict[str, np.ndarray] = {}
        prob_sum = weight_sum = None
        pending: tuple[dict[str, jax.Array], int, int] | None = None
        base_key = jax.random.key(self.seed)

        for i0, i1 in bands:
            origin = int(ys[i0])
            slab = np.zeros((height, canvas_w, channels), np.float32)
            rows = padded[origin : origin + height]
            slab[: len(rows), :padded_w] = rows
            slab_dev = jax.device_put(slab)
            grid = np.stack(np.meshgrid(ys[i0:i1], xs, indexing="ij"), -1).reshape(-1, 2)
            num_tiles = len(grid)
            total = _round_up(num_tiles, b)
            positions = np.zeros((total, 2), np.int32)
            positions[:num_tiles] = grid
            local = positions - np.array([origin, 0], np.int32)
            local[num_tiles:] = 0
            tile_weights = (np.arange(total) < num_tiles).astype(np.float32)
            for first in range(0, total, b):
                batch_local = local[first : first + b]
                window_inputs = (
                    self._extract(slab_dev, batch_local),
                    positions[first : first + b],
                    tile_weights[first : first + b] > 0,
                )
                if self._window_sharding is not None:
                    window_inputs = jax.device_put(window_inputs, self._window_sharding)
                windows, window_positions, valid = window_inputs
                probs = self._apply(windows, window_positions, base_key, valid)
                if self._window_sharding is not None:
                    probs = jax.device_put(probs, jax.sharding.SingleDeviceSharding(self._home))
                if prob_sum is None:
                    expected = (b, p, p)
                    if probs.ndim != 4 or tuple(probs.shape[:3]) != expected:
                        raise ValueError(
                            f"apply_fn must return (B, P, P, K) = {expected} + (K,), "
                            f"got {tuple(probs.shape)}"
                        )
                    prob_sum = jnp.zeros((height, canvas_w, probs.shape[-1]), jnp.float32)
                    weight_sum = jnp.zeros((height, canvas_w), jnp.float32)
                prob_sum, weight_sum = self._accumulate(
                    prob_sum,
                    weight_sum,
                    probs,
                    batch_local,
                    tile_weights[first : first + b],
                    self._weights_dev,
                )
            if pending is not None:  # fetch the previous band while this one computes
                self._store(outputs, *pending, (top, left, h, w), dtypes)
            finished = (int(ys[i1]) if i1 < len(ys) else padded_h) - origin
            pending = (self._finish(prob_sum, weight_sum, kinds), origin, finished)
            if i1 < len(ys):
                prob_sum, weight_sum = self._shift(prob_sum, weight_sum, np.int32(finished))
        assert pending is not None
        self._store(outputs, *pending, (top, left, h, w), dtypes)
        return outputs

    @staticmethod
    def _store(
        outputs: dict[str, np.ndarray],
        maps: dict[str, jax.Array],
        origin: int,
        finished: int,
        crop: tuple[int, int, int, int],
        dtypes: dict[str, np.dtype],
    ) -> None:
        """Copy the finished rows [origin, origin + finished) of a band into the host maps."""
        top, left, h, w = crop
        first, last = max(origin, top), min(origin + finished, top + h)
        if last <= first:
            return
        for kind, value in jax.device_get(maps).items():
            if kind not in outputs:
                dtype = dtypes.get(kind, np.uint8 if kind == "labels" else np.float32)
                outputs[kind] = np.empty((h, w, *value.shape[2:]), dtype)
            outputs[kind][first - top : last - top] = value[
                first - origin : last - origin, left : left + w
            ]

    # -- public API -------------------------------------------------------------------------

    def predict_sums(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unnormalised ``sum(w * p)`` (H, W, K) and ``sum(w)`` (H, W), e.g. to merge models."""
        maps = self.predict_maps(image, ("prob_sum", "weight_sum"))
        return maps["prob_sum"], maps["weight_sum"]

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Blended class probabilities (H, W, K) float32 for an (H, W) or (H, W, C) image."""
        return self.predict_maps(image, ("proba",))["proba"]

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Label map (H, W) uint8: argmax of the blended probabilities (computed on device)."""
        return self.predict_maps(image, ("labels",))["labels"]


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


def make_ensemble_apply_fn(models: Sequence[nnx.Module], mc_samples: int = 0) -> KeyedApply:
    """Mean softmax of an ensemble of same-architecture models, optionally with MC dropout.

    The members' weights are stacked and scanned over, so the model compiles once whatever
    the ensemble size (the study averaged 10 models). ``mc_samples`` > 0 runs each member
    that many times in train mode (dropout active) with a key per window and pass.
    """
    if not models:
        raise ValueError("an ensemble needs at least one model")
    if mc_samples < 0:
        raise ValueError(f"mc_samples must be >= 0, got {mc_samples}")
    splits = [nnx.split(model) for model in models]
    graphdef = splits[0][0]
    if any(g != graphdef for g, _ in splits[1:]):
        raise ValueError("ensemble members must share one architecture (same model config)")
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *(state for _, state in splits))
    passes = max(mc_samples, 1)

    def member_probs(state: nnx.State, member: jax.Array, batch: jax.Array, keys: jax.Array):
        module = nnx.merge(graphdef, state)
        if mc_samples:
            module.train()
        else:
            module.eval()

        def one(index: jax.Array) -> jax.Array:
            if mc_samples:
                pass_keys = jax.vmap(
                    lambda k: jax.random.fold_in(jax.random.fold_in(k, member), index)
                )(keys)
                logits = jax.vmap(lambda x, k: module(x[None], rngs=k)[0])(batch, pass_keys)
            else:
                logits = module(batch)
            return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

        total = one(jnp.int32(0))
        if passes > 1:
            total, _ = jax.lax.scan(
                lambda acc, index: (acc + one(index), None), total, jnp.arange(1, passes)
            )
        return total

    @jax.jit
    def forward(stacked: nnx.State, batch: jax.Array, keys: jax.Array) -> jax.Array:
        def body(total: jax.Array, inputs: tuple[nnx.State, jax.Array]):
            state, member = inputs
            return total + member_probs(state, member, batch, keys), None

        first = jax.tree.map(lambda leaf: leaf[0], stacked)
        total = member_probs(first, jnp.int32(0), batch, keys)
        if len(models) > 1:
            rest = jax.tree.map(lambda leaf: leaf[1:], stacked)
            total, _ = jax.lax.scan(body, total, (rest, jnp.arange(1, len(models))))
        return total / (len(models) * passes)

    return KeyedApply(functools.partial(forward, stacked))


__all__ = [
    "KeyedApply",
    "MAP_KINDS",
    "SlidingWindowPredictor",
    "TTA_TRANSFORMS",
    "blending_weights",
    "make_ensemble_apply_fn",
    "make_model_apply_fn",
    "uncertainty_maps",
]
