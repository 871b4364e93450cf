"""Atomic writers: every output goes to a temporary name and is renamed, never half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
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
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp", dir=path.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
