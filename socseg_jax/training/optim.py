"""The optimizer from the config: Adam(W), learning-rate schedule, clipping, accumulation."""

import optax
from ml_collections import ConfigDict

from socseg_jax.core.errors import UserError

SCHEDULES = ("constant", "cosine", "warmup_cosine")


def learning_rate_schedule(config: ConfigDict) -> optax.Schedule:
    """constant | cosine (decay to 0 over the run) | warmup_cosine (linear warmup, then cosine)."""
    name = config.lr_schedule
    lr, steps = config.learning_rate, config.num_train_steps
    warmup = config.warmup_steps
    if name == "constant":
        if warmup:
            return optax.join_schedules(
                [optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup]
            )
        return optax.constant_schedule(lr)
    if name == "cosine":
        return optax.cosine_decay_schedule(lr, max(steps, 1))
    if name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(steps, warmup + 1))
    raise UserError(f"lr_schedule must be one of {SCHEDULES}, got {name!r}")


def make_optimizer(config: ConfigDict) -> optax.GradientTransformation:
    """Adam as the study (AdamW when weight_decay > 0), optional global-norm clipping and
    gradient accumulation over `grad_accum_steps` micro-batches."""
    if config.learning_rate <= 0:
        raise UserError(f"learning_rate={config.learning_rate} must be positive")
    schedule = learning_rate_schedule(config)
    weight_decay = config.weight_decay
    parts = []
    if config.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
    if weight_decay > 0:
        parts.append(optax.adamw(schedule, weight_decay=weight_decay))
    else:
        parts.append(optax.adam(schedule))
    tx = optax.chain(*parts) if len(parts) > 1 else parts[0]
    accum = config.grad_accum_steps
    if accum < 1:
        raise UserError(f"grad_accum_steps={accum} must be >= 1")
    return optax.MultiSteps(tx, every_k_schedule=accum) if accum > 1 else tx
