"""Tests of socseg_jax.training."""
