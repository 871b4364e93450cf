"""Whole-image prediction by overlapping sliding windows with blended softmax outputs.

The study predicted full 2856x4096 SEM images with 256-px windows and averaged overlapping
softmax outputs; this does the same on device, in the spirit of MONAI's
``sliding_window_inference`` (the predictor holds settings; the work is done by the jitted
functions of :mod:`socseg_jax.inference.windows` along the plan of
:mod:`socseg_jax.inference.band_plan`), with bounded memory for any image size:

1. the image is padded (reflect by default) to at least one patch, centred; its width is
   rounded up to ``size_bucket`` so that images of similar sizes share compiled programs;
2. the canvas is processed in row bands: each band's input rows are copied to the device,
   patches are cut there in fixed-size batches (the last batch is filled with zero-weight
   dummy tiles), so the model compiles once per batch shape;
3. ``weight * probability`` and ``weight`` are accumulated on device (donated buffers); rows
   no later window touches are finished on device (labels, probabilities, uncertainty) and
   leave it, the overlap rows slide up for the next band. Device and host working memory are
   bounded by ``max_band_pixels``, not by the image size.

Options: test-time augmentation (``tta``: flips or the 8 flips/rotations of a square),
ensembles and Monte-Carlo dropout (:mod:`socseg_jax.inference.model_apply`). All of them
average softmax outputs per window, which the (linear) blending then averages over windows, so
the uncertainty maps (predictive entropy, max probability) come from the final mean.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from data_prep.patches import tile_starts
from socseg_jax.core.errors import UserError
from socseg_jax.inference import band_plan as plan
from socseg_jax.inference import windows
from socseg_jax.inference.class_bias import class_weights
from socseg_jax.inference.windows import MAP_KINDS, TTA_TRANSFORMS, ApplyFn, KeyedApply


class SlidingWindowPredictor:
    """Predict class probabilities for images of any size with overlapping windows.

    ``apply_fn`` maps a float32 batch ``(B, P, P, C)`` to class probabilities ``(B, P, P, K)``
    (for a model, softmax of the logits; see ``model_apply.make_model_apply_fn``), or is a
    :class:`KeyedApply` taking per-window PRNG keys too (``make_ensemble_apply_fn``).
    Images are used as given (normalise them as in training). The model call is wrapped in
    ``jax.jit`` unless ``jit_apply=False``. ``tta`` averages over flips ('flips', 4 passes) or
    flips and transposes ('d4', 8 passes). ``max_band_pixels`` bounds the band accumulator
    (rows x canvas width); taller images are processed in row bands. ``seed`` seeds the
    per-window keys of a :class:`KeyedApply`; it may be changed between calls.
    Windows are split over the local devices (as many as divide ``batch_size``; on CPU, one
    per core with ``socseg_jax.runtime.host_devices``); each model call takes ``micro_batch``
    windows per device. Default: 1 on CPU (activations stay in cache: faster than 8 windows at
    once, and a batch's tail of dummy windows is never run), all of a device's
    ``batch_size`` share on accelerators, which want large batches. The calls are dispatched
    from the host, not looped inside one program: an in-program loop with a skip of dummy
    windows ran 1024-px windows slower on CPU (benchmarks/RESULTS.md).
    ``trace_counts["apply"]`` records how often the model call was traced (once per batch
    shape); the window functions count theirs in ``windows.TRACE_COUNTS``.
    ``class_bias`` (K,): the class calibration's offsets (``inference.class_bias``), applied
    to the blended probabilities of every map but ``prob_sum``/``weight_sum``; it may be
    changed between calls. None: none.
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
        class_bias: np.ndarray | None = None,
    ):
        stride = patch_size // 2 if stride is None else stride
        if patch_size < 1 or not 1 <= stride <= patch_size:
            raise UserError(f"need 1 <= stride <= patch_size, got {stride}, {patch_size}")
        if batch_size < 1 or size_bucket < 1:
            raise UserError(
                f"batch_size and size_bucket must be >= 1: {batch_size}, {size_bucket}"
            )
        if pad_mode not in plan.PAD_MODES:
            raise UserError(f"pad_mode must be one of {plan.PAD_MODES}, got {pad_mode!r}")
        if tta not in TTA_TRANSFORMS:
            raise UserError(f"tta must be one of {sorted(TTA_TRANSFORMS)}, got {tta!r}")
        if max_band_pixels < 1:
            raise UserError(f"max_band_pixels must be >= 1, got {max_band_pixels}")
        devices = windows.window_devices(batch_size)
        per_device = batch_size // len(devices)
        if micro_batch is None:
            micro_batch = 1 if jax.default_backend() == "cpu" else per_device
        if micro_batch < 1 or per_device % micro_batch:
            raise UserError(
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
        self.seed = seed
        self.micro_batch = micro_batch
        self._call_batch = micro_batch * len(devices)  # windows per model call
        self.sigma_scale = sigma_scale
        self.weights = windows.blending_weights(patch_size, blending, sigma_scale)
        self.trace_counts: collections.Counter[str] = collections.Counter()
        self.class_bias = class_bias
        self._weights_dev = {patch_size: jnp.asarray(self.weights)}
        self._devices = devices
        self._apply = windows.make_window_apply(
            apply_fn, tta, devices, self.trace_counts, jit_apply
        )
        self._window_sharding = None
        if len(devices) > 1:
            mesh = jax.sharding.Mesh(np.asarray(devices), ("windows",))
            spec = jax.sharding.PartitionSpec("windows")
            self._window_sharding = jax.sharding.NamedSharding(mesh, spec)

    def window_size(self, height: int, width: int) -> int:
        """The window for an image: ``patch_size``, or less for an image smaller than it (its
        longer side rounded up to ``size_bucket``), so small images are not padded to a large
        window. Windows far larger than the training patch are fine: the net is fully
        convolutional, and each pixel is then computed about once."""
        return min(self.patch_size, plan.round_up(max(height, width), self.size_bucket))

    def band_plan(
        self, padded_h: int, canvas_w: int, patch: int | None = None
    ) -> tuple[int, list[tuple[int, int]]]:
        """Accumulator height and tile-row ranges of each band (see ``band_plan.band_plan``)."""
        patch = patch or self.patch_size
        return plan.band_plan(
            padded_h, canvas_w, patch, min(self.stride, patch), self.size_bucket,
            self.max_band_pixels,
        )

    def predict_maps(
        self,
        image: np.ndarray,
        kinds: Sequence[str] = ("labels",),
        dtypes: dict[str, np.dtype] | None = None,
    ) -> dict[str, np.ndarray]:
        """Maps of the image, computed band by band: any of :data:`MAP_KINDS`.

        ``labels`` (H, W) uint8, ``proba`` (H, W, K), ``entropy`` and ``max_prob`` (H, W)
        (uncertainty of the blended probabilities), ``prob_sum`` / ``weight_sum`` (the raw
        blending sums), ``class_row_sums`` (H, K) float64: the probabilities summed along each
        row (image-level expected fractions without keeping the (H, W, K) map). Host arrays
        are float32 unless ``dtypes`` says otherwise (e.g. float16 to halve the memory of huge
        probability maps).
        """
        kinds = tuple(kinds)
        unknown = [k for k in kinds if k not in MAP_KINDS]
        if unknown or not kinds:
            raise UserError(f"map kinds must be a non-empty subset of {MAP_KINDS}, got {kinds}")
        h, w = np.shape(image)[:2]
        patch = self.window_size(h, w)
        stride = min(self.stride, patch)
        padded, (top, left) = plan.pad_to_patch(image, patch, self.pad_mode)
        padded_h, padded_w, _ = padded.shape
        canvas_w = plan.round_up(padded_w, self.size_bucket)
        height, bands = self.band_plan(padded_h, canvas_w, patch)
        ys = tile_starts(padded_h, patch, stride)
        xs = tile_starts(padded_w, patch, stride)
        outputs: dict[str, np.ndarray] = {}
        sums: tuple[jax.Array, jax.Array] | None = None
        pending: tuple[dict[str, jax.Array], int, int] | None = None
        base_key = jax.random.key(self.seed)
        phase_weights = None
        crop = (top, left, h, w)
        for i0, i1 in bands:
            origin = int(ys[i0])
            slab = np.zeros((height, canvas_w, padded.shape[2]), np.float32)
            rows = padded[origin : origin + height]
            slab[: len(rows), :padded_w] = rows
            grid = np.stack(np.meshgrid(ys[i0:i1], xs, indexing="ij"), -1).reshape(-1, 2)
            sums = self._accumulate_band(jax.device_put(slab), grid, origin, base_key, sums,
                                         patch)
            if phase_weights is None:  # the number of classes is known from the first band
                phase_weights = jnp.asarray(class_weights(self.class_bias, sums[0].shape[-1]))
            if pending is not None:  # fetch the previous band while this one computes
                _store(outputs, *pending, crop, dtypes or {})
            finished = (int(ys[i1]) if i1 < len(ys) else padded_h) - origin
            pending = (windows.finish_maps(*sums, kinds, phase_weights), origin, finished)
            if i1 < len(ys):
                sums = windows.shift_band(*sums, np.int32(finished))
        assert pending is not None
        _store(outputs, *pending, crop, dtypes or {})
        return outputs

    def _accumulate_band(
        self,
        slab: jax.Array,
        grid: np.ndarray,
        origin: int,
        base_key: jax.Array,
        sums: tuple[jax.Array, jax.Array] | None,
        patch: int,
    ) -> tuple[jax.Array, jax.Array]:
        """Runs every window of one band (``grid``: image positions) into the band sums."""
        p, b = patch, self._call_batch
        if p not in self._weights_dev:
            self._weights_dev[p] = jnp.asarray(
                windows.blending_weights(p, self.blending, self.sigma_scale)
            )
        num_tiles = len(grid)
        total = plan.round_up(num_tiles, b)
        positions = np.zeros((total, 2), np.int32)
        positions[:num_tiles] = grid
        local = positions - np.array([origin, 0], np.int32)
        local[num_tiles:] = 0
        tile_weights = (np.arange(total) < num_tiles).astype(np.float32)
        for first in range(0, total, b):
            batch_local = local[first : first + b]
            window_inputs = (
                windows.extract_windows(slab, batch_local, p),
                positions[first : first + b],
            )
            if self._window_sharding is not None:
                window_inputs = jax.device_put(window_inputs, self._window_sharding)
            probs = self._apply(*window_inputs, base_key)
            if self._window_sharding is not None:
                probs = jax.device_put(probs, jax.sharding.SingleDeviceSharding(self._devices[0]))
            if sums is None:
                if probs.ndim != 4 or tuple(probs.shape[:3]) != (b, p, p):
                    raise UserError(
                        f"apply_fn must return (B, P, P, K) = {(b, p, p)} + (K,), "
                        f"got {tuple(probs.shape)}"
                    )
                sums = (
                    jnp.zeros((slab.shape[0], slab.shape[1], probs.shape[-1]), jnp.float32),
                    jnp.zeros(slab.shape[:2], jnp.float32),
                )
            sums = windows.accumulate_windows(
                *sums, probs, batch_local, tile_weights[first : first + b], self._weights_dev[p]
            )
        assert sums is not None
        return sums

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
        rows = value[first - origin : last - origin, left : left + w]
        if kind == "class_row_sums":
            rows = rows.sum(axis=1, dtype=np.float64)
        if kind not in outputs:
            default = {"labels": np.uint8, "class_row_sums": np.float64}.get(kind, np.float32)
            outputs[kind] = np.empty((h, *rows.shape[1:]), dtypes.get(kind, default))
        outputs[kind][first - top : last - top] = rows
