"""Import the study's Keras U-Net weights (.h5/.hdf5) into the Flax NNX :class:`UNet`.

The study saved Keras 2 HDF5 files (``model.save`` or ``ModelCheckpoint``); Keras 3 writes the
same layout with ``model.save("x.h5")``, and ``.weights.h5`` files of Keras 3 are read too.
Only h5py is needed (no Keras, no TensorFlow). The mapping is explicit:

* the weighted layers, in model order, are 3x3 ``Conv2D`` (encoder level i: two convs; then per
  decoder level: two convs), 2x2 ``Conv2DTranspose`` (one per decoder level) and the 1x1 head;
* ``Conv2D`` kernels ``(kh, kw, Cin, Cout)`` equal ``nnx.Conv`` kernels; ``Conv2DTranspose``
  kernels ``(2, 2, Cout, Cin)`` equal :class:`ConvTranspose2x2` kernels; biases are copied.

The architecture (widths, depth, classes) is read from the kernel shapes and the dropout rates
from the stored model config when present. The study preprocessed images with
``keras.utils.normalize(x, axis=1)``: :func:`keras_normalize` reproduces it.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from socseg_jax.core.errors import MissingInputError, UserError
from socseg_jax.models.unet import UNet, UNetConfig

log = logging.getLogger(__name__)


def keras_normalize(image: np.ndarray, axis: int = 1, order: int = 2) -> np.ndarray:
    """``keras.utils.normalize``: divide by the L2 norm along ``axis`` (zero norms left as 1).

    On an (H, W) image, axis=1 scales every image row to unit L2 norm, as the study did before
    predicting; returns float32.
    """
    image = np.asarray(image, np.float32)
    norm = np.atleast_1d(np.linalg.norm(image, order, axis))
    norm[norm == 0] = 1
    return (image / np.expand_dims(norm, axis)).astype(np.float32)


def _natural_key(name: str) -> tuple[Any, ...]:
    """'conv2d_10' after 'conv2d_9': Keras numbers default layer names in creation order."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def read_keras_weights(path: str | Path) -> tuple[list[tuple[str, list[np.ndarray]]], dict]:
    """Weighted layers ``(name, [kernel, bias])`` in model order, and the model config (or {}).

    Legacy HDF5 (Keras 2 and Keras 3 ``.h5``) lists layers in model order (``layer_names``);
    Keras 3 ``.weights.h5`` files do not, so default layer names are ordered naturally.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"Keras weights file {path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise UserError(f"{path}: not a readable HDF5 file ({err})") from err
    with f:
        config: dict = {}
        if "model_config" in f.attrs:
            raw = f.attrs["model_config"]
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        root = f["model_weights"] if "model_weights" in f else f
        layers: list[tuple[str, list[np.ndarray]]] = []
        if "layer_names" in root.attrs:
            for name in root.attrs["layer_names"]:
                name = name.decode() if isinstance(name, bytes) else str(name)
                group = root[name]
                names = [n.decode() if isinstance(n, bytes) else str(n)
                         for n in group.attrs.get("weight_names", [])]
                if names:
                    layers.append((name, [np.asarray(group[n]) for n in names]))
        elif "layers" in root:
            for name in sorted(root["layers"], key=_natural_key):
                variables = root["layers"][name].get("vars")
                if variables is not None and len(variables):
                    keys = sorted(variables, key=int)
                    layers.append((name, [np.asarray(variables[k]) for k in keys]))
        else:
            raise UserError(f"{path}: no Keras weights found (neither legacy nor Keras 3 layout)")
    if not layers:
        raise UserError(f"{path}: the file holds no weighted layers")
    return layers, config


def _dropout_rates(config: dict) -> list[float]:
    layers = config.get("config", {}).get("layers", [])
    return [float(layer["config"]["rate"]) for layer in layers
            if layer.get("class_name") == "Dropout"]


def unet_config_from_keras(
    layers: list[tuple[str, list[np.ndarray]]], keras_config: dict
) -> UNetConfig:
    """The :class:`UNetConfig` of the study's architecture with these weights."""
    convs = [w for _, w in layers if w[0].ndim == 4 and w[0].shape[:2] == (3, 3)]
    ups = [w for _, w in layers if w[0].ndim == 4 and w[0].shape[:2] == (2, 2)]
    heads = [w for _, w in layers if w[0].ndim == 4 and w[0].shape[:2] == (1, 1)]
    depth = len(ups) + 1
    if len(convs) != 4 * depth - 2 or len(heads) != 1 or len(layers) != len(convs) + depth:
        raise UserError(
            f"not the study's U-Net: {len(convs)} 3x3 convs, {len(ups)} 2x2 transposed convs "
            f"and {len(heads)} 1x1 heads (expected {4 * depth - 2}, {depth - 1} and 1)"
        )
    features = tuple(int(convs[2 * level][0].shape[-1]) for level in range(depth))
    rates = _dropout_rates(keras_config)
    if len(rates) == 2 * depth - 1:
        encoder, decoder = tuple(rates[:depth]), tuple(rates[depth:])
    elif depth == len(UNetConfig.features):
        encoder, decoder = UNetConfig.encoder_dropout, UNetConfig.decoder_dropout
        log.warning("no dropout rates stored in the Keras file; using the study's")
    else:
        encoder, decoder = (0.0,) * depth, (0.0,) * (depth - 1)
        log.warning("no dropout rates stored in the Keras file; MC dropout is off (rate 0)")
    return UNetConfig(
        features=features,
        encoder_dropout=encoder,
        decoder_dropout=decoder,
        in_channels=int(convs[0][0].shape[2]),
        num_classes=int(heads[0][0].shape[-1]),
    )


def _assign(param: nnx.Param, value: np.ndarray, where: str) -> None:
    if tuple(param.shape) != value.shape:
        raise UserError(f"{where}: Keras shape {value.shape} != Flax shape {tuple(param.shape)}")
    param[...] = np.asarray(value, np.float32)


def load_keras_model(path: str | Path) -> UNet:
    """The study's Keras U-Net from an .h5/.hdf5 file as a Flax :class:`UNet` in eval mode."""
    layers, keras_config = read_keras_weights(path)
    config = unet_config_from_keras(layers, keras_config)
    model = UNet(config, rngs=nnx.Rngs(0))
    depth = config.depth
    # Flax layers in the order the Keras model creates its weighted layers.
    targets: list[Any] = []
    for block in model.encoder:
        targets += [block.conv1, block.conv2]
    for up, block in zip(model.upsample, model.decoder, strict=True):
        targets += [up, block.conv1, block.conv2]
    targets.append(model.head)
    ordered = _model_order(layers, depth)
    for layer, (name, weights) in zip(targets, ordered, strict=True):
        if len(weights) != 2:
            raise UserError(f"{path}: layer {name} has {len(weights)} weights, expected 2")
        _assign(layer.kernel, weights[0], f"{path}: layer {name} kernel")
        _assign(layer.bias, weights[1], f"{path}: layer {name} bias")
    model.eval()
    return model


def _model_order(
    layers: list[tuple[str, list[np.ndarray]]], depth: int
) -> list[tuple[str, list[np.ndarray]]]:
    """Layers as encoder convs, then (transposed conv, conv, conv) per decoder level, head.

    Sorting by kernel size within the file's order makes the mapping independent of where a
    Keras version lists the transposed convolutions relative to the convolutions.
    """
    convs = [item for item in layers if item[1][0].shape[:2] == (3, 3)]
    ups = [item for item in layers if item[1][0].shape[:2] == (2, 2)]
    heads = [item for item in layers if item[1][0].shape[:2] == (1, 1)]
    ordered = convs[: 2 * depth]
    for level in range(depth - 1):
        ordered += [ups[level], *convs[2 * depth + 2 * level : 2 * depth + 2 * level + 2]]
    return ordered + heads


__all__ = ["keras_normalize", "load_keras_model", "read_keras_weights", "unet_config_from_keras"]
