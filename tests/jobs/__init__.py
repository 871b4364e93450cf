"""Tests of socseg_jax.jobs."""
