"""The on-device confusion matrix (jit-able), the counterpart of ``core.scores.confusion_matrix``.

Evaluation steps inside ``jax.jit`` accumulate these; scores come from
``socseg_jax.core.scores.segmentation_scores`` on the host.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def confusion_matrix_jax(
    truth: jax.Array,
    pred: jax.Array,
    num_classes: int,
    mask: jax.Array | None = None,
) -> jax.Array:
    """(K, K) int32 confusion matrix on device; jit-able (``num_classes`` static).

    Pixels where ``mask`` is False, or whose truth/pred lies outside ``[0, num_classes)``, are
    not counted. Counting is a fused compare-and-reduce (no scatter, no host round trip). Sum
    per-step results on the host in int64 for very large evaluations.
    """
    truth = jnp.asarray(truth).reshape(-1).astype(jnp.int32)
    pred = jnp.asarray(pred).reshape(-1).astype(jnp.int32)
    valid = (truth >= 0) & (truth < num_classes) & (pred >= 0) & (pred < num_classes)
    if mask is not None:
        valid = valid & jnp.asarray(mask).reshape(-1).astype(bool)
    index = jnp.where(valid, truth * num_classes + pred, -1)
    bins = jnp.arange(num_classes * num_classes, dtype=jnp.int32)
    counts = jnp.sum(index[:, None] == bins[None, :], axis=0, dtype=jnp.int32)
    return counts.reshape(num_classes, num_classes)
