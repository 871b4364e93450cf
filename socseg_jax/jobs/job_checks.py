"""What every job checks before work starts: its required keys and its --workdir."""

from __future__ import annotations

from pathlib import Path

from ml_collections import ConfigDict

from socseg_jax.core.errors import UserError


def require(config: ConfigDict, *keys: str) -> None:
    """Fails with one clear line when a key the job needs is missing or empty."""
    for key in keys:
        if not config.get(key):
            raise UserError(f"config.{key} is required for job={config.job}")


def require_workdir(config: ConfigDict, workdir: str | None) -> Path:
    """The job's --workdir, created; one clear line when it was not given."""
    if not workdir:
        raise UserError(f"--workdir is required for job={config.job}")
    path = Path(workdir)
    path.mkdir(parents=True, exist_ok=True)
    return path
