"""Tests of socseg_jax.models."""
