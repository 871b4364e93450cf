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
    """Mean softmax cross-entropy over pixels; optional per-class weights and smoothing
    (``optax.softmax_cross_entropy_with_integer_labels`` unless smoothing needs one-hot
    targets)."""
    logits = logits.astype(jnp.float32)
    if label_smoothing:
        targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
        targets = optax.smooth_labels(targets, label_smoothing)
        per_pixel = optax.softmax_cross_entropy(logits, targets)
    else:
        per_pixel = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    if class_weights is None:
        return per_pixel.mean()
    weights = class_weights[labels]
    return (per_pixel * weights).sum() / jnp.maximum(weights.sum(), 1e-6)


def soft_dice_loss(logits: jax.Array, labels: jax.Array, eps: float = 1.0) -> jax.Array:
    """1 − mean soft Dice over classes, (2·I + eps) / (P + T + eps), pooled over the batch
    (classes absent from the batch count only through their false positives, smoothed by
    `eps`). ``optax.losses.dice_loss`` with alpha = beta = 1/2 computes (I + s) / ((P + T)/2
    + s), the same ratio for s = eps / 2; its axes are set to pool the batch too."""
    targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
    return optax.losses.dice_loss(
        logits.astype(jnp.float32), targets, smooth=eps / 2, axis=tuple(range(logits.ndim - 1))
    )


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
