"""Segmentation losses: cross-entropy (the study), class-weighted CE, CE + soft Dice."""

import jax
import jax.numpy as jnp
import optax

from socseg_jax.core.errors import UserError

LOSSES = ("cross_entropy", "weighted_cross_entropy", "cross_entropy_dice")


def cross_entropy(
    logits: jax.Array,
    labels: jax.Array,
    class_weights: jax.Array | None = None,
    label_smoothing: float = 0.0,
) -> jax.Array:
    """Mean softmax cross-entropy over pixels; optional per-class weights and smoothing."""
    num_classes = logits.shape[-1]
    targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    per_pixel = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
    if class_weights is None:
        return per_pixel.mean()
    weights = class_weights[labels]
    return (per_pixel * weights).sum() / jnp.maximum(weights.sum(), 1e-6)


def soft_dice_loss(logits: jax.Array, labels: jax.Array, eps: float = 1.0) -> jax.Array:
    """1 − mean soft Dice over classes, pooled over the batch (classes absent from the batch
    count only through their false positives, smoothed by `eps`)."""
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
    axes = tuple(range(logits.ndim - 1))
    intersection = (probs * targets).sum(axes)
    denominator = probs.sum(axes) + targets.sum(axes)
    return 1.0 - ((2 * intersection + eps) / (denominator + eps)).mean()


def segmentation_loss(
    name: str,
    logits: jax.Array,
    labels: jax.Array,
    class_weights: jax.Array | None = None,
    label_smoothing: float = 0.0,
) -> jax.Array:
    """The loss named in config.loss."""
    if name == "cross_entropy":
        return cross_entropy(logits, labels, None, label_smoothing)
    if name == "weighted_cross_entropy":
        return cross_entropy(logits, labels, class_weights, label_smoothing)
    if name == "cross_entropy_dice":
        return cross_entropy(logits, labels, None, label_smoothing) + soft_dice_loss(
            logits, labels
        )
    raise UserError(f"loss must be one of {LOSSES}, got {name!r}")


def inverse_frequency_weights(fractions: list[float]) -> list[float]:
    """Class weights ∝ 1/frequency, normalised to mean 1 (absent classes get weight 0)."""
    inv = [1.0 / f if f > 0 else 0.0 for f in fractions]
    present = [w for w in inv if w > 0]
    scale = len(present) / sum(present) if present else 1.0
    return [w * scale for w in inv]
