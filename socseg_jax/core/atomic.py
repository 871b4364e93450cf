"""Atomic writers: every output goes to a temporary name and is renamed, never half-written.

The temporary file is created with mode 0666 less the umask, as any file the user creates, so
outputs in a shared folder are as readable as the user's umask allows.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary name next to ``path``; rename it to ``path`` when the block succeeds.

    Every writer in data_prep goes through this, so no output is ever half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _create_temporary(path: Path) -> Path:
    """A new empty ``.<stem>.<random><suffix>.tmp`` beside ``path`` (mode 0666 & ~umask: unlike
    mkstemp's 0600, the kernel applies the umask as for any other new file)."""
    while True:
        tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}{path.suffix}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


# A temporary of these writers: hidden, named .<stem>.<random><suffix>.tmp
_TEMPORARY = re.compile(r"^\.[^.].*\.tmp$")


def remove_temporaries(
    folder: str | os.PathLike, skip_marker: str = "", owned: Collection[Path] | None = None
) -> int:
    """Deletes the temporaries a killed run left anywhere under ``folder``; returns how many.

    Call it only while no other process writes there (under ``core.run_lock``); subfolders
    holding a file named ``skip_marker`` (another job's lock) are left alone. ``owned``: only
    the temporaries of these final paths (one shard's outputs in a folder shared by several).
    """
    removed = 0
    for root, dirs, files in os.walk(folder):
        if skip_marker:
            dirs[:] = [d for d in dirs if not os.path.exists(os.path.join(root, d, skip_marker))]
        for name in files:
            if not _TEMPORARY.match(name):
                continue
            path = Path(root, name)
            if owned is None or final_path(path) in owned:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
    return removed


def final_path(temporary: Path) -> Path:
    """The output a temporary ``.<stem>.<random><suffix>.tmp`` stands for: ``<stem><suffix>``."""
    stem, _, suffix = temporary.name[1:].removesuffix(".tmp").rpartition(".")
    return temporary.with_name(stem.rpartition(".")[0] + (f".{suffix}" if suffix else ""))


def write_tiff_atomic(path: str | os.PathLike, array: np.ndarray, **kwargs) -> None:
    """Write a TIFF via tifffile to a temporary name in the same folder, then os.replace."""
    import tifffile

    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.asarray(array), **kwargs)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file (JSON, HTML) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write JSON atomically; NumPy scalars become numbers, other objects strings."""
    write_text_atomic(path, json.dumps(payload, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)
