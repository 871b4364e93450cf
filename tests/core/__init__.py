"""Tests of socseg_jax.core and the device confusion matrix."""
