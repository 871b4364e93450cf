"""The thin entry point: python launch.py --config configs/X.py --workdir DIR [--config.k=v].

The same as the installed `socseg` command (socseg_jax/cli.py).
"""

from socseg_jax.cli import run

if __name__ == "__main__":
    run()
