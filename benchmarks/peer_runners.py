"""The peer workloads of benchmarks/peers.py: the study's U-Net in PyTorch (channels_last,
torch.compile, NCHW), MONAI's sliding window on it, Keras 3, and the project's predictor.

Imported by peers.py after it has set the host device count (before jax starts).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from flax import nnx
from ml_collections import ConfigDict
from torch import nn

from socseg_jax.inference.model_apply import make_model_apply_fn
from socseg_jax.inference.predictor import SlidingWindowPredictor
from socseg_jax.jobs import benchmark as bench
from socseg_jax.models.unet import UNet, UNetConfig

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


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


def suffix(layout: str, compiled: bool) -> str:
    return f"_{layout}" + ("_compile" if compiled else "")


def monai_name(stride: int, layout: str, compiled: bool, bf16: bool = False) -> str:
    """The name of a MONAI sliding-window row."""
    return (f"monai_sliding_stride{stride}" + ("_bf16_autocast" if bf16 else "")
            + suffix(layout, compiled))


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
        "torch_inference" + suffix(layout, compiled), run, batch_size * batches, "patches/s",
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
    bf16: bool = False,
) -> bench.Runner:
    """MONAI sliding_window_inference with the project's overlap and blending, softmax out,
    windows handed to the model in `layout` (`bf16`: under bf16 autocast, as a user of an
    AVX512-BF16 / AMX machine would run it)."""
    from monai.inferers import sliding_window_inference

    fmt = LAYOUTS[layout]
    image = torch.from_numpy(np.random.default_rng(seed).random(shape, dtype=np.float32))
    image = image[None, None]

    def predictor(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x.contiguous(memory_format=fmt))
        return torch.softmax(logits.float(), dim=1)

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
        monai_name(stride, layout, compiled, bf16),
        run,
        shape[0] * shape[1] / 1e6,
        "megapixels/s",
        time.perf_counter() - start,
        {"image": list(shape), "stride": stride, "batch_size": batch_size, "layout": layout,
         "compiled": compiled, "bf16_autocast": bf16},
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
