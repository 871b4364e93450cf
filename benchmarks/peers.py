"""socseg_jax against the peers a user would pick instead, each configured as its best users
would, measured side by side in one run.

Peers (extra `bench`: torch, monai, keras), every torch row with `torch.set_num_threads(cores)`:

* PyTorch: the same U-Net (same layers, dropout placement and Keras-like initialisation:
  truncated he_normal 3x3 convs, glorot_uniform transposed convs and head, zero biases),
  Adam 1e-3 and cross-entropy, in f32 and with bf16 autocast, in three forms:
  `channels_last` (model and inputs; oneDNN's preferred CPU layout), `channels_last` +
  `torch.compile` (inductor), and NCHW (the default layout, kept as a reference row);
  inference under `torch.inference_mode()`, compiled inference with inductor's weight freezing;
* MONAI `sliding_window_inference` on that network, in the same three forms, with the
  project's settings (the same windows and overlap, gaussian blending with sigma 1/8, reflect
  padding, softmax);
* Keras 3 on the JAX backend running the study's model definition (`train_on_batch`).

Every ratio is the project over the FASTEST peer of its group in this run (fastest by median;
`vs_best_peer_each_round` also gives the ratio against the best peer of every round), per
interleaved round; median and min-max over the rounds are reported. Same batch sizes, shapes and
cores (the project runs as `launch.py` runs it: one XLA CPU device per core, each batch split
over them); compilation and warm-up are excluded (reported apart as setup seconds).

Project rows besides the benchmark job's: its default inference (the sliding window with
`configs/common.py` predict_config) and large windows (patch P, stride P - 2 x the network's
one-sided receptive field, one window per device per call), each against the fastest MONAI at
50 % overlap.

python benchmarks/peers.py                   # ~10 min on a 2-core CPU: 1024x1536 image, stride 128
python benchmarks/peers.py --sliding-strides 128 64 --no-compile   # + the study's stride 64
python benchmarks/peers.py --preset full     # the issue's sizes (batch 32, a 2856x4096 image)
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from ml_collections import ConfigDict  # noqa: E402
from torch import nn  # noqa: E402

# Project internals: every import of the project is here.
from configs import benchmark as benchmark_config  # noqa: E402
from configs import common as common_config  # noqa: E402
from socseg_jax import host_devices  # noqa: E402

# As launch.py does for every job: one XLA CPU device per core, set before jax starts.
host_devices.configure(benchmark_config.get_config("quick"))

import jax  # noqa: E402
from flax import nnx  # noqa: E402

from data_prep import io  # noqa: E402
from socseg_jax import benchmark as bench  # noqa: E402
from socseg_jax.models.unet import UNet, UNetConfig  # noqa: E402
from socseg_jax.predict import SlidingWindowPredictor, make_model_apply_fn  # noqa: E402

# What peers.py changes in the benchmark job's presets: the reference sliding-window image.
PEER_PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"sliding_image_shape": (1024, 1536), "sliding_strides": (128,)},
    "full": {},
}
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
ISA_FLAGS = ("sse4_2", "fma", "avx2", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
             "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


_TRUNCATED_NORMAL_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


class TorchConvBlock(nn.Module):
    """3x3 conv + ReLU -> dropout -> 3x3 conv + ReLU, as the study's Keras block."""

    def __init__(self, cin: int, cout: int, rate: float):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.dropout = nn.Dropout(rate)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(self.dropout(torch.relu(self.conv1(x)))))


class TorchUNet(nn.Module):
    """The project's U-Net (socseg_jax.models.unet.UNet) layer for layer, NCHW, logits out."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        feats = config.features
        widths = [config.in_channels, *feats]
        self.encoder = nn.ModuleList(
            TorchConvBlock(widths[i], feats[i], r) for i, r in enumerate(config.encoder_dropout)
        )
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level, rate in enumerate(config.decoder_dropout):
            deeper, width = feats[-1 - level], feats[-2 - level]
            self.upsample.append(nn.ConvTranspose2d(deeper, width, 2, stride=2))
            self.decoder.append(TorchConvBlock(2 * width, width, rate))
        self.head = nn.Conv2d(feats[0], config.num_classes, 1)
        self._initialise()

    def _initialise(self) -> None:
        """Keras-like, as the Flax model: truncated he_normal 3x3 kernels, glorot_uniform
        transposed-conv and head kernels (torch's fans for these equal Keras'), zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
                fan_in = module.weight[0].numel()
                std = math.sqrt(2.0 / fan_in) / _TRUNCATED_NORMAL_STD
                nn.init.trunc_normal_(module.weight, 0.0, std, -2 * std, 2 * std)
            elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(module.weight)
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x)
            if level < len(self.encoder) - 1:
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
        for level, (up, block) in enumerate(zip(self.upsample, self.decoder, strict=True)):
            x = block(torch.cat([up(x), skips[-1 - level]], dim=1))
        return self.head(x)


def receptive_field(config: UNetConfig) -> int:
    """Receptive field (pixels, full width) of the U-Net: 3x3 convs, 2x2 pools, 2x2 stride-2
    transposed convs (which add none): 200 for the study's 5-level network."""
    depth = len(config.features)
    encoder = sum(2 * 2 * 2**level for level in range(depth))  # two 3x3 convs per level
    pools = sum(2**level for level in range(depth - 1))
    decoder = sum(2 * 2 * 2**level for level in range(depth - 1))
    return 1 + encoder + pools + decoder


def context_margin(config: UNetConfig) -> int:
    """One-sided receptive field: pixels of context a window border lacks (100 here)."""
    return receptive_field(config) // 2


def _torch_batch(batch_size: int, patch: int, config: UNetConfig, seed: int):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch_size, config.in_channels, patch, patch), np.uint8)
    labels = rng.integers(0, config.num_classes, (batch_size, patch, patch), np.uint8)
    return torch.from_numpy(images), torch.from_numpy(labels)


def _compile(module: Callable, inference: bool) -> Callable:
    """torch.compile (inductor, static shapes); inference graphs with frozen, prepacked weights."""
    return torch.compile(module, dynamic=False, options={"freezing": inference})


def torch_train_runner(
    config: UNetConfig,
    patch: int,
    batch_size: int,
    steps: int,
    bf16: bool,
    layout: str = "channels_last",
    compiled: bool = False,
    seed: int = 0,
) -> bench.Runner:
    """`steps` PyTorch training steps (uint8 → float in the step, as the JAX step), model and
    inputs in `layout`; `compiled`: the model under torch.compile, loss and Adam as usual."""
    fmt = LAYOUTS[layout]
    torch.manual_seed(seed)
    model = TorchUNet(config).train().to(memory_format=fmt)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    forward = _compile(model, inference=False) if compiled else model
    images, labels = _torch_batch(batch_size, patch, config, seed)
    images, labels = images.contiguous(memory_format=fmt), labels.long()

    def run() -> None:
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = forward(images.float() / 255.0)
            loss = nn.functional.cross_entropy(logits.float(), labels)
            loss.backward()
            optimizer.step()

    start = time.perf_counter()
    run()  # first step: allocator, oneDNN primitives, and the compilation when compiled
    name = "torch_train" + ("_bf16_autocast" if bf16 else "") + f"_{layout}"
    name += "_compile" if compiled else ""
    return bench.Runner(
        name,
        run,
        batch_size * steps,
        "samples/s",
        time.perf_counter() - start,
        {"batch_size": batch_size, "layout": layout, "compiled": compiled},
    )


def torch_inference_model(config: UNetConfig, layout: str, compiled: bool, seed: int = 0):
    """An eval-mode TorchUNet in `layout` (optionally compiled), shared by the inference rows."""
    torch.manual_seed(seed)
    model = TorchUNet(config).eval().to(memory_format=LAYOUTS[layout])
    return _compile(model, inference=True) if compiled else model


def _suffix(layout: str, compiled: bool) -> str:
    return f"_{layout}" + ("_compile" if compiled else "")


def torch_inference_runner(
    model: Callable, config: UNetConfig, patch: int, batch_size: int, batches: int,
    layout: str, compiled: bool, seed: int = 0,
) -> bench.Runner:
    """`batches` forward passes (logits) of `batch_size` patches under inference_mode."""
    images = torch.from_numpy(np.random.default_rng(seed).random(
        (batch_size, config.in_channels, patch, patch), dtype=np.float32))
    images = images.contiguous(memory_format=LAYOUTS[layout])

    def run() -> None:
        with torch.inference_mode():
            for _ in range(batches):
                model(images)

    start = time.perf_counter()
    run()
    return bench.Runner(
        "torch_inference" + _suffix(layout, compiled), run, batch_size * batches, "patches/s",
        time.perf_counter() - start,
        {"batch_size": batch_size, "layout": layout, "compiled": compiled},
    )


def monai_sliding_runner(
    model: Callable,
    shape: tuple[int, int],
    patch: int,
    stride: int,
    batch_size: int,
    layout: str,
    compiled: bool,
    seed: int = 0,
) -> bench.Runner:
    """MONAI sliding_window_inference with the project's overlap and blending, softmax out,
    windows handed to the model in `layout`."""
    from monai.inferers import sliding_window_inference

    fmt = LAYOUTS[layout]
    image = torch.from_numpy(np.random.default_rng(seed).random(shape, dtype=np.float32))
    image = image[None, None]

    def predictor(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(x.contiguous(memory_format=fmt)), dim=1)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return sliding_window_inference(
                image,
                (patch, patch),
                batch_size,
                predictor,
                overlap=1.0 - stride / patch,
                mode="gaussian",
                sigma_scale=0.125,
                padding_mode="reflect",
            )

    start = time.perf_counter()
    run()  # also compiles the shape of the last, shorter batch
    return bench.Runner(
        f"monai_sliding_stride{stride}" + _suffix(layout, compiled),
        run,
        shape[0] * shape[1] / 1e6,
        "megapixels/s",
        time.perf_counter() - start,
        {"image": list(shape), "stride": stride, "batch_size": batch_size, "layout": layout,
         "compiled": compiled},
    )


def jax_predict_runner(
    config: UNetConfig, shape: tuple[int, int], predict: ConfigDict, name: str, seed: int = 0
) -> bench.Runner:
    """The project's SlidingWindowPredictor with a predict config (patch, stride, batch,
    blending, tta): blended probabilities of one (H, W) image."""
    model = UNet(config, rngs=nnx.Rngs(params=seed))
    predictor = SlidingWindowPredictor(
        make_model_apply_fn(model), patch_size=predict.patch_size, stride=predict.stride,
        batch_size=predict.batch_size, blending=predict.blending, tta=predict.get("tta", "none"),
    )
    image = np.random.default_rng(seed).random(shape, dtype=np.float32)
    start = time.perf_counter()
    predictor.predict_proba(image)  # compiles every batch and band shape of this image
    return bench.Runner(
        name, lambda: predictor.predict_proba(image), shape[0] * shape[1] / 1e6,
        "megapixels/s", time.perf_counter() - start,
        {"image": list(shape), **predict.to_dict()},
    )


def keras_study_unet(config: UNetConfig, patch: int) -> Any:
    """The study's Keras U-Net definition (Keras 3, any backend), softmax output."""
    import keras
    from keras import layers

    conv = dict(activation="relu", kernel_initializer="he_normal", padding="same")
    inputs = keras.Input((patch, patch, config.in_channels))
    x, skips = inputs, []
    for level, (width, rate) in enumerate(
        zip(config.features, config.encoder_dropout, strict=True)
    ):
        x = layers.Conv2D(width, (3, 3), **conv)(x)
        x = layers.Dropout(rate)(x)
        x = layers.Conv2D(width, (3, 3), **conv)(x)
        if level < config.depth - 1:
            skips.append(x)
            x = layers.MaxPooling2D((2, 2))(x)
    for level, rate in enumerate(config.decoder_dropout):
        width = config.features[-2 - level]
        x = layers.Conv2DTranspose(width, (2, 2), strides=(2, 2), padding="same")(x)
        x = layers.concatenate([x, skips[-1 - level]])
        x = layers.Conv2D(width, (3, 3), **conv)(x)
        x = layers.Dropout(rate)(x)
        x = layers.Conv2D(width, (3, 3), **conv)(x)
    outputs = layers.Conv2D(config.num_classes, (1, 1), activation="softmax")(x)
    return keras.Model(inputs, outputs)


def keras_train_runner(
    config: UNetConfig, patch: int, batch_size: int, steps: int, seed: int = 0
) -> bench.Runner:
    """`steps` Keras `train_on_batch` calls (Adam 1e-3, sparse categorical cross-entropy)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras_study_unet(config, patch)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    images, labels = _torch_batch(batch_size, patch, config, seed)
    x = np.moveaxis(images.numpy(), 1, -1).astype(np.float32) / 255.0
    y = labels.numpy()

    def run() -> None:
        for _ in range(steps):
            loss = model.train_on_batch(x, y)
        float(np.asarray(loss))

    start = time.perf_counter()
    run()  # compiles the Keras train function
    return bench.Runner(
        f"keras_{keras.backend.backend()}_train",
        run,
        batch_size * steps,
        "samples/s",
        time.perf_counter() - start,
        {"batch_size": batch_size},
    )


TORCH_TRAIN_F32 = ("torch_train_channels_last", "torch_train_channels_last_compile",
                   "torch_train_nchw")
TORCH_TRAIN_BF16 = ("torch_train_bf16_autocast_channels_last", "torch_train_bf16_autocast_nchw")
TORCH_INFERENCE = ("torch_inference_channels_last", "torch_inference_channels_last_compile",
                   "torch_inference_nchw")
JAX_TRAIN = ("jax_train", "jax_train_bfloat16")
RATIOS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # name: (project, peers)
    "train_ratio_vs_torch": (("jax_train",), TORCH_TRAIN_F32),
    "train_bf16_ratio_vs_torch_bf16": (("jax_train_bfloat16",), TORCH_TRAIN_BF16),
    "train_best_ratio_vs_torch_best": (JAX_TRAIN, TORCH_TRAIN_F32 + TORCH_TRAIN_BF16),
    "train_ratio_vs_keras": (("jax_train",), ("keras_jax_train",)),
    "inference_ratio_vs_torch": (("jax_inference",), TORCH_INFERENCE),
    "pipeline_ratio": (("pipeline",), JAX_TRAIN + TORCH_TRAIN_F32 + TORCH_TRAIN_BF16),
    "pipeline_ratio_vs_jax_train": (("pipeline",), ("jax_train",)),
    # Peer against peer, for the reader: what the layout, compilation and bf16 buy.
    "torch_bf16_over_f32": (TORCH_TRAIN_BF16, TORCH_TRAIN_F32),
    "jax_bf16_over_f32": (("jax_train_bfloat16",), ("jax_train",)),
    "torch_train_channels_last_over_nchw": (("torch_train_channels_last",),
                                            ("torch_train_nchw",)),
    "torch_inference_channels_last_over_nchw": (("torch_inference_channels_last",),
                                                ("torch_inference_nchw",)),
}


def monai_names(stride: int) -> tuple[str, ...]:
    """The MONAI rows at one stride, every layout and compilation."""
    return tuple(f"monai_sliding_stride{stride}" + _suffix(layout, compiled)
                 for layout, compiled in (("channels_last", False), ("channels_last", True),
                                          ("nchw", False)))


def fastest(results: dict[str, dict], names: Sequence[str]) -> str | None:
    """The name, among `names` measured, with the highest median rate."""
    present = [n for n in names if n in results]
    return max(present, key=lambda n: results[n]["median"]) if present else None


def ratio_vs_fastest(
    results: dict[str, dict], project: Sequence[str], peers: Sequence[str]
) -> dict[str, Any] | None:
    """Per-round ratio of the fastest of `project` over the fastest of `peers` (by median),
    summarized; plus, stricter, the ratio against the best peer of every round."""
    top, peer = fastest(results, project), fastest(results, peers)
    if top is None or peer is None:
        return None
    ours = results[top]["values"]
    present = [n for n in peers if n in results]
    best_each = [max(results[n]["values"][i] for n in present) for i in range(len(ours))]
    return bench.paired_ratio(ours, results[peer]["values"]) | {
        "project": top,
        "peer": peer,
        "peers": present,
        "vs_best_peer_each_round": bench.paired_ratio(ours, best_each),
    }


def cpu_info() -> dict[str, Any]:
    """CPU model, family/model/stepping and the ISA flags that matter for convolutions."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    oneDNN = re.search(r"oneDNN v([\d.]+)|MKL-DNN v([\d.]+)", torch.__config__.show())
    return {
        "model_name": fields.get("model name", "unknown"),
        "vendor": fields.get("vendor_id", "unknown"),
        "family_model_stepping": [fields.get(k, "?") for k in ("cpu family", "model",
                                                               "stepping")],
        "hypervisor": "hypervisor" in flags,
        "isa": {flag: flag in flags for flag in ISA_FLAGS},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn": next((g for g in oneDNN.groups() if g), None) if oneDNN else None,
    }


def _build(name: str, make: Callable[[], bench.Runner], runners: list[bench.Runner],
           failures: dict[str, str]) -> None:
    """Builds a runner (compiling it); a failure is recorded, not fatal."""
    print(f"building {name}", flush=True)
    try:
        runners.append(make())
    except Exception as err:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
        failures[name] = f"{type(err).__name__}: {' '.join(str(err).split())[:500]}"
        print(f"  failed: {failures[name]}", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("quick", "full"), default="quick")
    parser.add_argument("--repetitions", type=int, default=0, help="0: the preset's (5)")
    parser.add_argument("--threads", type=int, default=host_devices.usable_cores(),
                        help="torch threads (default: every usable core)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "peers.json")
    parser.add_argument("--only", choices=("all", "sliding"), default="all",
                        help="sliding: only the sliding-window rows (JAX and MONAI)")
    parser.add_argument("--sliding-shape", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--sliding-strides", type=int, nargs="+", default=None,
                        help="the first is the headline sliding_ratio_vs_monai")
    parser.add_argument("--large-patches", type=int, nargs="*", default=[1024, 512],
                        help="project rows with these windows, stride P - 2 x context margin")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the pipeline's TFDS data goes (default: a temp folder)")
    return parser.parse_args()


def build_runners(args: argparse.Namespace, config: ConfigDict, workdir: Path,
                  failures: dict[str, str]) -> tuple[list[bench.Runner], dict[str, Any]]:
    """Every runner, project and peers interleaved in the list (measure rotates the order)."""
    b = config.benchmark
    model_config = UNetConfig.from_dict(config.model.to_dict())
    shape = tuple(b.sliding_image_shape)
    layouts = [("channels_last", False), ("nchw", False)]
    if not args.no_compile:
        layouts.insert(1, ("channels_last", True))
    runners: list[bench.Runner] = []
    if args.only == "sliding":
        for s in b.sliding_strides:
            _build(f"jax_sliding_stride{s}", lambda s=s: bench.sliding_runner(
                model_config, shape, b.patch_size, s, b.sliding_batch_size), runners, failures)
    else:
        runners += bench.jax_runners(config, workdir)
        train = (b.patch_size, b.train_batch_size, b.train_steps)
        for layout, compiled in layouts:
            _build("torch_train" + _suffix(layout, compiled), lambda lo=layout, c=compiled:
                   torch_train_runner(model_config, *train, False, lo, c), runners, failures)
        for layout in ("channels_last", "nchw"):
            _build(f"torch_train_bf16_autocast_{layout}", lambda lo=layout:
                   torch_train_runner(model_config, *train, True, lo), runners, failures)
        _build("keras_jax_train", lambda: keras_train_runner(model_config, *train), runners,
               failures)
    models = {}
    for layout, compiled in layouts:
        key = _suffix(layout, compiled)
        try:
            models[key] = torch_inference_model(model_config, layout, compiled)
        except Exception as err:  # noqa: BLE001
            failures["torch_model" + key] = f"{type(err).__name__}: {err}"
            continue
        if args.only != "sliding":
            _build("torch_inference" + key, lambda m=models[key], lo=layout, c=compiled:
                   torch_inference_runner(m, model_config, b.patch_size, b.inference_batch_size,
                                          b.inference_batches, lo, c), runners, failures)
        for s in b.sliding_strides:
            _build(f"monai_sliding_stride{s}" + key, lambda m=models[key], lo=layout, c=compiled,
                   s=s: monai_sliding_runner(m, shape, b.patch_size, s, b.sliding_batch_size, lo,
                                             c), runners, failures)
    # The project's default inference: predict_config as the segment job uses it.
    predict = common_config.predict_config()
    same = (predict.patch_size == b.patch_size and predict.stride in b.sliding_strides
            and predict.batch_size == b.sliding_batch_size and predict.blending == "gaussian"
            and predict.get("tta", "none") == "none")
    default = {"predict_config": predict.to_dict(),
               "runner": f"jax_sliding_stride{predict.stride}" if same else
               "jax_default_inference"}
    if not same:
        _build("jax_default_inference", lambda: jax_predict_runner(
            model_config, shape, predict, "jax_default_inference"), runners, failures)
    margin = context_margin(model_config)
    large = []
    for patch in args.large_patches:
        stride = patch - 2 * margin
        if stride < 1 or patch % 2 ** (len(model_config.features) - 1):
            failures[f"large_patch{patch}"] = f"patch {patch} too small or not a multiple of 16"
            continue
        cfg = ConfigDict({"patch_size": patch, "stride": stride, "batch_size": len(
            jax.local_devices()), "blending": "gaussian", "tta": "none"})
        name = f"jax_sliding_patch{patch}_stride{stride}"
        large.append(name)
        _build(name, lambda cfg=cfg, name=name: jax_predict_runner(
            model_config, shape, cfg, name), runners, failures)
    info = {"default_inference": default, "large_windows": large,
            "receptive_field": receptive_field(model_config), "context_margin": margin}
    return runners, info


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    config = benchmark_config.get_config(args.preset)
    b = config.benchmark
    for key, value in PEER_PRESETS[args.preset].items():
        b[key] = value
    if args.repetitions:
        b.repetitions = args.repetitions
    if args.sliding_shape:
        b.sliding_image_shape = tuple(args.sliding_shape)
    if args.sliding_strides:
        b.sliding_strides = tuple(args.sliding_strides)
    machine = bench.machine_info()
    failures: dict[str, str] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        runners, info = build_runners(args, config, args.workdir or Path(tmp), failures)
        built = time.perf_counter()
        print(f"measuring {len(runners)} workloads, {b.repetitions} interleaved rounds after "
              f"{b.warmup} warm-up", flush=True)
        seconds = bench.measure(runners, b.repetitions, b.warmup)
    results = {r.name: bench.rates(r, seconds[r.name]) for r in runners}
    ratios = {name: ratio_vs_fastest(results, ours, peers)
              for name, (ours, peers) in RATIOS.items()}
    half = b.patch_size // 2
    for s in b.sliding_strides:
        ratios[f"sliding_ratio_vs_monai_stride{s}"] = ratio_vs_fastest(
            results, (f"jax_sliding_stride{s}",), monai_names(s))
    ratios["sliding_ratio_vs_monai"] = ratios[f"sliding_ratio_vs_monai_stride"
                                              f"{b.sliding_strides[0]}"]
    monai50 = monai_names(half)
    ratios["default_inference_ratio_vs_monai50"] = ratio_vs_fastest(
        results, (info["default_inference"]["runner"],), monai50)
    for name in info["large_windows"]:
        ratios[name.replace("jax_sliding_", "large_window_ratio_vs_monai50_")] = (
            ratio_vs_fastest(results, (name,), monai50))
    ratios = {name: r for name, r in ratios.items() if r is not None}
    import jaxlib
    import monai

    machine["versions"] |= {"jaxlib": jaxlib.__version__, "torch": torch.__version__,
                            "monai": monai.__version__}
    if args.only != "sliding":
        import keras

        machine["versions"] |= {"keras": keras.__version__,
                                "keras_backend": keras.backend.backend()}
    report = {
        "machine": machine | {
            "cpu": cpu_info(),
            "load_average_at_end": list(os.getloadavg()),
            "torch_threads": torch.get_num_threads(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "build_seconds": built - start,
            "total_seconds": time.perf_counter() - start,
        },
        "settings": b.to_dict() | {"preset": args.preset, "model": config.model.to_dict(),
                                   "compile_rows": not args.no_compile} | info,
        **{name: r["median"] for name, r in ratios.items()},
        "ratios": ratios,
        "failures": failures,
        "results": results,
        "derived": bench.derived_figures(results),
    }
    io.write_json_atomic(args.out, report)
    print(bench.format_table(results, report["derived"]))
    print(f"\n{'ratio (per round, project / fastest peer)':<52}{'median':>8}{'min':>8}"
          f"{'max':>8}  peer")
    for name, r in ratios.items():
        print(f"{name:<52}{r['median']:>8.3f}{r['min']:>8.3f}{r['max']:>8.3f}  {r['peer']}")
    for name, why in failures.items():
        print(f"failed: {name}: {why}")
    cpu = report["machine"]["cpu"]
    print(f"\nCPU {cpu['model_name']} ({', '.join(k for k, v in cpu['isa'].items() if v)}); "
          f"load average at start {machine['load_average']}, at end {os.getloadavg()}; "
          f"{report['machine']['total_seconds']:.0f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
