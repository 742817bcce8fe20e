"""A consistent copy of the live database, taken while the service writes.

SQLite's online backup copies the pages as one snapshot: a single step, so one
read transaction. In WAL mode a reader never blocks the writer, so deliveries
keep being acknowledged while it runs. (Copying in several steps would restart
the copy each time the service commits between two of them.)

The copy is written beside its destination under a temporary name, checked
with ``PRAGMA integrity_check``, made durable, then renamed into place: a
backup that exists is whole, and replacing an older one never leaves neither.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DatabaseMissing, StorageUnavailable
from .db import connect

CHECK_LINES = 3  # of a failed integrity check, shown in the error


@dataclass(frozen=True)
class Copy:
    path: Path
    bytes: int
    seconds: float  # all of it, from the first page read to the rename
    snapshot_seconds: float  # reading the live database (its one read transaction)
    check_seconds: float  # PRAGMA integrity_check of the copy
    sync_seconds: float  # the copy made durable (fsync) and renamed into place


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def backup(source: Path, dest: Path, *, busy_timeout_ms: int = 5000) -> Copy:
    """Copy the database at ``source`` to ``dest`` (replaced if it exists).

    DatabaseMissing when there is no database at ``source`` (opening it would
    create one); ConfigError when ``dest`` is the database itself or one of its
    companion files; StorageUnavailable when the copy cannot be written or fails
    its check. The copy is readable by its owner only (mode 0600): it holds
    every delivery.
    """
    if not source.is_file():
        raise DatabaseMissing(f"no pulsehook database at {source}", path=source)
    live = [source, Path(f"{source}-wal"), Path(f"{source}-shm")]
    if any(_same_file(dest, f) for f in live):
        raise ConfigError(f"{dest} is the live database: give the backup another path")
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        started = time.monotonic()
        reader = connect(source, busy_timeout_ms=busy_timeout_ms, readonly=True)
        try:
            target = sqlite3.connect(temporary, isolation_level=None)
            try:
                reader.backup(target)  # pages=-1: the whole file in one step, one snapshot
                # One self-contained file: opening a WAL copy would leave -wal and
                # -shm beside it. The service turns WAL back on when it opens it.
                target.execute("PRAGMA journal_mode = DELETE")
                snapshot = time.monotonic() - started
                checked = time.monotonic()
                try:
                    problems = [row[0] for row in target.execute("PRAGMA integrity_check")]
                except sqlite3.DatabaseError as exc:  # too damaged to list its problems
                    problems = [str(exc)]
                check_seconds = time.monotonic() - checked
            finally:
                target.close()
        finally:
            reader.close()
        if problems != ["ok"]:
            raise StorageUnavailable(
                f"the copy of {source} fails PRAGMA integrity_check ("
                + "; ".join(problems[:CHECK_LINES])
                + "): the database itself may be damaged; nothing was written to"
                f" {dest}"
            )
        synced = time.monotonic()
        with open(temporary, "rb") as copied:
            os.fsync(copied.fileno())
        os.replace(temporary, dest)
        _sync_directory(dest.parent)
        done = time.monotonic()
    except (sqlite3.Error, OSError) as exc:
        raise StorageUnavailable(f"backup of {source} to {dest} failed: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return Copy(
        path=dest,
        bytes=dest.stat().st_size,
        seconds=done - started,
        snapshot_seconds=snapshot,
        check_seconds=check_seconds,
        sync_seconds=done - synced,
    )


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX: the entry lives in the directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # platforms that cannot open a directory have nothing to sync
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
