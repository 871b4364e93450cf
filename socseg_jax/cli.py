"""The `socseg` command (also `python -m socseg_jax` and `python launch.py`).

socseg --config socseg:quickstart --workdir DIR [--config.key=value ...]

``--config`` takes a config file (``configs/X.py``, ml_collections ``config_flags``, so
``--config.key=value`` overrides work; ``file.py:arg`` passes ``arg`` to ``get_config``) or a
packaged preset ``socseg:NAME[:arg]``. Bad input (a ``UserError``: missing file, wrong key,
unreadable image) ends in one line on stderr and exit status 2; any other exception is a bug
and keeps its traceback.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import runpy
import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from socseg_jax.core.errors import UserError

PRESET_PREFIX = "socseg:"
# Old config keys -> their new names (one name per meaning); using an old one is an error.
RENAMED_KEYS = {
    "data_bar_height": "data_bar",
    "prepare.label_encoding": "prepare.labels_file_encoding",
}

_CONFIG = config_flags.DEFINE_config_file("config", None, "Job config: a file or socseg:NAME.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for this job's outputs.")
flags.mark_flags_as_required(["config"])


def preset_path(spec: str) -> str:
    """``socseg:NAME[:arg]`` -> the packaged config file's path (``:arg`` kept)."""
    name, _, arg = spec.removeprefix(PRESET_PREFIX).partition(":")
    path = importlib.resources.files("socseg_jax.configs").joinpath(f"{name}.py")
    if not name or not path.is_file():
        choices = ", ".join(presets())
        raise UserError(f"no packaged config {spec!r}; choose one of socseg:{{{choices}}}")
    return str(path) + (f":{arg}" if arg else "")


def presets() -> list[str]:
    """Names of the packaged configs (socseg:NAME)."""
    root = importlib.resources.files("socseg_jax.configs")
    return sorted(p.name[:-3] for p in root.iterdir()
                  if p.name.endswith(".py") and p.name not in ("__init__.py", "sections.py"))


def resolve_argv(argv: list[str]) -> list[str]:
    """Packaged presets turned into paths; renamed keys refused with their new name."""
    out = []
    for i, arg in enumerate(argv):
        if arg.startswith(f"--config={PRESET_PREFIX}"):
            arg = "--config=" + preset_path(arg.split("=", 1)[1])
        elif arg.startswith(PRESET_PREFIX) and i > 0 and argv[i - 1] in ("--config", "-config"):
            arg = preset_path(arg)
        key = arg.removeprefix("--config.").split("=", 1)[0] if arg.startswith("--config.") else ""
        if key in RENAMED_KEYS:
            raise UserError(f"--config.{key} was renamed: use --config.{RENAMED_KEYS[key]}")
        out.append(arg)
    return out


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with a bad config file or override reported in one line."""
    try:
        return flags.FLAGS(resolve_argv(argv))
    except UserError as err:
        _fail(str(err))
    except flags.Error as err:
        _fail(unknown_override(argv) or _one_line(err))
    except SyntaxError as err:
        _fail(f"--config file {err.filename}, line {err.lineno}: {err.msg}")
    except (OSError, ImportError, KeyError, AttributeError, TypeError, ValueError) as err:
        detail = _one_line(err.__cause__ or err)
        _fail(unknown_override(argv) or f"bad --config or --config.* override: {detail}")
    return []


def unknown_override(argv: list[str]) -> str | None:
    """The line for the first ``--config.<key>`` the loaded config does not have (with the
    nearest valid keys), or None (no config loaded, or every key known)."""
    from socseg_jax.jobs.config_checks import unknown_key

    argv = resolve_argv(argv)
    specs = [a.split("=", 1)[1] for a in argv if a.startswith(("--config=", "-config="))]
    specs += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--config", "-config")]
    if not specs:
        return None
    path, _, arg = specs[0].partition(":")
    try:  # the config file as config_flags loads it, without the overrides
        get_config = runpy.run_path(path)["get_config"]
        config = get_config(arg) if arg else get_config()
    except Exception:  # noqa: BLE001 - the file itself is the problem: reported as such
        return None
    overrides = [a.removeprefix("--config.").split("=", 1)[0] for a in argv
                 if a.startswith("--config.")]
    return next((line for key in overrides if (line := unknown_key(config, key))), None)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def main(argv: list[str]) -> None:
    """Runs config.job; a UserError ends in one line on stderr and exit status 2."""
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
    # before jax is imported: XLA reads its flags once
    from socseg_jax.runtime import host_devices

    try:
        host_devices.configure(config)
        from socseg_jax.jobs import run_job
        from socseg_jax.jobs.config_checks import check_config

        check_config(config)  # choices and ranges, before anything is created or loaded

        run_job(config, _WORKDIR.value)
    except UserError as err:
        if os.environ.get("SOCSEG_DEBUG"):
            raise
        _fail(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def run() -> None:
    """Console-script entry point."""
    app.run(main, flags_parser=parse_flags)
