"""socseg_jax against the peers a user would pick instead, measured side by side in one run.

Peers (extra `bench`: torch, monai, keras):

* PyTorch: the same U-Net (same layers, dropout placement and Keras-like initialisation:
  truncated he_normal 3x3 convs, glorot_uniform transposed convs and head, zero biases), NCHW,
  trained with Adam 1e-3 and cross-entropy in f32 and with bf16 autocast;
* MONAI `sliding_window_inference` on that PyTorch network, with the project's settings
  (256 windows, the same overlap, gaussian blending with sigma 1/8, reflect padding, softmax);
* Keras 3 on the JAX backend running the study's model definition (`train_on_batch`).

Fairness: same batch sizes and shapes, same cores (the project runs as `launch.py` runs it:
one XLA CPU device per core, each batch split over them; torch.set_num_threads is set to the
number of cores, `--threads`), compilation and
warm-up excluded (reported apart), every workload interleaved with the others in rotated order
for `repetitions` rounds, so ratios are per-round pairs; medians and spread are reported.

python benchmarks/peers.py --preset quick   # a few minutes on a 2-core CPU
python benchmarks/peers.py --preset full    # the issue's sizes (batch 32, a 2856x4096 image)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from socseg_jax.configs import benchmark as benchmark_config  # noqa: E402
from torch import nn  # noqa: E402

from socseg_jax.runtime import host_devices  # noqa: E402

# As launch.py does for every job: one XLA CPU device per core, set before jax starts.
host_devices.configure(benchmark_config.get_config("quick"))

from socseg_jax.core.atomic import write_json_atomic  # noqa: E402
from socseg_jax.jobs import benchmark as bench  # noqa: E402
from socseg_jax.models.unet import UNetConfig  # noqa: E402

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


def _torch_batch(batch_size: int, patch: int, config: UNetConfig, seed: int):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch_size, config.in_channels, patch, patch), np.uint8)
    labels = rng.integers(0, config.num_classes, (batch_size, patch, patch), np.uint8)
    return torch.from_numpy(images), torch.from_numpy(labels)


def torch_train_runner(
    config: UNetConfig, patch: int, batch_size: int, steps: int, bf16: bool, seed: int = 0
) -> bench.Runner:
    """`steps` PyTorch training steps (uint8 → float in the step, as the JAX step)."""
    torch.manual_seed(seed)
    model = TorchUNet(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = _torch_batch(batch_size, patch, config, seed)

    def run() -> None:
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(images.float() / 255.0)
            loss = nn.functional.cross_entropy(logits.float(), labels.long())
            loss.backward()
            optimizer.step()

    start = time.perf_counter()
    run()  # first step: allocator and oneDNN primitive creation
    name = "torch_train_bf16_autocast" if bf16 else "torch_train"
    return bench.Runner(
        name,
        run,
        batch_size * steps,
        "samples/s",
        time.perf_counter() - start,
        {"batch_size": batch_size},
    )


def monai_sliding_runner(
    config: UNetConfig,
    shape: tuple[int, int],
    patch: int,
    stride: int,
    batch_size: int,
    seed: int = 0,
) -> bench.Runner:
    """MONAI sliding_window_inference with the project's overlap and blending, softmax out."""
    from monai.inferers import sliding_window_inference

    torch.manual_seed(seed)
    model = TorchUNet(config).eval()
    image = torch.from_numpy(np.random.default_rng(seed).random(shape, dtype=np.float32))
    image = image[None, None]

    def predictor(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(model(x), dim=1)

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
    run()
    return bench.Runner(
        f"monai_sliding_stride{stride}",
        run,
        shape[0] * shape[1] / 1e6,
        "megapixels/s",
        time.perf_counter() - start,
        {"image": list(shape), "stride": stride, "batch_size": batch_size},
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


RATIOS = {  # name: (numerator, denominator), per repetition
    "train_ratio_vs_torch": ("jax_train", "torch_train"),
    "train_bf16_ratio_vs_torch_bf16": ("jax_train_bfloat16", "torch_train_bf16_autocast"),
    "train_ratio_vs_keras": ("jax_train", "keras_jax_train"),
    "torch_bf16_over_f32": ("torch_train_bf16_autocast", "torch_train"),
    "jax_bf16_over_f32": ("jax_train_bfloat16", "jax_train"),
    "pipeline_ratio": ("pipeline", "jax_train"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("quick", "full"), default="quick")
    parser.add_argument("--repetitions", type=int, default=0, help="0: the preset's (5)")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count(),
        help="torch threads (default: every core); the project uses one XLA device per core",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "peers.json")
    parser.add_argument("--only", choices=("all", "sliding"), default="all",
                        help="sliding: only the sliding-window pair (JAX and MONAI)")
    parser.add_argument("--sliding-shape", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--sliding-strides", type=int, nargs="+", default=None)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the pipeline's TFDS data goes (default: a temp folder)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = benchmark_config.get_config(args.preset)
    if args.repetitions:
        config.benchmark.repetitions = args.repetitions
    if args.sliding_shape:
        config.benchmark.sliding_image_shape = tuple(args.sliding_shape)
    if args.sliding_strides:
        config.benchmark.sliding_strides = tuple(args.sliding_strides)
    b = config.benchmark
    model_config = UNetConfig.from_dict(config.model.to_dict())
    shape = tuple(b.sliding_image_shape)
    machine = bench.machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only == "sliding":
            runners = [bench.sliding_runner(model_config, shape, b.patch_size, s,
                                            b.sliding_batch_size) for s in b.sliding_strides]
        else:
            runners = bench.jax_runners(config, args.workdir or Path(tmp))
        runners += [] if args.only == "sliding" else [
            torch_train_runner(
                model_config, b.patch_size, b.train_batch_size, b.train_steps, bf16=False
            ),
            torch_train_runner(
                model_config, b.patch_size, b.train_batch_size, b.train_steps, bf16=True
            ),
            keras_train_runner(model_config, b.patch_size, b.train_batch_size, b.train_steps),
        ]
        runners += [
            monai_sliding_runner(model_config, shape, b.patch_size, s, b.sliding_batch_size)
            for s in b.sliding_strides
        ]
        print(
            f"measuring {len(runners)} workloads, {b.repetitions} interleaved repetitions",
            flush=True,
        )
        seconds = bench.measure(runners, b.repetitions, b.warmup)
    results = {r.name: bench.rates(r, seconds[r.name]) for r in runners}
    ratios = {
        name: bench.paired_ratio(results[a]["values"], results[b_]["values"])
        for name, (a, b_) in RATIOS.items()
        if a in results and b_ in results
    }
    for stride in b.sliding_strides:
        ratios[f"sliding_ratio_vs_monai_stride{stride}"] = bench.paired_ratio(
            results[f"jax_sliding_stride{stride}"]["values"],
            results[f"monai_sliding_stride{stride}"]["values"],
        )
    # The headline sliding figure: the study's stride (the first one configured).
    headline = f"sliding_ratio_vs_monai_stride{b.sliding_strides[0]}"
    ratios["sliding_ratio_vs_monai"] = ratios[headline]
    import keras
    import monai

    machine["versions"] |= {
        "torch": torch.__version__,
        "monai": monai.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
    }
    report = {
        "machine": machine
        | {
            "load_average_at_end": list(os.getloadavg()),
            "torch_threads": torch.get_num_threads(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        },
        "settings": b.to_dict() | {"preset": args.preset, "model": config.model.to_dict()},
        **{name: r["median"] for name, r in ratios.items()},
        "ratios": ratios,
        "results": results,
        "derived": bench.derived_figures(results),
    }
    write_json_atomic(args.out, report)
    print(bench.format_table(results, report["derived"]))
    print(f"\n{'ratio (per repetition)':<40}{'median':>8}{'min':>8}{'max':>8}")
    for name, r in ratios.items():
        print(f"{name:<40}{r['median']:>8.3f}{r['min']:>8.3f}{r['max']:>8.3f}")
    print(f"\nload average at start {machine['load_average']}, at end {os.getloadavg()}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
