"""This process among the processes that share one data directory.

Each process holds an exclusive lock on a file of its own under
``<data dir>/instances/`` for as long as it lives. The kernel drops the lock
when the process ends, however it ends (SIGKILL and power loss included), so
work leased to an instance whose file can be locked by someone else belongs to
a dead process and may be taken over at once, without waiting for the lease.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
from pathlib import Path
from typing import Protocol

_NAME = re.compile(r"[0-9a-z-]{1,64}")


class Alive(Protocol):
    """What names this process in leases and tells whether another still lives:
    an ``Instance`` on one host's data directory, or a replica's ``Presence``
    on a shared database (``store.replicas``)."""

    id: str

    def alive(self, instance: str) -> bool: ...

    def close(self) -> None: ...


class Instance:
    """The lock that says this process is alive; ``id`` names it in leases."""

    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir / "instances"
        self._dir.mkdir(parents=True, exist_ok=True)
        self.id = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._fd: int | None = os.open(self._path(self.id), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _path(self, instance: str) -> Path:
        return self._dir / f"{instance}.lock"

    def alive(self, instance: str) -> bool:
        """Whether ``instance`` is a live process on this data directory."""
        if instance == self.id:
            return self._fd is not None
        if not _NAME.fullmatch(instance):
            return False  # not a name this module gives: no process holds it
        try:
            fd = os.open(self._path(instance), os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the lock taken just now, if any
        with contextlib.suppress(FileNotFoundError):
            self._path(instance).unlink()
        return False

    def close(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self._path(self.id).unlink()
        os.close(self._fd)
        self._fd = None
