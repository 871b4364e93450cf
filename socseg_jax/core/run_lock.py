"""One job at a time per output folder: a lock file holding host and PID, and room checked.

``segment``, ``prepare`` and ``analyze`` hold :func:`run_lock` on their output folder while they
write it, and remove a killed run's temporaries only under it, so a second job started on the
same folder (a re-launch, overlapping array tasks) stops with one line instead of deleting the
first one's files. The lock is an ``flock`` on ``<folder>/.socseg.lock``, taken atomically and
released by the kernel when its process dies (even by SIGKILL): a lock file left by a dead
process is taken over with a warning naming it. Taking the lock also proves that the folder
can be created and written, before any model is loaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from socseg_jax.core.errors import UserError

log = logging.getLogger(__name__)

LOCK_NAME = ".socseg.lock"
_held: dict[Path, int] = {}  # lock files this process holds -> nesting depth (a job calls a loop)


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, job: str, part: str = "") -> Iterator[Path]:
    """Holds ``folder``'s run lock (creating the folder) for the block; yields the folder.

    ``part``: one part of a run that several processes share (a shard): the folder is then
    locked shared with the other parts, and the part's own lock (``.socseg-<part>.lock``)
    exclusively. UserError (one line) when the folder cannot be created or written, or when
    another live job holds it. Re-entrant within a process.
    """
    folder = Path(folder).resolve()
    with contextlib.ExitStack() as stack:
        if part:
            stack.enter_context(_locked(folder / LOCK_NAME, job, fcntl.LOCK_SH))
            stack.enter_context(_locked(folder / f".socseg-{part}.lock", job, fcntl.LOCK_EX))
        else:
            stack.enter_context(_locked(folder / LOCK_NAME, job, fcntl.LOCK_EX))
        yield folder


@contextlib.contextmanager
def _locked(path: Path, job: str, mode: int) -> Iterator[None]:
    if path in _held:
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    fd = _acquire(path, job, mode)
    _held[path] = 1
    try:
        yield
    finally:
        del _held[path]
        if mode == fcntl.LOCK_EX:  # a shared lock file stays for the other holders
            with contextlib.suppress(OSError):
                path.unlink()
        os.close(fd)  # releases the flock


def _acquire(path: Path, job: str, mode: int) -> int:
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the output folder {folder}: {_reason(err)}") from None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise UserError(f"cannot write in the output folder {folder}: {_reason(err)}") from None
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd) or "another job's parts (shards)"
            os.close(fd)
            raise UserError(
                f"the output folder {folder} is in use by {holder}; wait for it to finish "
                f"(or remove {path.name} there if that job is gone)"
            ) from None
        except OSError as err:  # a file system without locks
            os.close(fd)
            raise UserError(f"cannot lock the output folder {folder}: {_reason(err)}") from None
        if _same_file(fd, path):  # not a lock file its last holder unlinked meanwhile
            break
        os.close(fd)
    stale = _read_holder(fd)
    if stale:
        log.warning("output folder %s: took over the lock of %s, which is no longer running",
                    folder, stale)
    record = {"job": job, "host": socket.gethostname(), "pid": os.getpid(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        os.ftruncate(fd, 0)
        if mode == fcntl.LOCK_EX:  # shared holders leave the file empty
            os.pwrite(fd, json.dumps(record).encode(), 0)
    except OSError as err:
        os.close(fd)
        raise UserError(f"cannot write in the output folder {folder}: {_reason(err)}") from None
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


def _read_holder(fd: int) -> str:
    """'job=segment (pid 12 on host h, since ...)' from a lock file; '' when it is empty."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return ""
    if not text.strip():
        return ""
    try:
        info = json.loads(text)
        return (f"job={info.get('job')} (pid {info.get('pid')} on host {info.get('host')}, "
                f"since {info.get('started')})")
    except (ValueError, AttributeError):
        return f"another job ({' '.join(text.split())[:80]})"


def require_room(folder: str | os.PathLike, need_bytes: int) -> None:
    """UserError (one line) when ``folder``'s file system has less than ``need_bytes`` free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError as err:
        raise UserError(f"cannot use the output folder {folder}: {_reason(err)}") from None
    if free < need_bytes:
        raise UserError(
            f"the output folder {folder} has {free / 2**20:.1f} MiB free, less than the "
            f"{need_bytes / 2**20:.1f} MiB one image's outputs need"
        )


def _reason(err: OSError) -> str:
    return err.strerror or str(err)
