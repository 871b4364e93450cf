"""Tests of socseg_jax.inference."""
