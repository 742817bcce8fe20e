"""The three receivers under test, as uvicorn ``--factory`` targets.

Each factory reads its configuration from the environment set by ``ingest.py``:
``BENCH_DATA_DIR`` (a fresh directory), ``BENCH_SECRET`` (the webhook secret) and
``BENCH_SYNCHRONOUS`` (``normal``, or ``full`` for power-loss durability).

* ``bare_app``: answers 200 to any POST without reading the body: the ceiling.
* ``naive_app``: reads the body, checks the HMAC, one INSERT + COMMIT per request.
* ``pulsehook_app``: the real thing, ``create_app(Settings(...))``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

NAIVE_DB = "naive.db"


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set")
    return value


def bare_app() -> Starlette:
    async def answer(request: Request) -> Response:
        return Response(status_code=200)

    return Starlette(routes=[Route("/{path:path}", answer, methods=["POST"])])


async def verify_and_store(
    request: Request, secret: bytes, conn: sqlite3.Connection
) -> bytes | None:
    """The naive receiver's work: the HMAC checked, the raw body stored with one
    insert + commit. The body, or None when the signature is wrong."""
    body = await request.body()
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    given = request.headers.get("x-hub-signature-256", "")
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return None
    guid = request.headers.get("x-github-delivery", "")
    event = request.headers.get("x-github-event", "")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO deliveries VALUES (?, ?, ?)", (guid, event, body))
    conn.execute("COMMIT")
    return body


def naive_app() -> Starlette:
    data_dir = Path(_env("BENCH_DATA_DIR"))
    secret = _env("BENCH_SECRET").encode()
    conn = sqlite3.connect(data_dir / NAIVE_DB, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    full = os.environ.get("BENCH_SYNCHRONOUS") == "full"
    conn.execute(f"PRAGMA synchronous = {'FULL' if full else 'NORMAL'}")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS deliveries (guid TEXT PRIMARY KEY, event TEXT, body BLOB)"
    )

    async def receive(request: Request) -> Response:
        stored = await verify_and_store(request, secret, conn)
        return Response(status_code=401 if stored is None else 202)

    return Starlette(routes=[Route("/webhooks/github", receive, methods=["POST"])])


def pulsehook_app() -> Starlette:
    from pulsehook.app import create_app
    from pulsehook.settings import Settings

    settings = Settings(
        data_dir=Path(_env("BENCH_DATA_DIR")),
        webhook_secret=SecretStr(_env("BENCH_SECRET")),
        synchronous="full" if os.environ.get("BENCH_SYNCHRONOUS") == "full" else "normal",
    )
    return create_app(settings)


# --- process management (used by ingest.py, not by the served apps) -----------------

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
FACTORIES = {"bare": "bare_app", "naive": "naive_app", "pulsehook": "pulsehook_app"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


PF_KTHREAD = 0x00200000


def process_ticks(exclude: set[int]) -> dict[int, int]:
    """CPU ticks (user + system) of every user-space process not in ``exclude``.

    Kernel threads are left out: they do the bench's own disk and network work.
    """
    found: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if not int(fields[6]) & PF_KTHREAD:
            found[int(entry.name)] = int(fields[11]) + int(fields[12])
    return found


def ticks_since(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds used between two ``process_ticks`` snapshots (new processes in full)."""
    ticks = sum(max(0, n - before.get(pid, 0)) for pid, n in after.items())
    return ticks / os.sysconf("SC_CLK_TCK")


def source_fingerprint() -> str:
    """Which pulsehook is measured: a hash of its sources and the newest file's mtime."""
    files = sorted((PROJECT_DIR / "src" / "pulsehook").rglob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(PROJECT_DIR).as_posix().encode() + path.read_bytes())
    newest = max(path.stat().st_mtime for path in files)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(newest))
    return f"{len(files)} files, sha256 {digest.hexdigest()[:12]}, newest modified {stamp}"


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class Receiver:
    """One receiver: a uvicorn process pinned to one CPU, with its own data dir."""

    def __init__(
        self, name: str, *, secret: str, cpu: int, root: Path, synchronous: str = "normal"
    ) -> None:
        self.name = name
        self.synchronous = synchronous
        self.secret = secret
        self.cpu = cpu
        self.data_dir = root / name
        self.data_dir.mkdir(parents=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "uvicorn", f"receivers:{FACTORIES[self.name]}", "--factory"]
        cmd += ["--app-dir", str(BENCH_DIR), "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--workers", "1", "--log-level", "warning", "--no-access-log"]
        cmd += ["--loop", "uvloop" if installed("uvloop") else "asyncio"]
        if self.name == "pulsehook":
            # What `pulsehook serve` runs: httptools with its connection bounds.
            cmd += ["--http", "pulsehook.web.server:BoundedHttpToolsProtocol"]
        else:
            cmd += ["--http", "httptools" if installed("httptools") else "h11"]
        return cmd

    def start(self, timeout: float = 30.0) -> None:
        env = dict(
            os.environ,
            BENCH_DATA_DIR=str(self.data_dir),
            BENCH_SECRET=self.secret,
            BENCH_SYNCHRONOUS=self.synchronous,
        )
        cpu = self.cpu
        self.proc = subprocess.Popen(
            self.command(),
            cwd=PROJECT_DIR,  # pulsehook's default rules_dir "rules" is the project's
            env=env,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on port {self.port} in {timeout}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop this receiver's own process by its PID; SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def cpu_seconds(self) -> float:
        """User + system CPU time of the whole process (all threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def pinned_cpus(self) -> set[str]:
        """Cpus_allowed_list of every thread of the process."""
        found: set[str] = set()
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            for line in (task / "status").read_text().splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    found.add(line.split()[1])
        return found

    def wait_idle(self, limit: float = 120.0, busy: float = 0.05) -> float:
        """Wait (at most ``limit`` s) until the process uses < ``busy`` of a CPU; seconds waited."""
        start = time.monotonic()
        while time.monotonic() - start < limit:
            before = self.cpu_seconds()
            time.sleep(0.25)
            if (self.cpu_seconds() - before) / 0.25 < busy:
                break
        return time.monotonic() - start

    def statuses(self) -> dict[str, int]:
        """pulsehook's deliveries by status, read on a separate read-only connection."""
        db = self.data_dir / "pulsehook.db"
        with contextlib.closing(
            sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        ) as conn:
            rows = conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status")
            return {str(s): int(n) for s, n in rows.fetchall()}

    def drain(self, limit: float = 120.0) -> str:
        """Wait (bounded) for pulsehook's worker to process its backlog; say what happened."""
        pending, start = self.statuses().get("pending", 0), time.monotonic()
        while self.statuses().get("pending", 0) and time.monotonic() - start < limit:
            time.sleep(0.1)
        waited, left = time.monotonic() - start, self.statuses().get("pending", 0)
        self.wait_idle(limit=30.0)
        return f"worker backlog {pending:,} pending -> {left:,} after {waited:.1f} s"


def count_rows(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return int(conn.execute("SELECT count(*) FROM deliveries").fetchone()[0])
