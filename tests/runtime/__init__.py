"""Tests of socseg_jax.runtime."""
