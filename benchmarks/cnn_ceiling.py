"""A CNN ceiling for EDS-guided labels (issue #12): a small U-Net taught by the TRUE phases.

``benchmarks/label_quality.py`` measures its per-sample ceiling with a pixel forest, which
cannot see shapes (a thin shell, a grain's outline). This one trains a small U-Net on the SEM
image and the EDS maps registered with the true transform, on the true phases of one half
of the image, and predicts the other half (both ways): what a network with a perfect teacher
and the sample's own physics reaches. Labels taught by EDS cannot be expected to beat it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from data_prep.prepare.checks import mean_iou
from socseg_jax.core.phases import NUM_CLASSES
from socseg_jax.core.scores import confusion_matrix
from socseg_jax.models.unet import UNetConfig
from socseg_jax.training.train import init_model, make_train_step

FEATURES = (16, 32, 64, 128)  # a smaller U-Net than the study's: one image half to learn from
PATCH = 96  # training crop (px)
BATCH = 8
STEPS = 1000  # per half (400 read 0.02-0.05 lower on tuning seeds 5000, 5002)
LEARNING_RATE = 3e-3


def input_channels(sem: np.ndarray, aligned_eds: dict[str, np.ndarray]) -> np.ndarray:
    """(H, W, C) float32: the normalised SEM and each EDS map scaled by its 99th percentile."""
    maps = [np.asarray(sem, np.float32)]
    for element in sorted(aligned_eds):
        m = np.asarray(aligned_eds[element], np.float32)
        maps.append(m / max(float(np.percentile(m, 99)), 1e-6))
    return np.stack(maps, axis=-1)


def _crops(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A batch of random crops with random flips and transposes (D4) of one image half."""
    h, w = y.shape
    rows = rng.integers(0, h - PATCH + 1, BATCH)
    cols = rng.integers(0, w - PATCH + 1, BATCH)
    xs, ys = [], []
    turns, flips = rng.integers(0, 4, BATCH), rng.integers(0, 2, BATCH)
    for r, c, k, flip in zip(rows, cols, turns, flips, strict=True):
        xc, yc = x[r : r + PATCH, c : c + PATCH], y[r : r + PATCH, c : c + PATCH]
        xc, yc = np.rot90(xc, k), np.rot90(yc, k)
        if flip:
            xc, yc = xc[:, ::-1], yc[:, ::-1]
        xs.append(xc)
        ys.append(yc)
    return {"image": np.stack(xs), "label": np.stack(ys).astype(np.int32)}


def _fit_predict(x_train, y_train, x_test, seed: int, steps: int) -> np.ndarray:
    """Train a fresh U-Net on (x_train, y_train) and return its classes on x_test."""
    depth = len(FEATURES)
    config = UNetConfig(features=FEATURES, encoder_dropout=(0.0,) * depth,
                        decoder_dropout=(0.0,) * (depth - 1), in_channels=x_train.shape[-1],
                        num_classes=NUM_CLASSES)
    fns, params = init_model(config, seed)
    tx = optax.adamw(optax.cosine_decay_schedule(LEARNING_RATE, steps), weight_decay=1e-4)
    step_fn = make_train_step(fns, tx, seed)
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        state, _ = step_fn(state, _crops(x_train, y_train, rng))
    m = config.size_multiple
    h, w = x_test.shape[:2]
    padded = np.pad(x_test, ((0, -h % m), (0, -w % m), (0, 0)), mode="reflect")
    logits = jax.jit(lambda p, x: fns.logits(p, x, None))(state["params"], padded[None])
    return np.asarray(logits[0, :h, :w].argmax(-1), np.uint8)


def half_cnn_ceiling(truth: np.ndarray, channels: np.ndarray, seed: int,
                     steps: int = STEPS) -> float:
    """Mean IoU of the U-Net taught by the true phases of one half (left/right), predicting
    the other half, both ways; ``channels`` from :func:`input_channels`. Scored on every
    pixel (the forest ceiling: every 2nd of each axis); plain cross-entropy on uniform crops
    (the forest: class-balanced pixels)."""
    half = truth.shape[1] // 2
    if min(truth.shape[0], half) < PATCH:
        raise ValueError(f"the U-Net ceiling needs image halves of >= {PATCH} px, "
                         f"got {truth.shape[0]}x{half}")
    pred = np.zeros(truth.shape, np.uint8)
    for train, test in ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))):
        pred[:, test] = _fit_predict(channels[:, train], truth[:, train], channels[:, test],
                                     seed, steps)
    return mean_iou(confusion_matrix(truth, pred))
