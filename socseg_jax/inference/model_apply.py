"""Model wrappers for the predictor: softmax probabilities of one model, or the mean of an
ensemble (the study's 10 models), optionally with Monte-Carlo dropout."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from socseg_jax.inference.windows import ApplyFn, KeyedApply


def make_model_apply_fn(model: nnx.Module) -> ApplyFn:
    """Jitted ``batch (B, P, P, C) -> softmax probabilities (B, P, P, K)`` float32 for a model.

    Uses a snapshot of the model's current weights, run in eval mode (dropout off). The
    caller's model is left unchanged: ``nnx.split`` happens once here and ``eval()`` is applied
    to the copy merged inside the jitted function, so the weights are jit arguments.
    """
    graphdef, state = nnx.split(model)

    @jax.jit
    def forward(state: nnx.State, batch: jax.Array) -> jax.Array:
        module = nnx.merge(graphdef, state)
        module.eval()
        logits = module(batch)
        return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

    return functools.partial(forward, state)


def make_ensemble_apply_fn(models: Sequence[nnx.Module], mc_samples: int = 0) -> KeyedApply:
    """Mean softmax of an ensemble of same-architecture models, optionally with MC dropout.

    The members' weights are stacked and scanned over, so the model compiles once whatever
    the ensemble size (the study averaged 10 models). ``mc_samples`` > 0 runs each member
    that many times in train mode (dropout active) with a key per window and pass.
    """
    if not models:
        raise ValueError("an ensemble needs at least one model")
    if mc_samples < 0:
        raise ValueError(f"mc_samples must be >= 0, got {mc_samples}")
    splits = [nnx.split(model) for model in models]
    graphdef = splits[0][0]
    if any(g != graphdef for g, _ in splits[1:]):
        raise ValueError("ensemble members must share one architecture (same model config)")
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *(state for _, state in splits))
    passes = max(mc_samples, 1)

    def member_probs(state: nnx.State, member: jax.Array, batch: jax.Array, keys: jax.Array):
        module = nnx.merge(graphdef, state)
        if mc_samples:
            module.train()
        else:
            module.eval()

        def one(index: jax.Array) -> jax.Array:
            if mc_samples:
                pass_keys = jax.vmap(
                    lambda k: jax.random.fold_in(jax.random.fold_in(k, member), index)
                )(keys)
                logits = jax.vmap(lambda x, k: module(x[None], rngs=k)[0])(batch, pass_keys)
            else:
                logits = module(batch)
            return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)

        total = one(jnp.int32(0))
        if passes > 1:
            total, _ = jax.lax.scan(
                lambda acc, index: (acc + one(index), None), total, jnp.arange(1, passes)
            )
        return total

    @jax.jit
    def forward(stacked: nnx.State, batch: jax.Array, keys: jax.Array) -> jax.Array:
        def body(total: jax.Array, inputs: tuple[nnx.State, jax.Array]):
            state, member = inputs
            return total + member_probs(state, member, batch, keys), None

        first = jax.tree.map(lambda leaf: leaf[0], stacked)
        total = member_probs(first, jnp.int32(0), batch, keys)
        if len(models) > 1:
            rest = jax.tree.map(lambda leaf: leaf[1:], stacked)
            total, _ = jax.lax.scan(body, total, (rest, jnp.arange(1, len(models))))
        return total / (len(models) * passes)

    return KeyedApply(functools.partial(forward, stacked))
