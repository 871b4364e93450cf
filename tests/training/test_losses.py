"""The losses, now optax calls, give the values of the formulas they replaced."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from socseg_jax.training.losses import cross_entropy, soft_dice_loss


def old_cross_entropy(logits, labels, class_weights=None, label_smoothing=0.0):
    """The hand-written formula before optax.softmax_cross_entropy_with_integer_labels."""
    targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    per_pixel = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
    if class_weights is None:
        return per_pixel.mean()
    weights = class_weights[labels]
    return (per_pixel * weights).sum() / jnp.maximum(weights.sum(), 1e-6)


def old_soft_dice_loss(logits, labels, eps=1.0):
    """The hand-written soft Dice before optax.losses.dice_loss."""
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
    axes = tuple(range(logits.ndim - 1))
    intersection = (probs * targets).sum(axes)
    denominator = probs.sum(axes) + targets.sum(axes)
    return 1.0 - ((2 * intersection + eps) / (denominator + eps)).mean()


@pytest.mark.parametrize("seed", [0, 1])
def test_losses_equal_the_old_formulas(seed):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.normal(0, 3, (3, 8, 8, 4)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 3, (3, 8, 8)))  # class 3 absent: only false positives
    weights = jnp.asarray([0.5, 1.0, 2.0, 0.0])
    for args in [(None, 0.0), (weights, 0.0), (None, 0.1), (weights, 0.1)]:
        np.testing.assert_allclose(cross_entropy(logits, labels, *args),
                                   old_cross_entropy(logits, labels, *args), rtol=1e-6)
    for eps in (1.0, 1e-3):
        np.testing.assert_allclose(soft_dice_loss(logits, labels, eps),
                                   old_soft_dice_loss(logits, labels, eps), rtol=1e-6)
    grad = jax.grad(lambda x: soft_dice_loss(x, labels))(logits)
    old_grad = jax.grad(lambda x: old_soft_dice_loss(x, labels))(logits)
    np.testing.assert_allclose(grad, old_grad, rtol=1e-5, atol=1e-8)
