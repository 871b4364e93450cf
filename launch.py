"""The one entry point: python launch.py --config configs/X.py --workdir DIR [--config.k=v]."""

import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Job config file (configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for this job's outputs.")
flags.mark_flags_as_required(["config"])

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, KeyError)


def main(argv: list[str]) -> None:
    """Runs config.job; bad input ends in one line on stderr and exit status 2."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("absl", "jax._src", "orbax", "tensorflow_datasets", "grain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from socseg_jax.jobs import run_job

    try:
        run_job(_CONFIG.value, _WORKDIR.value)
    except USER_ERRORS as err:
        if os.environ.get("SOCSEG_DEBUG"):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
