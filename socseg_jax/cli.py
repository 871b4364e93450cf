"""The `socseg` command (also `python -m socseg_jax` and `python launch.py`).

socseg --config socseg:quickstart --workdir DIR [--config.key=value ...]
socseg --help                                   the jobs, the packaged presets, an example
socseg --config socseg:segment --show_config    every key of a config, its value and meaning

``--config`` takes a config file (``configs/X.py``, ml_collections ``config_flags``, so
``--config.key=value`` overrides work; ``file.py:arg`` passes ``arg`` to ``get_config``) or a
packaged preset ``socseg:NAME[:arg]``. Bad input (a ``UserError``: missing file, wrong key,
unreadable image) ends in one line on stderr and exit status 2; any other exception is a bug
and keeps its traceback.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import ConfigDict, config_flags

from socseg_jax.configs.descriptions import describe
from socseg_jax.core.errors import UserError, suggest
from socseg_jax.jobs import JOBS

PRESET_PREFIX = "socseg:"
# Old config keys -> their new names (one name per meaning); using an old one is an error.
RENAMED_KEYS = {
    "data_bar_height": "data_bar",
    "prepare.label_encoding": "prepare.labels_file_encoding",
}

_CONFIG = config_flags.DEFINE_config_file("config", None, "Job config: a file or socseg:NAME.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for this job's outputs.")
_SHOW_CONFIG = flags.DEFINE_boolean(
    "show_config", False, "Print the resolved config, each key with its meaning, and exit."
)
HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "-helpshort")
flags.mark_flags_as_required(["config"])


def preset_path(spec: str) -> str:
    """``socseg:NAME[:arg]`` -> the packaged config file's path (``:arg`` kept)."""
    name, _, arg = spec.removeprefix(PRESET_PREFIX).partition(":")
    path = importlib.resources.files("socseg_jax.configs").joinpath(f"{name}.py")
    found = presets()
    if not name or name not in found:
        raise UserError(f"no packaged config {spec!r}{suggest(name, found)}")
    return str(path) + (f":{arg}" if arg else "")


def presets() -> dict[str, str]:
    """The packaged configs (socseg:NAME), each with the first line of its docstring: the
    config files that define ``get_config`` (the others are shared sections)."""
    root = importlib.resources.files("socseg_jax.configs")
    found = {}
    for path in sorted(root.iterdir(), key=lambda p: p.name):
        text = path.read_text() if path.name.endswith(".py") else ""
        if "\ndef get_config(" in text:
            doc = text.split('"""')[1] if text.startswith('"""') else ""
            found[path.name[:-3]] = doc.strip().splitlines()[0] if doc.strip() else ""
    return found


def usage() -> str:
    """``socseg --help``: what the command does, its jobs and presets, and examples."""
    jobs = "\n".join(f"  {name:<11} {line}" for name, line in JOBS.items())
    preset_lines = "\n".join(f"  socseg:{name:<10} {line}" for name, line in presets().items())
    return f"""socseg: phase segmentation of Ni/YSZ electrode SEM images (pore, NiO, Ni, YSZ)

usage: socseg --config CONFIG [--workdir DIR] [--config.KEY=VALUE ...] [--show_config]

CONFIG is a packaged preset (socseg:NAME[:ARG]) or a config file (configs/NAME.py); the
preset's config.job says which job runs. --show_config lists every key with its value and
meaning; any key can be overridden with --config.KEY=VALUE.

jobs:
{jobs}

presets:
{preset_lines}

examples:
  socseg --config socseg:quickstart --workdir /tmp/socseg_quickstart
  socseg --config socseg:segment --config.input SEM_DIR --config.output_dir OUT \\
      --config.checkpoint RUN
  socseg --config socseg:segment --show_config

Bad input ends in one line 'error: ...' and exit status 2 (SOCSEG_DEBUG=1 shows a traceback).
absl's own flags: --helpfull."""


def flat_items(config: ConfigDict, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(dotted key, value) of every leaf of a config, in its order."""
    for key, value in config.items():
        if isinstance(value, ConfigDict):
            yield from flat_items(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def config_listing(config: ConfigDict) -> str:
    """Every key of ``config`` with its value and one-line meaning (``--show_config``)."""
    job = str(config.get("job", ""))
    rows = [(f"{key} = {value!r}", describe(key, job)) for key, value in flat_items(config)]
    width = min(max(len(left) for left, _ in rows), 48)
    return "\n".join(f"{left:<{width}}  # {meaning}" if meaning else left
                     for left, meaning in rows)


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
    """absl flag parsing, with a bad config file or override reported in one line; ``--help``
    (or no argument at all) prints ``usage()`` and exits 0."""
    if len(argv) == 1 or any(arg in HELP_FLAGS for arg in argv[1:]):
        print(usage())
        sys.exit(0)
    try:
        resolved = resolve_argv(argv)
        check_override_keys(resolved)
        return flags.FLAGS(resolved)
    except UserError as err:
        _fail(str(err))
    except flags.Error as err:
        _fail(str(err))
    except SyntaxError as err:
        _fail(f"--config file {err.filename}, line {err.lineno}: {err.msg}")
    except (OSError, ImportError, KeyError, AttributeError, TypeError, ValueError) as err:
        cause = err.__cause__ or err
        detail = " ".join(str(cause).split()) or type(cause).__name__
        _fail(f"bad --config or --config.* override: {detail}")
    return []


def check_override_keys(argv: list[str]) -> None:
    """UserError naming a ``--config.KEY`` the config does not have, with the nearest keys."""
    spec = next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")), None)
    if spec is None and "--config" in argv[:-1]:
        spec = argv[argv.index("--config") + 1]
    overrides = [arg.removeprefix("--config.").split("=", 1)[0] for arg in argv
                 if arg.startswith("--config.")]
    if spec is None or not overrides:
        return
    keys = {key for key, _ in flat_items(load_config(spec))}
    sections = {key.rsplit(".", 1)[0] for key in keys if "." in key}
    for key in overrides:
        if key not in keys and key not in sections:
            raise UserError(f"--config.{key}: no such key in {spec}{suggest(key, keys)} "
                            "(socseg --config ... --show_config lists them)")


def load_config(spec: str) -> ConfigDict:
    """The ConfigDict of a config file spec ``path[:arg]`` (what ``--config`` loads)."""
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("socseg_config_file", path)
    if module_spec is None or module_spec.loader is None or not os.path.isfile(path):
        raise UserError(f"cannot load the --config file {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg) if arg else module.get_config()


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
    if _SHOW_CONFIG.value:
        print(config_listing(config))
        return
    # before jax is imported: XLA reads its flags once
    from socseg_jax.runtime import host_devices

    try:
        host_devices.configure(config)
        from socseg_jax.jobs import run_job
        from socseg_jax.jobs.config_checks import check_config

        check_config(flat_items(config))  # choices and ranges, before anything is created

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
