"""python -m socseg_jax: the same as the `socseg` command."""

from socseg_jax.cli import run

run()
