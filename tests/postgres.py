"""A real PostgreSQL for the tests: ``PULSEHOOK_TEST_DATABASE_URL``, or a throwaway
cluster started from the installed binaries in a temporary directory.

The cluster runs as an unprivileged user when the tests run as root (PostgreSQL
refuses to run as root), listens on 127.0.0.1 only, on a free port, with its
socket in its own directory, and is stopped by its postmaster's PID. Durability
is off: a test cluster trades it for speed, and nothing in it outlives the run.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ENV_URL = "PULSEHOOK_TEST_DATABASE_URL"
SUPERUSER = "pulsehook"
START_SECONDS = 60


def binaries() -> Path | None:
    """The directory of the newest installed PostgreSQL's ``initdb`` and ``pg_ctl``."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runner() -> tuple[int, int] | None:
    """The (uid, gid) to run the server as: None unless running as root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root and no unprivileged user to run PostgreSQL as")


@dataclass
class Cluster:
    url: str  # the superuser's URL to the ``postgres`` database
    pid: int | None  # the postmaster's, when this run started it
    directory: Path | None


def _run(args: list[str], ids: tuple[int, int] | None) -> None:
    subprocess.run(
        args,
        check=True,
        capture_output=True,
        user=ids[0] if ids else None,
        group=ids[1] if ids else None,
    )


@contextlib.contextmanager
def cluster(configured: str | None) -> Iterator[Cluster]:
    """The configured server's URL, or a new cluster for as long as it is held."""
    if configured:
        yield Cluster(url=configured, pid=None, directory=None)
        return
    bin_dir = binaries()
    if bin_dir is None:
        raise FileNotFoundError(f"no PostgreSQL installed (initdb not found); or set {ENV_URL}")
    ids = _runner()
    # Under /tmp, not pytest's private (0700) directories: the server's user must reach it.
    tmp = Path(tempfile.mkdtemp(prefix="pulsehook-pg-"))
    if ids is not None:
        os.chown(tmp, *ids)
    data = tmp / "data"
    _run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "--no-sync"],
        ids,
    )
    port = _free_port()
    options = (
        f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off"
    )
    _run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(tmp / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            str(START_SECONDS),
            "start",
        ],
        ids,
    )
    pid = int((data / "postmaster.pid").read_text().split()[0])
    try:
        url = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"
        yield Cluster(url=url, pid=pid, directory=tmp)
    finally:
        _stop(pid)
        shutil.rmtree(tmp, ignore_errors=True)


def _stop(pid: int) -> None:
    """Stop the postmaster by its PID: a fast shutdown, then SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
