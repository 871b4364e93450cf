"""The one entry point: python launch.py --config configs/X.py --workdir DIR [--config.k=v]."""

import logging
import os
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Job config file (configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for this job's outputs.")
flags.mark_flags_as_required(["config"])

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, KeyError)


def main(argv: list[str]) -> None:
    """Runs config.job; bad input ends in one line on stderr and exit status 2."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    absl_logging.get_absl_handler().setFormatter(
        logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S")
    )
    logging.getLogger().setLevel(logging.INFO)
    for noisy in ("absl", "jax._src", "orbax", "tensorflow_datasets", "grain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = _CONFIG.value
    try:
        config.get("job")  # ml_collections reports a missing config file only on first use
    except OSError as err:
        _fail(f"cannot load the --config file: {str(err).strip().splitlines()[-1].strip()}")
    from socseg_jax import host_devices  # before jax is imported: XLA reads its flags once

    try:
        host_devices.configure(config)
        from socseg_jax.jobs import run_job

        run_job(config, _WORKDIR.value)
    except USER_ERRORS as err:
        if os.environ.get("SOCSEG_DEBUG"):
            raise
        _fail(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with a bad config file or override reported in one line."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        _fail(str(err))
    except SyntaxError as err:
        _fail(f"--config file {err.filename}, line {err.lineno}: {err.msg}")
    except (OSError, ImportError, KeyError, AttributeError, TypeError, ValueError) as err:
        cause = err.__cause__ or err
        detail = " ".join(str(cause).split()) or type(cause).__name__
        _fail(f"bad --config or --config.* override: {detail}")
    return []


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
