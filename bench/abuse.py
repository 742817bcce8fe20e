"""An attacker's session against ``pulsehook serve``: what each hostile input is
answered, what it costs the server, and what leaks.

    .venv/bin/python bench/abuse.py [--quick] [--case NAME ...] [--server-nofile N]
        [--keep-logs DIR]

Each case starts its own ``pulsehook --debug serve`` (debug for the whole run, so
the log scan sees the most there is to see; pinned to CPU 0; data directory in a
temporary directory; stdout and stderr to a log file; soft RLIMIT_NOFILE
``--server-nofile``, 1024 by default as under systemd, the hard limit left as it
is). The webhook secret, the API token (>= 16 characters), a heartbeat token, the
Slack webhook URL and an SMTP password are set by this script, fresh each run.
One rule, ``build.status == 'failure'``, immediate, to Slack and email. The Slack
stand-in (an HTTP/1.1 server in this process) and the SMTP stand-in (aiosmtpd,
with login) listen on loopback. This process pins itself to CPU 1 and raises its
own RLIMIT_NOFILE to the hard limit.

Cases (``--case NAME``, repeatable; ``exhaustion`` is bodies, idle, slowloris and
headers):

  mutation   3,000 webhook requests (400 with --quick) of about 150 kinds, each
             kind with the answer DESIGN.md section 4 gives it (a set where the
             design leaves a choice, never a 5xx), shuffled and sent on 32
             connections at once so hostile requests share group commits with
             valid ones. Then every valid delivery must have had a 2xx and be in
             the database (read-only), and no refused one may be stored.
  bodies     24 concurrent 25 MiB bodies with a well-formed wrong signature,
             streamed at full speed: the server's VmRSS before, peak (sampled
             every 50 ms) and after; growth < 100 MiB.
  idle       1,100 idle sockets and meanwhile 100 valid deliveries: all 2xx, and
             every idle socket closed by the server within 30 s.
  slowloris  200 connections sending a header byte a second for 30 s, valid
             deliveries meanwhile: all 2xx, every slow connection closed by the
             server within the 30 s.
  headers    a 1 MiB and a 50 MiB header: 431, and RSS growth < 100 MiB.
  api        cross-site text/plain (and form) POSTs to /api/v1/silences create no
             silence; every route of /api/v1/openapi.json against six kinds of
             credentials answers as documented; malformed API input is < 500.
  slack      a failing workflow_run whose name and branch carry <!channel> and a
             Slack link reaches Slack escaped, and the email's header injection
             adds no header or recipient.
  lock       BEGIN EXCLUSIVE held on the database for 15 s while deliveries
             come: every answer within 10 s, 2xx only for what is stored; 202
             again after the release.
  disk       (root and tmpfs only) data directory on a 64 MiB tmpfs, filled:
             503 and nothing acknowledged that is not stored; after freeing,
             202 and /readyz ready within 30 s, without a restart.
  logs       a session that makes every secret travel (Slack and email notices,
             a failed Slack send, ?token= sign-ins, heartbeats), then counts each
             secret in the logs of every server of this run and in the answers
             seen: 0.

Requests are written by hand on fresh connections, the answer read while the
body is still being written, as a sender would; an answer the sender never gets
(the server closed and the kernel reset the connection before it was read)
counts as no answer. ``--quick`` (a smoke run, under a minute) sends fewer
requests, waits less, and runs idle, slowloris and lock at once.

The summary table lists each figure, its target and whether it is met. Exit code
0 when every target is met, 1 otherwise. A case that cannot run to its end (the
server dies, a stand-in is never called) reports that as a missed target and the
other cases still run. Every loop and wait is bounded; every process started is
stopped by its PID; every socket is closed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import contextvars
import copy
import errno
import hashlib
import hmac
import json
import logging
import os
import random
import re
import resource
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from alert_latency import clean_env
from loadgen import PATH, PAYLOAD
from receivers import free_port, source_fingerprint

HOST = "127.0.0.1"
MIB = 1024 * 1024
KIB = 1024
MAX_BODY = 25 * MIB  # the server's default limit, GitHub's own cap
SERVER_CPU, CLIENT_CPU = 0, 1
PAYLOADS = PAYLOAD.parent
JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
BOM = b"\xef\xbb\xbf"
RULE_TOML = """\
[[rule]]
name = "build_failure"
condition = "build.status == 'failure'"
channels = ["slack", "email"]
frequency = "immediate"
"""
MAIL_FROM, MAIL_TO = "pulsehook@abuse.example", "oncall@abuse.example"

START_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 20.0  # the server answers a delivery within its 5 s answer timeout
HEAVY_TIMEOUT = 90.0  # a 25 MiB body
HEAVY_AT_ONCE = 2  # large bodies of the mutation set in flight at once (the server reads 4)
PIECE = 256 * KIB  # how much of a body is written before looking for an early answer
MAX_ANSWER = 1 * MIB
RSS_EVERY = 0.05
RSS_TARGET_KIB = 100 * 1024
ANSWER_WITHIN = 10.0  # GitHub gives up on a delivery after 10 s
RECOVERY_WITHIN = 30.0

INJECTIONS = {
    "slack mention": "<!channel>",
    "html script": "<script>alert(1)</script>",
    "javascript url": "javascript:alert(document.cookie)",
    "CR LF": "\r\nX-Injected: 1\r\n",
    "encoded CR LF": "%0d%0aX-Injected:%201",
    "template": "{{7*7}}${7*7}",
    "SQL": "' OR 1=1 --",
}

Body = bytes | Callable[[], Iterator[bytes]]
Key = tuple[str | int, ...]


def compact(data: Any, *, ascii_only: bool = False) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=ascii_only).encode()


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def mib(kib: float) -> str:
    return f"{kib / 1024:,.1f} MiB"


# A case's output, kept while cases run at once (--quick) and printed when it ends.
_OUTPUT: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("output", default=None)


def say(text: str = "") -> None:
    lines = _OUTPUT.get()
    if lines is None:
        print(text)
    else:
        lines.append(text)


# --- what is configured, fresh per run ---------------------------------------------------


@dataclass(frozen=True)
class Secrets:
    webhook: str
    wrong: str  # a webhook secret the server does not know
    api: str
    heartbeat: str
    smtp_user: str
    smtp_password: str
    slack_path: str  # the secret part of the Slack webhook URL

    @classmethod
    def fresh(cls) -> Secrets:
        def token(prefix: str) -> str:
            return f"{prefix}-{secrets.token_hex(12)}"

        return cls(
            webhook=token("abuse-webhook-secret"),
            wrong=token("abuse-wrong-secret"),
            api=token("abuse-api-token"),
            heartbeat=token("abuse-heartbeat-token"),
            smtp_user="abuse-mailer",
            smtp_password=token("abuse-smtp-password"),
            slack_path=f"/services/TABUSE/BABUSE/{secrets.token_hex(12)}",
        )

    def forms(self) -> dict[str, list[str]]:
        """What to look for: each secret, and the forms it travels in."""
        user, password = self.smtp_user, self.smtp_password
        plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return {
            "webhook secret": [self.webhook],
            "API token": [self.api],
            "heartbeat token": [self.heartbeat],
            "Slack webhook URL path": [self.slack_path.rsplit("/", 1)[1]],
            "SMTP password": [password, base64.b64encode(password.encode()).decode(), plain],
        }


@dataclass(frozen=True)
class Config:
    quick: bool
    mutations: int
    heavy_repeats: int
    connections: int
    bodies: int
    idle_sockets: int
    idle_valid: int
    idle_watch: float
    loris: int
    loris_seconds: float
    loris_valid: int
    header_sizes: tuple[int, ...]
    lock_seconds: float
    disk_seconds: float
    server_nofile: int

    @classmethod
    def of(cls, quick: bool, server_nofile: int) -> Config:
        if quick:
            return cls(
                quick=True,
                mutations=400,
                heavy_repeats=1,
                connections=32,
                bodies=6,
                idle_sockets=200,
                idle_valid=20,
                idle_watch=12.0,
                loris=30,
                loris_seconds=12.0,
                loris_valid=12,
                header_sizes=(1 * MIB, 5 * MIB),
                lock_seconds=6.0,
                disk_seconds=2.0,
                server_nofile=server_nofile,
            )
        return cls(
            quick=False,
            mutations=3000,
            heavy_repeats=3,
            connections=32,
            bodies=24,
            idle_sockets=1100,
            idle_valid=100,
            idle_watch=30.0,
            loris=200,
            loris_seconds=30.0,
            loris_valid=60,
            header_sizes=(1 * MIB, 50 * MIB),
            lock_seconds=15.0,
            disk_seconds=6.0,
            server_nofile=server_nofile,
        )


@dataclass(frozen=True)
class Figure:
    case: str
    name: str
    value: str
    target: str
    met: bool | None  # None: for information, or skipped

    @classmethod
    def none(cls, case: str, name: str, count: int, detail: str = "") -> Figure:
        """A count whose target is 0."""
        return cls(
            case, name, f"{count:,}" + (f" ({detail})" if detail and count else ""), "0", not count
        )


# --- HTTP/1.1 by hand: every byte is the attacker's choice ------------------------------------


@dataclass
class Answer:
    status: int = 0  # 0: no answer
    seconds: float = 0.0
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""  # why there was no answer

    @property
    def label(self) -> str:
        return str(self.status) if self.status else f"no answer ({self.error})"

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def code(self) -> str:
        """The ``error.code`` of the one error shape, else a short sample of the body."""
        data = self.json()
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return str(data["error"].get("code"))
        if isinstance(data, dict) and "status" in data:
            return str(data["status"])
        return self.body[:40].decode("utf-8", "replace").replace("\n", " ")

    def shaped(self) -> bool:
        """Whether an error answer is ``{"error": {"code": str, "message": str}}``."""
        data = self.json()
        error = data.get("error") if isinstance(data, dict) else None
        return (
            isinstance(error, dict)
            and isinstance(error.get("code"), str)
            and isinstance(error.get("message"), str)
        )


def request_head(
    method: str, path: str, port: int, headers: Sequence[tuple[str, str | bytes]]
) -> bytes:
    """A request line and headers, written as given (str values as UTF-8), closing."""
    lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: {HOST}:{port}".encode()]
    for name, value in headers:
        lines.append(
            name.encode() + b": " + (value if isinstance(value, bytes) else value.encode())
        )
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def read_answer(
    reader: asyncio.StreamReader, method: str
) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    headers: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if method == "HEAD" or status < 200 or status in (204, 304):
        return status, headers, b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            parts.append((await reader.readexactly(size + 2))[:-2])
        await reader.readuntil(b"\r\n")
        return status, headers, b"".join(parts)
    if "content-length" in headers:
        length = int(headers["content-length"])
        return status, headers, await reader.readexactly(min(length, MAX_ANSWER))
    data = b""
    while len(data) < MAX_ANSWER and (chunk := await reader.read(64 * KIB)):
        data += chunk
    return status, headers, data


def pieces(body: Body) -> Iterator[bytes | memoryview]:
    if isinstance(body, bytes):
        view = memoryview(body)
        for start in range(0, len(body), PIECE):
            yield view[start : start + PIECE]
    else:
        yield from body()


async def _send(
    writer: asyncio.StreamWriter, head: bytes, body: Body, answered: asyncio.Future[Any]
) -> None:
    writer.write(head)
    await writer.drain()
    for piece in pieces(body):
        if answered.done():  # answered early (413, 431, 503): the rest is not wanted
            return
        writer.write(piece)
        await writer.drain()


async def exchange(
    port: int, head: bytes, body: Body = b"", *, method: str = "POST", timeout: float
) -> Answer:
    """One request on a fresh connection; the answer is read while the body is written."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, limit=MAX_ANSWER), CONNECT_TIMEOUT
        )
    except (OSError, TimeoutError) as exc:
        return Answer(seconds=time.perf_counter() - started, error=f"connect {type(exc).__name__}")
    reading = asyncio.ensure_future(read_answer(reader, method))
    sending = asyncio.ensure_future(_send(writer, head, body, reading))
    try:
        done, _ = await asyncio.wait({reading}, timeout=timeout)
        elapsed = time.perf_counter() - started
        if not done:
            return Answer(seconds=elapsed, error=f"no answer in {timeout:g} s")
        try:
            status, headers, data = reading.result()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            why = {
                asyncio.IncompleteReadError: "closed before an answer",
                ConnectionResetError: "reset before an answer was read",
                BrokenPipeError: "closed under the body before an answer was read",
            }.get(type(exc), type(exc).__name__)
            return Answer(seconds=elapsed, error=why)
        return Answer(status=status, seconds=elapsed, body=data, headers=headers)
    finally:
        for task in (reading, sending):
            task.cancel()
        await asyncio.gather(reading, sending, return_exceptions=True)
        writer.close()


async def call(
    port: int,
    method: str,
    path: str,
    *,
    headers: Sequence[tuple[str, str | bytes]] = (),
    body: bytes = b"",
    timeout: float = REQUEST_TIMEOUT,
) -> Answer:
    """A plain request with a Content-Length (for the API)."""
    sized = [*headers, ("Content-Length", str(len(body)))] if body or method != "GET" else headers
    head = request_head(method, path, port, sized)
    return await exchange(port, head, body, method=method, timeout=timeout)


def chunked(parts: Callable[[], Iterable[bytes]]) -> Body:
    """``parts`` framed as a chunked body."""

    def frames() -> Iterator[bytes]:
        for part in parts():
            if part:
                yield b"%x\r\n" % len(part) + part + b"\r\n"
        yield b"0\r\n\r\n"

    return frames


# --- the server ----------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` in KiB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """The peak VmRSS of a process, sampled on a thread every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self.peak = rss_kib(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(RSS_EVERY):
            self.peak = max(self.peak, rss_kib(self.pid))


class Server:
    """``pulsehook --debug serve`` in its own process, pinned, with its own data dir."""

    def __init__(
        self,
        name: str,
        *,
        root: Path,
        rules_dir: Path,
        env: dict[str, str],
        nofile: int,
        data_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.root = root / f"{name}-{self.port}"
        self.root.mkdir(parents=True)
        self.data_dir = data_dir or self.root / "data"
        self.rules_dir = rules_dir
        self.env = env
        self.nofile = nofile
        self.log_path = self.root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def db_path(self) -> Path:
        return self.data_dir / "pulsehook.db"

    def command(self) -> list[str]:
        script = Path(sys.executable).with_name("pulsehook")
        cli = [str(script)] if script.exists() else [sys.executable, "-m", "pulsehook"]
        return [
            *cli,
            "--debug",
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--rules-dir",
            str(self.rules_dir),
        ]

    def _preexec(self) -> None:
        # Runs in the child before exec: its CPU, and the soft open-file limit a
        # service typically starts with; raising it is the service's own business.
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > SERVER_CPU:
            os.sched_setaffinity(0, {SERVER_CPU})
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = self.nofile if hard == resource.RLIM_INFINITY else min(self.nofile, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._preexec,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"pulsehook exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), 1.0)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return
        raise RuntimeError(f"pulsehook did not listen in {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop this server by its PID: SIGTERM, wait, then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)

    async def stop_soon(self) -> None:
        """``stop`` on a thread, so that other cases go on meanwhile; stopped even
        when this is cancelled."""
        try:
            await asyncio.to_thread(self.stop)
        except asyncio.CancelledError:
            self.stop()
            raise

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss(self) -> int:
        return rss_kib(self.pid)

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line[:300] for line in text[-lines:])

    def stored_guids(self) -> set[str]:
        """Every X-GitHub-Delivery in the database, read on a read-only connection."""
        uri = f"file:{self.db_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
            return {row[0] for row in conn.execute("SELECT guid FROM deliveries")}

    def silences(self) -> int:
        uri = f"file:{self.db_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
            return int(conn.execute("SELECT count(*) FROM silences").fetchone()[0])


# --- stand-ins --------------------------------------------------------------------------------


class SlackStandIn:
    """Slack's incoming webhook on loopback, in this process's loop: records each POST;
    answers 200 "ok", or 500 while ``fail_next`` is above zero."""

    OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
    FAIL = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail"

    def __init__(self, path: str) -> None:
        self.port = free_port()
        self.path = path
        self.posts: list[tuple[str, bytes]] = []
        self.fail_next = 0
        self.failed = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, HOST, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                lines = head.split(b"\r\n")
                headers: dict[bytes, bytes] = {}
                for raw in lines[1:]:
                    name, _, value = raw.partition(b":")
                    headers[name.strip().lower()] = value.strip().lower()
                if b"chunked" in headers.get(b"transfer-encoding", b""):
                    parts = []
                    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                        parts.append((await reader.readexactly(size + 2))[:-2])
                    await reader.readuntil(b"\r\n")
                    body = b"".join(parts)
                else:
                    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                self.posts.append((lines[0].decode("latin-1"), body))
                if self.fail_next > 0:
                    self.fail_next -= 1
                    self.failed += 1
                    writer.write(self.FAIL)
                else:
                    writer.write(self.OK)
                await writer.drain()
                if headers.get(b"connection") == b"close":
                    return
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


class MailStandIn:
    """An SMTP server (aiosmtpd, on its own thread) that takes one login and records mail."""

    def __init__(self, user: str, password: str) -> None:
        self.port = free_port()
        self.user, self.password = user.encode(), password.encode()
        self.messages: list[Envelope] = []
        self.logins = 0
        self.controller = Controller(
            self,
            hostname=HOST,
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            self.user,
            self.password,
        )
        self.logins += ok
        return AuthResult(success=ok)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


# --- the run --------------------------------------------------------------------------------


@dataclass
class Context:
    cfg: Config
    keys: Secrets
    root: Path
    rules_dir: Path
    slack: SlackStandIn
    mail: MailStandIn
    logs: list[Path] = field(default_factory=list)
    answers: list[bytes] = field(default_factory=list)  # API answers, scanned for secrets

    def env(self, **extra: str) -> dict[str, str]:
        env = clean_env()
        env.update(
            PULSEHOOK_WEBHOOK_SECRET=self.keys.webhook,
            PULSEHOOK_API_TOKEN=self.keys.api,
            PULSEHOOK_HEARTBEAT_TOKENS=self.keys.heartbeat,
            SLACK_WEBHOOK_URL=self.slack.url,
            PULSEHOOK_SMTP_HOST=HOST,
            PULSEHOOK_SMTP_PORT=str(self.mail.port),
            PULSEHOOK_SMTP_USERNAME=self.keys.smtp_user,
            PULSEHOOK_SMTP_PASSWORD=self.keys.smtp_password,
            PULSEHOOK_SMTP_FROM=MAIL_FROM,
            PULSEHOOK_SMTP_TO=MAIL_TO,
            PULSEHOOK_RETRY_BASE_SECONDS="1",  # a failed send is retried within the case
        )
        env.update(extra)
        return env

    @contextlib.asynccontextmanager
    async def running(self, name: str, *, data_dir: Path | None = None) -> AsyncIterator[Server]:
        server = Server(
            name,
            root=self.root,
            rules_dir=self.rules_dir,
            env=self.env(),
            nofile=self.cfg.server_nofile,
            data_dir=data_dir,
        )
        self.logs.append(server.log_path)
        try:
            await server.start()
            yield server
        finally:
            await server.stop_soon()

    def record(self, answer: Answer) -> Answer:
        self.answers.append(answer.body[:MAX_ANSWER])
        return answer

    def bearer(self, token: str | None = None) -> list[tuple[str, str | bytes]]:
        return [("Authorization", f"Bearer {token or self.keys.api}")]


class Factory:
    """Webhook requests, signed or not, built from GitHub's real examples."""

    def __init__(self, port: int, keys: Secrets) -> None:
        self.port = port
        self.keys = keys
        self.data: dict[str, Any] = json.loads(PAYLOAD.read_text())
        self.body = compact(self.data)
        self.strings = string_paths(self.data)
        self.runs = 0

    def example(self, name: str) -> bytes:
        return compact(json.loads((PAYLOADS / f"{name}.json").read_text()))

    def failing(self, name: str, branch: str) -> bytes:
        """A failed run of a new workflow (a new alert subject) named ``name`` on ``branch``."""
        self.runs += 1
        data = copy.deepcopy(self.data)
        data["workflow_run"].update(
            status="completed",
            conclusion="failure",
            name=name,
            head_branch=branch,
            id=9_100_000_000 + self.runs,
            workflow_id=9_200_000_000 + self.runs,
        )
        if isinstance(data.get("workflow"), dict):
            data["workflow"].update(name=name, id=9_200_000_000 + self.runs)
        return compact(data)

    def probe(
        self,
        kind: str,
        expect: Iterable[int],
        body: Body = b"",
        *,
        method: str = "POST",
        event: str | bytes | None = "workflow_run",
        guid: str | bytes | None = "",
        content_type: str | bytes | None = JSON_TYPE,
        sign: bool = True,
        sig: str | bytes | None = None,
        signed_over: bytes | None = None,
        headers: Sequence[tuple[str, str | bytes]] = (),
        length: int | None = -1,
        heavy: bool = False,
    ) -> Probe:
        """A request to the webhook endpoint.

        ``guid`` "" is a fresh one, None none; ``sign`` signs the body (or
        ``signed_over``) with the webhook secret unless ``sig`` gives the header
        (None: no signature header); ``length`` -1 is the body's, None none.
        """
        raw_guid = str(uuid.uuid4()) if guid == "" else guid
        given: list[tuple[str, str | bytes]] = [("User-Agent", "GitHub-Hookshot/abuse")]
        if content_type is not None:
            given.append(("Content-Type", content_type))
        if event is not None:
            given.append(("X-GitHub-Event", event))
        if raw_guid is not None:
            given.append(("X-GitHub-Delivery", raw_guid))
        if sig is not None:
            given.append(("X-Hub-Signature-256", sig))
        elif sign:
            over = signed_over if signed_over is not None else body
            assert isinstance(over, bytes), "a streamed body needs signed_over"
            given.append(("X-Hub-Signature-256", signature(over, self.keys.webhook)))
        given.extend(headers)
        if length == -1:
            assert isinstance(body, bytes), "a streamed body needs its length or None"
            length = len(body)
        if length is not None:
            given.append(("Content-Length", str(length)))
        stored = raw_guid.encode() if isinstance(raw_guid, str) else raw_guid
        return Probe(
            kind=kind,
            expect=frozenset(expect),
            head=request_head(method, PATH, self.port, given),
            body=body,
            method=method,
            guid=stored.decode("latin-1") if stored is not None else None,
            heavy=heavy,
        )

    def valid(self, kind: str = "valid delivery") -> Probe:
        return self.probe(kind, {202}, self.body)


@dataclass
class Probe:
    kind: str
    expect: frozenset[int]
    head: bytes
    body: Body
    method: str
    guid: str | None  # as the server stores it (the header's bytes as Latin-1)
    heavy: bool = False
    answer: Answer = field(default_factory=Answer)

    @property
    def valid(self) -> bool:
        """A delivery the design says must be stored and acknowledged."""
        return all(200 <= s < 300 for s in self.expect)

    async def send(self, port: int) -> Answer:
        timeout = HEAVY_TIMEOUT if self.heavy else REQUEST_TIMEOUT
        self.answer = await exchange(
            port, self.head, self.body, method=self.method, timeout=timeout
        )
        return self.answer


def string_paths(data: Any, prefix: Key = ()) -> list[Key]:
    """Where the strings of a JSON document are."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in string_paths(v, (*prefix, k))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in string_paths(v, (*prefix, i))]
    return [prefix] if isinstance(data, str) else []


def with_strings(data: Any, paths: Iterable[Key], change: Callable[[str], str]) -> Any:
    out = copy.deepcopy(data)
    for path in paths:
        node = out
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = change(node[path[-1]])
    return out


# --- 1. the mutation set ------------------------------------------------------------------

Make = Callable[[int, int], Probe]  # (repetition, repetitions of the kind) -> request


@dataclass(frozen=True)
class Kind:
    name: str
    make: Make
    heavy: bool = False


ACCEPTED, PONG, DUPLICATE = {202}, {200}, {200}
BAD, UNSIGNED, NOT_ALLOWED, TOO_LARGE, MEDIA = {400}, {401}, {405}, {413}, {415}
# Where the design leaves a choice (stored, or refused as malformed), never a 5xx.
STORED_OR_BAD = {202, 400}


def mutation_kinds(f: Factory, stored: list[str]) -> list[Kind]:
    """About 150 kinds of webhook request, each with the answer the design gives it."""
    kinds: list[Kind] = []

    def one(name: str, expect: Iterable[int], body: Body, **options: Any) -> None:
        """A kind whose every request is the same but for a fresh delivery id."""
        heavy = bool(options.get("heavy"))
        kinds.append(Kind(name, lambda i, n: f.probe(name, expect, body, **options), heavy))

    data, body, secret = f.data, f.body, f.keys.webhook
    zero = "sha256=" + "0" * 64  # well formed, matches nothing: the body must be read
    unicode_name = "é ✓ 🚀 naïve 日本"
    named = copy.deepcopy(data)
    named["workflow_run"]["name"] = unicode_name
    named_raw, named_ascii = compact(named), compact(named, ascii_only=True)
    form = b"payload=" + quote_plus(body).encode()
    ping = f.example("ping")
    chunks = [("Transfer-Encoding", "chunked")]

    # Valid JSON deliveries.
    one("json: compact example", ACCEPTED, body)
    one("json: indented", ACCEPTED, json.dumps(data, indent=2).encode())
    one("json: é ✓ emoji as UTF-8", ACCEPTED, named_raw)
    one("json: é ✓ emoji as \\u escapes", ACCEPTED, named_ascii)
    one("json: trailing newline", ACCEPTED, body + b"\n")
    one("json: duplicate keys", ACCEPTED, body[:-1] + b',"action":"x"}')
    one("json: empty object", ACCEPTED, b"{}")
    one("json: escaped NUL \\u0000", ACCEPTED, _set(data, "\\u0000"))
    one("json: 64 levels deep", ACCEPTED, _extra(data, _nest(64)))
    one("json: charset=utf-8", ACCEPTED, body, content_type=JSON_TYPE + "; charset=utf-8")
    one("json: Application/JSON", ACCEPTED, body, content_type="Application/JSON")
    one("json: boundary parameter", ACCEPTED, body, content_type=JSON_TYPE + "; boundary=x")
    for name in ("push", "pull_request.opened", "dependabot_alert.created", "check_run.completed"):
        one(f"json: {name} example", ACCEPTED, f.example(name), event=name.split(".")[0])
    one("json: 2 MiB string", ACCEPTED, _extra(data, "x" * 2 * MIB), heavy=True)
    one("json: 5 MiB", ACCEPTED, _extra(data, "y" * 5 * MIB), heavy=True)
    one("json: exactly the 25 MiB limit", ACCEPTED, _padded(data, MAX_BODY), heavy=True)
    framed = chunked(lambda: _split(body, KIB))
    one(
        "json: chunked, 1 KiB chunks",
        ACCEPTED,
        framed,
        signed_over=body,
        headers=chunks,
        length=None,
    )
    big = _extra(data, "z" * 3 * MIB)
    framed_big = chunked(lambda: _split(big, 64 * KIB))
    one(
        "json: chunked, 3 MiB",
        ACCEPTED,
        framed_big,
        signed_over=big,
        headers=chunks,
        length=None,
        heavy=True,
    )

    # Form-encoded deliveries: JSON in the payload field.
    def form_of(document: bytes) -> bytes:
        return b"payload=" + quote_plus(document).encode()

    bare = "payload=" + json.dumps({"action": "noted", "zen": unicode_name}, ensure_ascii=False)
    latin = (
        b"payload=" + quote(json.dumps({"zen": "é"}, ensure_ascii=False).encode("latin-1")).encode()
    )
    for name, expect, content in (
        ("form: example", ACCEPTED, form),
        ("form: é ✓ emoji", ACCEPTED, form_of(named_raw)),
        ("form: other fields around payload", ACCEPTED, b"a=1&" + form + b"&b=2"),
        ("form: percent-encoded field name", ACCEPTED, b"%70ayload=" + form[len("payload=") :]),
        ("form: no payload field", BAD, b"a=b&c=d"),
        ("form: payload not JSON", BAD, b"payload=not+json"),
        ("form: payload in Latin-1 (%E9)", BAD, latin),
        ("form: BOM before the body", BAD, BOM + form),
        ("form: BOM inside payload", BAD, b"payload=%EF%BB%BF" + form[len("payload=") :]),
        ("form: empty body", BAD, b""),
    ):
        one(name, expect, content, content_type=FORM_TYPE)
    one(
        "form: é ✓ emoji not percent-encoded",
        ACCEPTED,
        bare.encode(),
        event="abuse_note",
        content_type=FORM_TYPE,
    )
    one("form: charset=utf-8", ACCEPTED, form, content_type=FORM_TYPE + "; charset=utf-8")
    one("form: ping", PONG, form_of(ping), event="ping", content_type=FORM_TYPE)

    # Documents that are not JSON, or not UTF-8 (signed, so they get past the signature).
    nul = _set(data, "\x00")  # a raw NUL inside the workflow's name, the only one
    for name, content in (
        ("truncated JSON", body[:-10]),
        ("not JSON at all", b"not json"),
        ("trailing comma", b'{"a":1,}'),
        ("single quotes", b"{'a': 1}"),
        ("NaN", b'{"a":NaN}'),
        ("two documents", b"{}{}"),
        ("empty body", b""),
        ("BOM-prefixed JSON", BOM + body),
        ("byte 0xFF in a string", nul.replace(b"\x00", b"\xff")),
        ("overlong UTF-8 C0 AF", nul.replace(b"\x00", b"\xc0\xaf")),
        ("UTF-8 surrogate ED A0 80", nul.replace(b"\x00", b"\xed\xa0\x80")),
        ("cut UTF-8 sequence", nul.replace(b"\x00", b"\xe2\x9c")),
        ("Latin-1 JSON", json.dumps({"zen": "é"}, ensure_ascii=False).encode("latin-1")),
        ("raw NUL in a string", nul),
        ("NUL after the document", body + b"\x00"),
        ("a lone NUL", b"\x00"),
    ):
        one(f"invalid: {name}", BAD, content)
    # Valid JSON grammar that a parser may refuse (depth, range): stored or 400.
    for name, content in (
        ("lone surrogate \\ud800", _set(data, "\\ud800")),
        ("top-level array", b"[1,2,3]"),
        ("top-level string", b'"workflow_run"'),
        ("top-level null", b"null"),
        ("10,000 nested arrays", b'{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
        ("100,000 nested arrays", b"[" * 100_000 + b"]" * 100_000),
        ("5,000 nested objects", b'{"a":' * 5000 + b"1" + b"}" * 5000),
        ("400-digit integer", _number(body, "9" * 400)),
        ("2**64 run id", _number(body, str(2**64))),
        ("-2**63-1", _number(body, str(-(2**63) - 1))),
        ("1e400", _number(body, "1e400")),
        ("1e-400", _number(body, "1e-400")),
    ):
        one(f"edge: {name}", STORED_OR_BAD, content)

    # Signatures: checked before anything else, so each is 401 whatever else is wrong.
    right = signature(body, secret)
    sha1 = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    for name, sig in (
        ("empty", ""),
        ("'sha256=' alone", "sha256="),
        ("wrong hex", zero),
        ("truncated (63 hex)", right[:-1]),
        ("one hex too many", right + "0"),
        ("not hex", "sha256=" + "z" * 64),
        ("right, no prefix", right[7:]),
        ("sha1= prefix", "sha1=" + right[7:47]),
        ("sha512= prefix", "sha512=" + right[7:] * 2),
        ("wrong secret", signature(body, f.keys.wrong)),
        ("of another body", signature(b"{}", secret)),
        ("10 KiB", "sha256=" + "a" * 10 * KIB),
        ("SQL injection", "sha256=' OR 1=1 --"),
    ):
        one(f"signature: {name}", UNSIGNED, body, sig=sig)
    one("signature: missing", UNSIGNED, body, sign=False)
    one(
        "signature: only X-Hub-Signature (sha1)",
        UNSIGNED,
        body,
        sign=False,
        headers=[("X-Hub-Signature", sha1)],
    )
    one("signature: body grew a byte", UNSIGNED, body + b" ", sig=right)
    one(
        "signature: body with a byte changed",
        UNSIGNED,
        body.replace(b"completed", b"complete!", 1),
        sig=right,
    )
    # Uppercase hex is the right digest in another spelling: accepted or refused.
    one("signature: right, uppercase hex", {202, 401}, body, sig="sha256=" + right[7:].upper())
    one(
        "signature: wrong, all else wrong too",
        UNSIGNED,
        b"\x00",
        event=None,
        guid=None,
        content_type="text/plain",
        sig=zero,
    )
    one("signature: wrong, invalid JSON", UNSIGNED, b"{", sig=zero)
    one("signature: wrong, form body", UNSIGNED, form, content_type=FORM_TYPE, sig=zero)
    one("signature: wrong, ping", UNSIGNED, ping, event="ping", sig=signature(ping, f.keys.wrong))
    one("signature: missing, empty body", UNSIGNED, b"", sign=False)
    one("signature: missing, no event header", UNSIGNED, body, event=None, sign=False)

    # Headers GitHub always sends, missing (signed).
    one("headers: no X-GitHub-Event", BAD, body, event=None)
    one("headers: no X-GitHub-Delivery", BAD, body, guid=None)
    one("headers: neither", BAD, body, event=None, guid=None)
    one("headers: empty X-GitHub-Event", BAD, body, event="")
    one("headers: empty X-GitHub-Delivery", BAD, body, guid=b"")

    # Absurd values of headers the signature does not cover (signed bodies): the
    # design does not say, so stored or 400, never a 5xx.
    for value in ("²", "-1", str(2**64), "１２３", "9" * 10 * KIB, "0", "abc", "1e3", "0x1F"):
        shown = value if len(value) < 24 else f"{len(value) // KIB} KiB of digits"
        one(f"hook id: {shown}", STORED_OR_BAD, body, headers=[("X-GitHub-Hook-ID", value)])
    one("hook id: 12345", ACCEPTED, body, headers=[("X-GitHub-Hook-ID", "12345")])
    one("hook id: 007", ACCEPTED, body, headers=[("X-GitHub-Hook-ID", "007")])
    for name, event in (
        ("unknown", "abuse_unknown_event"),
        ("../../etc/passwd", "../../etc/passwd"),
        ("<script>", "<script>alert(1)</script>"),
        ("non-ASCII", "wörkflow_run✓"),
    ):
        one(f"event: {name}", ACCEPTED, body, event=event)
    one("event: 10 KiB", STORED_OR_BAD, body, event="e" * 10 * KIB)
    one("event: NUL byte", STORED_OR_BAD, body, event=b"workflow\x00run")

    def guid_kind(name: str, expect: set[int], prefix: str) -> Kind:
        def make(i: int, n: int) -> Probe:
            return f.probe(name, expect, body, guid=f"{prefix}{uuid.uuid4()}")

        return Kind(name, make)

    kinds.append(guid_kind("guid: SQL injection", ACCEPTED, "' OR 1=1 -- "))
    kinds.append(guid_kind("guid: non-ASCII", ACCEPTED, "é✓🚀-"))
    kinds.append(guid_kind("guid: 10 KiB", STORED_OR_BAD, "g" * 10 * KIB + "-"))
    one("headers: 10 KiB User-Agent", ACCEPTED, body, headers=[("User-Agent", "u" * 10 * KIB)])
    one(
        "headers: 100 extra headers",
        ACCEPTED,
        body,
        headers=[(f"X-Abuse-{n}", "x" * 50) for n in range(100)],
    )
    target = [("X-GitHub-Hook-Installation-Target-Type", "<script>alert(1)</script>")]
    one("headers: <script> target type", ACCEPTED, body, headers=target)

    # Content types (signed).
    for media in (
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/merge-patch+json",
        ";;;",
    ):
        one(f"content type: {media}", MEDIA, body, content_type=media)
    one("content type: none", MEDIA, body, content_type=None)
    one("content type: none, empty body", MEDIA, b"", content_type=None)

    # Sizes. A body over the limit is written in 1 MiB blocks, never held whole.
    over = MAX_BODY + 1
    blocks = _repeat(b"x" * MIB, over)
    oversize_sig = signature(b"".join(blocks()), secret)
    one("size: declared over the limit", TOO_LARGE, blocks, sig=zero, length=over, heavy=True)
    # Unauthenticated and too large: either answer tells the sender nothing.
    one(
        "size: declared over the limit, unsigned",
        {401, 413},
        blocks,
        sign=False,
        length=over,
        heavy=True,
    )
    one(
        "size: chunked over the limit",
        TOO_LARGE,
        chunked(blocks),
        sig=zero,
        headers=chunks,
        length=None,
        heavy=True,
    )
    one(
        "size: chunked over the limit, signed",
        TOO_LARGE,
        chunked(blocks),
        sig=oversize_sig,
        headers=chunks,
        length=None,
        heavy=True,
    )
    one(
        "size: Content-Length of 30 digits",
        {400, 413},
        body,
        length=None,
        headers=[("Content-Length", "9" * 30)],
    )
    one("size: Content-Length -1", BAD, body, length=None, headers=[("Content-Length", "-1")])
    # RFC 9112: refuse, or let Transfer-Encoding win (the signed chunked body).
    both = [*chunks, ("Content-Length", "5")]
    one(
        "size: Content-Length and chunked",
        STORED_OR_BAD,
        chunked(lambda: _split(body, 4 * KIB)),
        signed_over=body,
        headers=both,
        length=None,
    )

    # Redeliveries (of the warm-up's deliveries) and pings.
    def redelivery(name: str, content: bytes) -> Kind:
        def make(i: int, n: int) -> Probe:
            return f.probe(name, DUPLICATE, content, guid=stored[i % len(stored)])

        return Kind(name, make)

    kinds.append(redelivery("duplicate: redelivery", body))
    kinds.append(redelivery("duplicate: same guid, other body", named_raw))
    one("ping", PONG, ping, event="ping")
    one("ping: with hook id", PONG, ping, event="ping", headers=[("X-GitHub-Hook-ID", "109948940")])

    # Methods other than POST.
    for method in ("GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"):
        one(
            f"method: {method}",
            NOT_ALLOWED,
            body if method in ("PUT", "PATCH", "DELETE") else b"",
            method=method,
        )

    # Injection strings in the real payload's string fields: signed, so stored.
    for label, text in INJECTIONS.items():

        def everywhere(i: int, n: int, label: str = label, text: str = text) -> Probe:
            change: Callable[[str], str] = (lambda s: s + text) if i % 2 else (lambda s: text)
            document = compact(with_strings(data, f.strings, change))
            return f.probe(f"inject {label}: every string", ACCEPTED, document)

        def spread(i: int, n: int, label: str = label, text: str = text) -> Probe:
            # Request i of n changes strings i, i + n, i + 2n...: all of them over the kind.
            document = compact(with_strings(data, f.strings[i % n :: n], lambda s: text))
            return f.probe(f"inject {label}: a few strings each", ACCEPTED, document)

        kinds.append(Kind(f"inject {label}: every string", everywhere))
        kinds.append(Kind(f"inject {label}: a few strings each", spread))
    return kinds


def _number(body: bytes, number: str) -> bytes:
    """``body`` with ``number`` as the first ``id`` (the old one kept beside it)."""
    return body.replace(b'"id":', b'"id":' + number.encode() + b',"was_id":', 1)


def _set(data: dict[str, Any], raw: str) -> bytes:
    """The example with the workflow's name set to ``raw``, written into the JSON as is."""
    marked = copy.deepcopy(data)
    marked["workflow_run"]["name"] = "__abuse__"
    return compact(marked).replace(b"__abuse__", raw.encode("utf-8", "surrogatepass"))


def _extra(data: dict[str, Any], value: Any) -> bytes:
    return compact({**data, "abuse_extra": value})


def _nest(depth: int) -> Any:
    node: Any = "bottom"
    for _ in range(depth):
        node = [node]
    return node


def _padded(data: dict[str, Any], size: int) -> bytes:
    """The example padded with one string field to exactly ``size`` bytes."""
    short = compact({**data, "abuse_padding": ""})
    return short[:-2] + b"p" * (size - len(short)) + b'"}'


def _split(body: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _repeat(block: bytes, total: int) -> Callable[[], Iterator[bytes]]:
    """``total`` bytes made of ``block`` (and a part of it), without holding them."""

    def parts() -> Iterator[bytes]:
        left = total
        while left > 0:
            yield block[:left]
            left -= len(block)

    return parts


def allocate(kinds: list[Kind], total: int, heavy_repeats: int) -> list[Probe]:
    """``total`` requests: each heavy kind ``heavy_repeats`` times, the rest share equally."""
    heavy = [k for k in kinds if k.heavy]
    light = [k for k in kinds if not k.heavy]
    left = max(len(light), total - heavy_repeats * len(heavy))
    counts = {k.name: left // len(light) + (n < left % len(light)) for n, k in enumerate(light)}
    counts.update({k.name: heavy_repeats for k in heavy})
    return [k.make(i, counts[k.name]) for k in kinds for i in range(counts[k.name])]


async def run_mix(port: int, plan: list[Probe], connections: int, limit: float) -> int:
    """Send ``plan`` on ``connections`` at once, heavy ones at most HEAVY_AT_ONCE at a
    time; the number left unsent when ``limit`` seconds ran out."""
    queue = iter(plan)
    heavy = asyncio.Semaphore(HEAVY_AT_ONCE)
    deadline = time.perf_counter() + limit
    unsent = 0

    async def worker() -> None:
        nonlocal unsent
        for probe in queue:
            if time.perf_counter() > deadline:
                unsent += 1
                probe.answer = Answer(error="not sent: time limit")
                continue
            if probe.heavy:
                async with heavy:
                    await probe.send(port)
            else:
                await probe.send(port)

    await asyncio.gather(*(worker() for _ in range(connections)))
    return unsent


def statuses(answers: Iterable[Answer]) -> str:
    counts = Counter(a.label for a in answers)
    return ", ".join(f"{label} ×{n}" for label, n in sorted(counts.items())) or "none"


async def mutation_case(ctx: Context) -> list[Figure]:
    cfg, case = ctx.cfg, "mutation"
    async with ctx.running(case) as server:
        f = Factory(server.port, ctx.keys)
        warm = [f.valid("warm-up (then redelivered)") for _ in range(5)]
        for probe in warm:
            await probe.send(server.port)
        kinds = mutation_kinds(f, [p.guid for p in warm if p.guid])
        plan = allocate(kinds, cfg.mutations - len(warm), cfg.heavy_repeats)
        random.Random(20260).shuffle(plan)
        say(
            f"  {len(kinds)} kinds, {len(plan) + len(warm):,} requests"
            f" ({sum(p.heavy for p in plan)} large), {cfg.connections} connections at once"
        )
        started = time.perf_counter()
        unsent = await run_mix(server.port, plan, cfg.connections, 600.0 if not cfg.quick else 120)
        elapsed = time.perf_counter() - started
        stored = server.stored_guids()
        healthz = await call(server.port, "GET", "/healthz")
        readyz = await call(server.port, "GET", "/readyz")
        status = await call(server.port, "GET", "/api/v1/status", headers=ctx.bearer())
        alive = server.alive()
    probes = [*warm, *plan]
    say(f"  sent in {elapsed:.1f} s; answers: {statuses(p.answer for p in probes)}")

    by_kind: dict[str, list[Probe]] = {}
    for probe in probes:
        by_kind.setdefault(probe.kind, []).append(probe)
    wrong_rows = []
    for kind, group in by_kind.items():
        bad = [p for p in group if p.answer.status not in p.expect]
        if bad:
            sample = next((p.answer for p in bad if p.answer.status), bad[0].answer)
            wrong_rows.append(
                (
                    kind,
                    len(group),
                    "/".join(map(str, sorted(group[0].expect))),
                    statuses(p.answer for p in group),
                    sample.code() or sample.error,
                )
            )
    wrong = sum(p.answer.status not in p.expect for p in probes)
    server_errors = [p for p in probes if p.answer.status >= 500]
    silent = [p for p in probes if not p.answer.status]
    if wrong_rows:
        say("\n  kinds answered otherwise than the design says:\n")
        say("  | kind | sent | expected | got | sample answer |")
        say("  |---|---|---|---|---|")
        for row in sorted(wrong_rows):
            say("  | " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    choices = [
        f"{kind}: {statuses(p.answer for p in group)}"
        for kind, group in by_kind.items()
        if len(group[0].expect) > 1
    ]
    say("  where the design leaves a choice: " + "; ".join(sorted(choices)))
    valid = [p for p in probes if p.valid]
    failed_valid = [p for p in valid if not p.answer.ok]
    uses = Counter(p.guid for p in probes)
    acked_missing = [
        p for p in probes if p.answer.ok and p.guid is not None and p.guid not in stored
    ]
    refused_stored = [
        p
        for p in probes
        if 400 <= p.answer.status < 500 and p.guid and uses[p.guid] == 1 and p.guid in stored
    ]
    unshaped = Counter(
        p.kind
        for p in probes
        if p.answer.status >= 400 and p.method != "HEAD" and not p.answer.shaped()
    )
    for label, items in (
        ("valid deliveries not 2xx", failed_valid),
        ("acknowledged but not stored", acked_missing),
        ("refused but stored", refused_stored),
    ):
        if items:
            say(
                f"  {label}: "
                + "; ".join(sorted({f"{p.kind}: {p.answer.label}" for p in items})[:12])
            )
    if unshaped:
        say(
            "  error answers not in the one JSON shape, by kind: "
            + ", ".join(f"{k} ×{n}" for k, n in unshaped.most_common(12))
        )
    worker = (status.json() or {}).get("worker") if status.ok else status.label
    after = f"/healthz {healthz.label}, /readyz {readyz.label}, worker {worker}"
    say(f"  after the set: process {'alive' if alive else 'GONE'}; {after}")
    return [
        Figure(
            case,
            "requests with the wrong status",
            f"{wrong:,} of {len(probes):,} in {len(wrong_rows)} kinds",
            "0",
            wrong == 0,
        ),
        Figure.none(
            case, "5xx answers", len(server_errors), statuses(p.answer for p in server_errors)
        ),
        Figure.none(
            case, "requests without an answer", len(silent), f"unsent {unsent}" if unsent else ""
        ),
        Figure(
            case,
            "valid deliveries failed by another request",
            f"{len(failed_valid):,} of {len(valid):,}",
            "0",
            not failed_valid,
        ),
        Figure.none(case, "2xx answers not stored", len(acked_missing)),
        Figure.none(case, "refused deliveries stored", len(refused_stored)),
        Figure(
            case,
            "error answers not in the one JSON shape",
            f"{sum(unshaped.values()):,}",
            "(information)",
            None,
        ),
        Figure(
            case,
            "server healthy after the set",
            after if alive else "process gone",
            "alive, 200, worker running",
            alive and healthz.status == 200 and readyz.status == 200 and worker == "running",
        ),
    ]


# --- 2. exhaustion -----------------------------------------------------------------------


async def settled_rss(server: Server, seconds: float = 1.0) -> int:
    await asyncio.sleep(seconds)
    return server.rss()


def rss_figures(case: str, before: int, peak: int, after: int) -> Figure:
    growth = peak - before
    return Figure(
        case,
        "server RSS growth (peak - before)",
        f"{mib(growth)} (before {mib(before)}, peak {mib(peak)}, after {mib(after)})",
        "< 100 MiB",
        growth < RSS_TARGET_KIB,
    )


async def bodies_case(ctx: Context) -> list[Figure]:
    case, count = "bodies", ctx.cfg.bodies
    body = b'{"pad":"' + b"x" * (MAX_BODY - 10) + b'"}'
    async with ctx.running(case) as server:
        f = Factory(server.port, ctx.keys)
        probes = [
            f.probe("25 MiB unsigned", {401, 413, 503}, body, sig="sha256=" + "0" * 64, heavy=True)
            for _ in range(count)
        ]
        before = await settled_rss(server)
        started = time.perf_counter()
        with RssSampler(server.pid) as sampler:
            await asyncio.gather(*(p.send(server.port) for p in probes))
            elapsed = time.perf_counter() - started
            after = await settled_rss(server, 2.0)
        stored = server.stored_guids() & {p.guid for p in probes if p.guid}
        alive = server.alive()
    say(
        f"  {count} bodies of {mib(MAX_BODY / KIB)} with a well-formed wrong signature,"
        f" answered in {elapsed:.1f} s: {statuses(p.answer for p in probes)}"
        f"; slowest {max(p.answer.seconds for p in probes):.1f} s"
    )
    say(f"  RSS before {mib(before)}, peak {mib(sampler.peak)}, after {mib(after)}")
    return [
        rss_figures(case, before, sampler.peak, after),
        Figure(
            case,
            "answers",
            statuses(p.answer for p in probes),
            "401/413/503, none 2xx",
            all(p.answer.status in (401, 413, 503) for p in probes),
        ),
        Figure.none(case, "unsigned bodies stored", len(stored)),
        Figure(case, "server alive afterwards", "yes" if alive else "NO", "yes", alive),
    ]


async def watch_close(reader: asyncio.StreamReader, started: float, until: float) -> float | None:
    """Seconds after ``started`` at which the server closed this connection; None if
    it was still open at ``until`` (perf_counter time)."""
    while True:
        left = until - time.perf_counter()
        if left <= 0:
            return None
        try:
            data = await asyncio.wait_for(reader.read(64 * KIB), left)
        except TimeoutError:
            return None
        except OSError:
            return time.perf_counter() - started
        if not data:
            return time.perf_counter() - started


async def open_many(
    port: int, count: int
) -> tuple[list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], Counter[str]]:
    """``count`` connections (in batches, so the accept queue keeps up); the failures."""
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    failures: Counter[str] = Counter()
    for start in range(0, count, 100):
        batch = await asyncio.gather(
            *(
                asyncio.wait_for(asyncio.open_connection(HOST, port), CONNECT_TIMEOUT)
                for _ in range(min(100, count - start))
            ),
            return_exceptions=True,
        )
        for item in batch:
            if isinstance(item, BaseException):
                failures[type(item).__name__] += 1
            else:
                conns.append(item)
    return conns, failures


async def deliveries(
    f: Factory, count: int, *, over: float, at_once: int, kind: str
) -> list[Probe]:
    """``count`` valid deliveries spread over ``over`` seconds, at most ``at_once`` in flight."""
    gate = asyncio.Semaphore(at_once)
    probes = [f.valid(kind) for _ in range(count)]

    async def one(i: int, probe: Probe) -> None:
        await asyncio.sleep(i * over / max(1, count))
        async with gate:
            await probe.send(f.port)

    await asyncio.gather(*(one(i, p) for i, p in enumerate(probes)))
    return probes


def delivery_figures(case: str, probes: list[Probe], stored: set[str]) -> list[Figure]:
    ok = [p for p in probes if p.answer.ok]
    missing = [p for p in ok if p.guid not in stored]
    slowest = max((p.answer.seconds for p in probes), default=0.0)
    return [
        Figure(
            case,
            "valid deliveries answered 2xx",
            f"{len(ok)} of {len(probes)}"
            + (f" ({statuses(p.answer for p in probes)})" if len(ok) < len(probes) else ""),
            f"{len(probes)}",
            len(ok) == len(probes),
        ),
        Figure(
            case,
            "slowest valid delivery",
            f"{slowest:.2f} s",
            f"< {ANSWER_WITHIN:g} s",
            slowest < ANSWER_WITHIN,
        ),
        Figure.none(case, "2xx answers not stored", len(missing)),
    ]


def closed_figure(
    case: str, what: str, closed: list[float | None], window: float, total: int
) -> Figure:
    times = [t for t in closed if t is not None]
    spread = f" (after {min(times):.1f}–{max(times):.1f} s)" if times else ""
    return Figure(
        case,
        f"{what} closed by the server within {window:g} s",
        f"{len(times):,} of {total:,}{spread}",
        f"all {total:,}",
        len(times) == total,
    )


async def idle_case(ctx: Context) -> list[Figure]:
    cfg, case = ctx.cfg, "idle"
    async with ctx.running(case) as server:
        f = Factory(server.port, ctx.keys)
        started = time.perf_counter()
        conns, failures = await open_many(server.port, cfg.idle_sockets)
        try:
            until = started + cfg.idle_watch
            watchers = [asyncio.ensure_future(watch_close(r, started, until)) for r, _ in conns]
            probes = await deliveries(
                f,
                cfg.idle_valid,
                over=min(10.0, cfg.idle_watch / 2),
                at_once=4,
                kind="valid, beside idle sockets",
            )
            closed = await asyncio.gather(*watchers)
        finally:
            for _, writer in conns:
                writer.close()
        stored = server.stored_guids()
    say(
        f"  {len(conns):,} idle sockets opened"
        + (f", {dict(failures)} failed to open" if failures else "")
        + f"; {cfg.idle_valid} valid deliveries meanwhile: {statuses(p.answer for p in probes)}"
    )
    return [
        *delivery_figures(case, probes, stored),
        Figure(
            case,
            "idle sockets opened",
            f"{len(conns):,} of {cfg.idle_sockets:,}",
            "(information)",
            None,
        ),
        closed_figure(
            case,
            "idle sockets",
            list(closed) + [None] * sum(failures.values()),
            cfg.idle_watch,
            cfg.idle_sockets,
        ),
    ]


async def loris_case(ctx: Context) -> list[Figure]:
    cfg, case = ctx.cfg, "slowloris"
    async with ctx.running(case) as server:
        f = Factory(server.port, ctx.keys)
        started = time.perf_counter()
        until = started + cfg.loris_seconds
        conns, failures = await open_many(server.port, cfg.loris)
        try:
            opening = f"POST {PATH} HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: ".encode()
            for _, writer in conns:
                writer.write(opening)
            watchers = [asyncio.ensure_future(watch_close(r, started, until)) for r, _ in conns]

            async def drip() -> int:
                sent = 0
                while time.perf_counter() < until:
                    for (_, writer), watcher in zip(conns, watchers, strict=True):
                        if not watcher.done() and not writer.is_closing():
                            with contextlib.suppress(OSError):
                                writer.write(b"a")
                                sent += 1
                    await asyncio.sleep(1.0)
                return sent

            dripping = asyncio.ensure_future(drip())
            probes = await deliveries(
                f,
                cfg.loris_valid,
                over=cfg.loris_seconds * 0.8,
                at_once=4,
                kind="valid, beside slow loris",
            )
            closed = await asyncio.gather(*watchers)
            dripped = await dripping
        finally:
            for _, writer in conns:
                writer.close()
        stored = server.stored_guids()
    say(
        f"  {len(conns)} slow connections, {dripped:,} header bytes dripped"
        f" over {cfg.loris_seconds:g} s"
        + (f", {dict(failures)} failed to open" if failures else "")
        + f"; valid deliveries meanwhile: {statuses(p.answer for p in probes)}"
    )
    return [
        *delivery_figures(case, probes, stored),
        closed_figure(
            case,
            "slow connections",
            list(closed) + [None] * sum(failures.values()),
            cfg.loris_seconds,
            cfg.loris,
        ),
    ]


async def headers_case(ctx: Context) -> list[Figure]:
    case = "headers"
    figures: list[Figure] = []
    async with ctx.running(case) as server:
        for size in ctx.cfg.header_sizes:
            head = f"POST {PATH} HTTP/1.1\r\nHost: {HOST}\r\nX-Huge: ".encode()

            def rest(n: int = size) -> Iterator[bytes]:
                yield from _repeat(b"h" * (64 * KIB), n)()
                yield b"\r\nContent-Length: 0\r\n\r\n"

            before = await settled_rss(server, 0.5)
            with RssSampler(server.pid) as sampler:
                answer = await exchange(server.port, head, rest, timeout=60.0)
                after = await settled_rss(server, 1.0)
            label = f"{size // MIB} MiB header"
            say(
                f"  {label}: {answer.label} after {answer.seconds:.2f} s; RSS before"
                f" {mib(before)}, peak {mib(sampler.peak)}, after {mib(after)}"
            )
            figures.append(
                Figure(case, f"{label}: status", answer.label, "431", answer.status == 431)
            )
            grown = rss_figures(case, before, sampler.peak, after)
            figures.append(
                Figure(case, f"{label}: {grown.name}", grown.value, grown.target, grown.met)
            )
        alive = server.alive()
    figures.append(Figure(case, "server alive afterwards", "yes" if alive else "NO", "yes", alive))
    return figures


# --- 3. the API ------------------------------------------------------------------------------

PATH_VALUES = {
    "owner": "octo-org",
    "name": "octo-repo",
    "repo": "octo-repo",
    "path": "abuse/beat",
    "silence_id": "999999",
}
WRITE_BODIES = {
    "/api/v1/silences": {"rule": "build_failure", "duration": "1m", "comment": "auth matrix"},
    "/api/v1/report": {"repo": "octo-org/octo-repo", "status": "success"},
    "/api/v1/heartbeats/{owner}/{repo}/{path}": {"report": "GOOD", "note": "auth matrix"},
}
CREDENTIALS = (
    "none",
    "empty Bearer",
    "wrong token",
    "API token",
    "?token= (API token)",
    "heartbeat token",
)


def credential_headers(ctx: Context, name: str) -> tuple[list[tuple[str, str | bytes]], str]:
    """(headers, query string) of one kind of credential."""
    if name == "empty Bearer":
        return [("Authorization", "Bearer ")], ""
    if name == "wrong token":
        return ctx.bearer("wrong-token-0123456789abcdef"), ""
    if name == "API token":
        return ctx.bearer(), ""
    if name == "?token= (API token)":
        return [], f"?token={ctx.keys.api}"
    if name == "heartbeat token":
        return ctx.bearer(ctx.keys.heartbeat), ""
    return [], ""


def route_class(path: str, op: dict[str, Any]) -> str:
    """Who may call a documented route: "webhook" (HMAC), "heartbeat" (the heartbeat
    token), "open" (anyone) or "token" (the API token)."""
    if path == PATH:
        return "webhook"
    if "/heartbeats/" in path or path.endswith("/report"):
        return "heartbeat"
    if op.get("security") == []:
        return "open"
    return "token"


def accepted(answer: Answer, op: dict[str, Any]) -> bool:
    """Let in: not refused for credentials, and no 5xx the route does not document."""
    documented = set(op.get("responses", {}))
    return answer.status not in (0, 401, 403) and (
        answer.status < 500 or str(answer.status) in documented
    )


async def csrf_figures(ctx: Context, server: Server) -> list[Figure]:
    case = "api"
    variants: list[tuple[str, str, list[tuple[str, str | bytes]], str]] = []
    for media in (
        "text/plain",
        "text/plain; charset=utf-8",
        FORM_TYPE,
        "multipart/form-data; boundary=x",
        None,
    ):
        for cred in ("none", "API token", "?token= (API token)"):
            headers, query = credential_headers(ctx, cred)
            typed = [("Content-Type", media)] if media else []
            variants.append(
                (f"{media or 'no content type'}, {cred}", query, [*headers, *typed], media or "")
            )
    rows = []
    for n, (label, query, headers, _) in enumerate(variants):
        body = json.dumps(
            {"rule": "build_failure", "duration": "1h", "comment": f"csrf-{n}"}
        ).encode()
        cross = [
            ("Origin", "https://evil.example"),
            ("Referer", "https://evil.example/page"),
            ("Sec-Fetch-Site", "cross-site"),
        ]
        answer = ctx.record(
            await call(
                server.port,
                "POST",
                "/api/v1/silences" + query,
                headers=[*cross, *headers],
                body=body,
            )
        )
        rows.append((label, answer))
    listing = ctx.record(await call(server.port, "GET", "/api/v1/silences", headers=ctx.bearer()))
    data = listing.json() if listing.ok else None
    if isinstance(data, dict):
        made = [
            s for s in data.get("silences", []) if str(s.get("comment", "")).startswith("csrf-")
        ]
        created: str | int = len(made)
    else:
        created = f"unknown (GET /api/v1/silences: {listing.label})"
    say(
        "  cross-site POST /api/v1/silences: "
        + "; ".join(f"{label}: {a.label}" for label, a in rows)
    )
    return [
        Figure(case, "silences created by cross-site requests", str(created), "0", created == 0),
        Figure(
            case,
            "cross-site POST answers",
            statuses(a for _, a in rows),
            "(information; README: 415)",
            None,
        ),
    ]


async def auth_figures(ctx: Context, server: Server) -> list[Figure]:
    case = "api"
    doc_answer = ctx.record(await call(server.port, "GET", "/api/v1/openapi.json"))
    doc = doc_answer.json() if doc_answer.status == 200 else None
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        return [
            Figure(
                case,
                "auth matrix",
                f"openapi.json not readable ({doc_answer.label})",
                "0 mismatches",
                False,
            )
        ]
    mismatches: list[tuple[str, str, str, str]] = []
    checked = 0
    for template, methods in doc["paths"].items():
        path = template
        for name, value in PATH_VALUES.items():
            path = path.replace("{" + name + "}", value)
        path = re.sub(r"\{[^}]+\}", "x", path)
        for method, op in methods.items():
            method = method.upper()
            who = route_class(template, op)
            for cred in CREDENTIALS:
                headers, query = credential_headers(ctx, cred)
                body = b""
                if method in ("POST", "PUT", "PATCH"):
                    body = json.dumps(WRITE_BODIES.get(template, {})).encode()
                    headers = [*headers, ("Content-Type", JSON_TYPE)]
                answer = ctx.record(
                    await call(server.port, method, path + query, headers=headers, body=body)
                )
                checked += 1
                let_in = {
                    "webhook": False,
                    "open": True,
                    "heartbeat": cred == "heartbeat token",
                    "token": cred == "API token",
                }[who]
                good = accepted(answer, op) if let_in else answer.status == 401
                if not good:
                    want = "let in (< 500, not 401/403)" if let_in else "401"
                    mismatches.append(
                        (f"{method} {template}", cred, want, f"{answer.label} {answer.code()}"[:80])
                    )
    if mismatches:
        say("\n  auth matrix, answers otherwise than expected:\n")
        say("  | route | credential | expected | got |")
        say("  |---|---|---|---|")
        for row in mismatches:
            say("  | " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    else:
        say(f"  auth matrix: {checked} requests as expected")
    return [
        Figure(
            case, "auth matrix mismatches", f"{len(mismatches)} of {checked}", "0", not mismatches
        )
    ]


def malformed_requests(ctx: Context) -> list[tuple[str, str, list[tuple[str, str | bytes]], bytes]]:
    api = [*ctx.bearer(), ("Content-Type", JSON_TYPE)]
    beat = [*ctx.bearer(ctx.keys.heartbeat), ("Content-Type", JSON_TYPE)]
    silence_bodies = [
        b'{"rule": ["a"]}',
        b'{"rule": {"a": 1}}',
        b'{"repo": 5}',
        b'{"rule": true, "repo": []}',
        b'{"rule": "x", "duration": "P99999999999Y"}',
        b'{"rule": "x", "duration": "99999999999999999999d"}',
        b'{"rule": "x", "duration": "' + b"9" * 5000 + b'h"}',
        b'{"rule": "x", "duration": 1e308}',
        b'{"rule": "x", "duration": -3600}',
        b'{"rule": "x", "duration": "-1h"}',
        b'{"rule": "x", "duration": ["1h"]}',
        b'{"rule": "x", "ends_at": "9999-12-31T23:59:59Z"}',
        b'{"rule": "x", "ends_at": "+999999-01-01T00:00:00Z"}',
        b'{"rule": "x", "ends_at": 1e400}',
        b'{"rule": "x", "ends_at": 12}',
        b'{"rule": "x", "starts_at": "9999-12-31T23:00:00Z", "duration": "10d"}',
        b'{"rule": "x", "starts_at": "0001-01-01T00:00:00+00:00", "duration": "1h"}',
        b'{"rule": "x", "cron": "* * * * * * * *", "duration": "1h"}',
        b'{"rule": "x", "cron": ["0 * * * *"], "duration": "1h"}',
        b'{"rule": "x", "cron": "0 0 31 2 *", "duration": "1h"}',
        b'{"rule": "x", "comment": {"a": [1]}, "duration": "1h"}',
        b'{"rule": "' + b"r" * MIB + b'", "duration": "1h"}',
        b'{"rule": "\\u0000", "duration": "1h"}',
        b'{"rule": "\\ud800", "duration": "1h"}',
        b'{"rule": "x", "duration": "1h", "id": 99999999999999999999999}',
        b"[]",
        b'"silence"',
        b"null",
        b"{",
        b"",
        b"\xff\xfe",
        b'{"rule": NaN}',
        b"[" * 100_000,
    ]
    found: list[tuple[str, str, list[tuple[str, str | bytes]], bytes]] = [
        ("POST", "/api/v1/silences", api, body) for body in silence_bodies
    ]
    for silence_id in ("99999999999999999999999", "9223372036854775808", "0", "-1", "１２"):
        found.append(("DELETE", f"/api/v1/silences/{quote(silence_id)}", ctx.bearer(), b""))
    for query in (
        "limit=%C2%B2",
        "limit=99999999999999999999999",
        "before=99999999999999999999999",
        "status=%00",
        "limit=%EF%BC%91",
        "event=%00%27%20OR%201%3D1",
        "limit=-1",
    ):
        found.append(("GET", f"/api/v1/deliveries?{query}", ctx.bearer(), b""))
    for path in (
        "/api/v1/alerts?limit=%C2%B2",
        "/api/v1/alerts?state=%3Cscript%3E",
        "/api/v1/outbox?limit=%EF%BC%91",
        "/api/v1/repos/octo-org/octo-repo/metrics?days=99999999999999999999",
        "/api/v1/repos/octo-org/octo-repo/metrics?days=%C2%B2",
        "/api/v1/repos/octo-org/octo-repo/metrics?days=-1",
        "/api/v1/repos/octo-org/octo-repo/metrics?days=1e9",
        "/api/v1/vulnerabilities?limit=%C2%B2",
        "/api/v1/builds?limit=99999999999999999999",
        "/api/v1/repos/%00/%00",
        "/api/v1/repos/..%2F..%2Fetc/passwd",
        "/api/v1/repos/" + "n" * 8000,
    ):
        found.append(("GET", path, ctx.bearer(), b""))
    for body in (
        b'{"report": ["GOOD"]}',
        b'{"note": {"a": 1}}',
        b'{"report": "GOOD", "note": "' + b"n" * MIB + b'"}',
        b'{"report": "\\ud800"}',
        b"[",
    ):
        found.append(("POST", "/api/v1/heartbeats/o/r/p", beat, body))
    for body in (
        b'{"repo": ["a"], "status": 1}',
        b'{"repo": "octo-org/octo-repo", "status": "success", "coverage": 1e400}',
        b'{"repo": "octo-org/octo-repo", "status": "success", "coverage": "NaN"}',
        b'{"repo": "octo-org/octo-repo", "status": "success", "id": 99999999999999999999999}',
        b'{"repo": "../../x", "status": "<script>"}',
    ):
        found.append(("POST", "/api/v1/report", beat, body))
    return found


async def malformed_figures(ctx: Context, server: Server) -> list[Figure]:
    case = "api"
    bad: list[tuple[str, str]] = []
    answers: list[Answer] = []
    for method, path, headers, body in malformed_requests(ctx):
        answer = ctx.record(
            await call(server.port, method, path, headers=headers, body=body, timeout=15.0)
        )
        answers.append(answer)
        if answer.status >= 500 or not answer.status:
            shown = body[:60].decode("utf-8", "replace") + ("…" if len(body) > 60 else "")
            bad.append((f"{method} {path[:80]} {shown}", f"{answer.label} {answer.code()}"[:90]))
    if bad:
        say("\n  malformed API input answered 5xx or not at all:\n")
        say("  | request | got |")
        say("  |---|---|")
        for row in bad:
            say("  | " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |")
    say(f"  malformed API input: {statuses(answers)}")
    return [
        Figure(
            case,
            "malformed API input answered 5xx or not at all",
            f"{len(bad)} of {len(answers)}",
            "0",
            not bad,
        )
    ]


async def api_case(ctx: Context) -> list[Figure]:
    async with ctx.running("api") as server:
        figures = await csrf_figures(ctx, server)
        figures += await auth_figures(ctx, server)
        figures += await malformed_figures(ctx, server)
        alive = server.alive()
    figures.append(Figure("api", "server alive afterwards", "yes" if alive else "NO", "yes", alive))
    return figures


# --- 4. injection reaches Slack escaped --------------------------------------------------------

INJECTED_NAME = (
    "deploy <!channel> <https://evil.example|click> abuse-mark"
    "\r\nBcc: attacker@evil.example\r\nX-Injected: yes"
)
INJECTED_BRANCH = "main<!channel><https://evil.example|click>"
SLACK_DANGERS = ("<!channel>", "<https://evil.example")


def strings_in(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for value in data.values():
            yield from strings_in(value)
    elif isinstance(data, list):
        for value in data:
            yield from strings_in(value)
    elif isinstance(data, str):
        yield data


async def wait_until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def slack_case(ctx: Context) -> list[Figure]:
    case = "slack"
    seen_posts, seen_mail = len(ctx.slack.posts), len(ctx.mail.messages)

    def marked() -> list[bytes]:
        return [b for _, b in ctx.slack.posts[seen_posts:] if b"abuse-mark" in b]

    async with ctx.running(case) as server:
        f = Factory(server.port, ctx.keys)
        body = f.failing(INJECTED_NAME, INJECTED_BRANCH)
        answer = await f.probe("injected failing run", ACCEPTED, body).send(server.port)
        await wait_until(lambda: bool(marked()), 20.0)
        await wait_until(lambda: len(ctx.mail.messages) > seen_mail, 10.0)
    figures = [
        Figure(
            case,
            "failing run with injected name and branch",
            answer.label,
            "202",
            answer.status == 202,
        )
    ]
    posts = marked()
    if not posts:
        figures.append(Figure(case, "Slack notice arrived", "no", "yes", False))
    else:
        try:
            texts = list(strings_in(json.loads(posts[0])))
        except ValueError:
            texts = [posts[0].decode("utf-8", "replace")]
        say("  what Slack received:")
        for text in texts:
            say("    " + text.replace("\n", "\n    "))
        for danger in SLACK_DANGERS:
            count = sum(t.count(danger) for t in texts)
            figures.append(
                Figure(
                    case, f"{danger}… unescaped in the Slack notice", str(count), "0", count == 0
                )
            )
    mails = ctx.mail.messages[seen_mail:]
    if not mails:
        figures.append(Figure(case, "email notice arrived", "no", "yes", False))
    else:
        envelope = mails[0]
        message = message_from_bytes(envelope.original_content or b"")
        say(
            f"  email: To {message['To']!r}, Subject {message['Subject']!r},"
            f" recipients {envelope.rcpt_tos}"
        )
        forged = [h for h in ("Bcc", "X-Injected") if message[h] is not None]
        extra = [r for r in envelope.rcpt_tos if r != MAIL_TO]
        figures.append(
            Figure.none(
                case,
                "email headers or recipients injected",
                len(forged + extra),
                ", ".join(forged + extra),
            )
        )
    return figures


# --- 6. a locked database ----------------------------------------------------------------------


class Timeline:
    """Events relative to a start, printed with runs of the same event folded."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.events: list[tuple[float, str]] = []

    def add(self, what: str, at: float | None = None) -> None:
        self.events.append(((at if at is not None else time.perf_counter()) - self.start, what))

    def show(self) -> None:
        events = sorted(self.events)
        n = 0
        while n < len(events):
            end = n
            while end + 1 < len(events) and events[end + 1][1] == events[n][1]:
                end += 1
            first, last, what = events[n][0], events[end][0], events[n][1]
            span = f"{first:6.2f} s" if end == n else f"{first:6.2f}–{last:.2f} s"
            times = f" ×{end - n + 1}" if end > n else ""
            say(f"    {span:>18}  {what}{times}")
            n = end + 1


async def paced(
    f: Factory,
    timeline: Timeline,
    seconds: float,
    every: float,
    kind: str,
    body: bytes | None = None,
) -> list[Probe]:
    """A delivery every ``every`` seconds for ``seconds``, each noted when answered."""
    probes: list[Probe] = []
    tasks = []

    async def one(probe: Probe) -> None:
        sent = time.perf_counter()
        answer = await probe.send(f.port)
        what = f"delivery {answer.label} {answer.code()}"
        if answer.seconds >= 1:  # a slow answer is shown where it was sent, with its time
            what = f"{what} in {answer.seconds:.2f} s (sent at +{sent - timeline.start:.2f} s)"
        timeline.add(what)

    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        probe = f.probe(kind, ACCEPTED, body) if body is not None else f.valid(kind)
        probes.append(probe)
        tasks.append(asyncio.ensure_future(one(probe)))
        await asyncio.sleep(every)
    await asyncio.gather(*tasks)
    return probes


async def readiness(port: int, timeline: Timeline, until: float) -> None:
    while time.perf_counter() < until:
        answer = await call(port, "GET", "/readyz", timeout=5.0)
        reasons = (answer.json() or {}).get("reasons") if answer.status == 503 else None
        timeline.add(f"/readyz {answer.label}" + (f" {reasons}" if reasons else ""))
        await asyncio.sleep(1.0)


async def lock_case(ctx: Context) -> list[Figure]:
    case, hold = "lock", ctx.cfg.lock_seconds
    async with ctx.running(case) as server:
        f = Factory(server.port, ctx.keys)
        warm = await paced(f, Timeline(), 0.5, 0.1, "before the lock")
        timeline = Timeline()
        conn = sqlite3.connect(server.db_path, timeout=10, isolation_level=None)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            timeline.add("BEGIN EXCLUSIVE taken by this script")
            watching = asyncio.ensure_future(
                readiness(server.port, timeline, time.perf_counter() + hold)
            )
            during = await paced(f, timeline, hold, 0.5, "while locked")
            await watching
        finally:
            conn.rollback()
            conn.close()
        released = time.perf_counter()
        timeline.add("lock released")
        after: list[Probe] = []
        recovered: float | None = None
        while time.perf_counter() - released < ANSWER_WITHIN:
            probe = f.valid("after the release")
            await probe.send(server.port)
            after.append(probe)
            timeline.add(f"delivery {probe.answer.label} {probe.answer.code()}")
            if probe.answer.status == 202:
                recovered = recovered or time.perf_counter() - released
                if len(after) >= 5 and all(p.answer.status == 202 for p in after[-5:]):
                    break
            await asyncio.sleep(0.2)
        stored = server.stored_guids()
    say("  timeline:")
    timeline.show()
    answered = [p.answer for p in during if p.answer.status]
    slowest = max((p.answer.seconds for p in during), default=0.0)
    acked = [p for p in during if p.answer.ok and p.guid not in stored]
    last_five = after[-5:]
    return [
        Figure(
            case,
            "deliveries before the lock",
            statuses(p.answer for p in warm),
            "202",
            all(p.answer.status == 202 for p in warm),
        ),
        Figure(
            case,
            f"slowest answer while locked ({len(during)} deliveries)",
            f"{slowest:.2f} s",
            f"< {ANSWER_WITHIN:g} s",
            bool(during) and slowest < ANSWER_WITHIN and len(answered) == len(during),
        ),
        Figure(
            case,
            "answers while locked",
            statuses(p.answer for p in during),
            "503 (or 2xx if stored)",
            all(p.answer.status == 503 or p.answer.ok for p in during),
        ),
        Figure.none(case, "2xx while locked not stored", len(acked)),
        Figure(
            case,
            "202 again after the release",
            f"after {recovered:.2f} s" if recovered is not None else "never",
            f"within {ANSWER_WITHIN:g} s, then 5 × 202",
            recovered is not None
            and len(last_five) == 5
            and all(p.answer.status == 202 for p in last_five),
        ),
    ]


# --- 7. a full disk --------------------------------------------------------------------------


def fill(path: Path) -> int:
    """Write ``path`` until the file system is full; the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as out:
        for size in (MIB, 4 * KIB, 1):
            block = b"\0" * size
            while True:
                try:
                    written += out.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


def umount(path: Path) -> str:
    for _ in range(10):
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=20).returncode == 0:
            return "unmounted"
        time.sleep(0.5)
    done = subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=20)
    return (
        "unmounted lazily"
        if done.returncode == 0
        else f"NOT unmounted: {done.stderr.decode().strip()}"
    )


async def disk_case(ctx: Context) -> list[Figure]:
    case = "disk"
    if os.geteuid() != 0:
        return [Figure(case, "disk full", "skipped (needs root)", "-", None)]
    mount_dir = ctx.root / "tmpfs"
    mount_dir.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_dir)],
        capture_output=True,
        timeout=20,
    )
    if mounted.returncode != 0:
        why = mounted.stderr.decode().strip() or f"exit {mounted.returncode}"
        return [Figure(case, "disk full", f"skipped (needs root; mount failed: {why})", "-", None)]
    filler = mount_dir / "filler"
    timeline = Timeline()
    try:
        async with ctx.running(case, data_dir=mount_dir / "data") as server:
            f = Factory(server.port, ctx.keys)
            warm = await paced(f, Timeline(), 0.5, 0.1, "before filling")
            timeline = Timeline()
            written = await asyncio.to_thread(fill, filler)
            timeline.add(
                f"tmpfs filled: {mib(written / KIB)} of filler, {free_space(mount_dir)} free"
            )
            # Incompressible payloads, so that every commit needs new pages of the log.
            data = copy.deepcopy(f.data)
            data["abuse_padding"] = base64.b64encode(os.urandom(48 * KIB)).decode()
            heavy = compact(data)
            seconds = ctx.cfg.disk_seconds
            watching = asyncio.ensure_future(
                readiness(server.port, timeline, time.perf_counter() + seconds)
            )
            full = await paced(f, timeline, seconds, 0.25, "while full", body=heavy)
            await watching
            filler.unlink()
            freed = time.perf_counter()
            timeline.add(f"filler deleted: {free_space(mount_dir)} free")
            recovered: float | None = None
            after: list[Probe] = []
            while time.perf_counter() - freed < RECOVERY_WITHIN:
                probe = f.valid("after freeing")
                await probe.send(server.port)
                after.append(probe)
                ready = await call(server.port, "GET", "/readyz", timeout=5.0)
                timeline.add(
                    f"delivery {probe.answer.label} {probe.answer.code()}, /readyz {ready.label}"
                )
                if probe.answer.status == 202 and ready.status == 200:
                    recovered = time.perf_counter() - freed
                    break
                await asyncio.sleep(0.5)
            stored = server.stored_guids()
            alive = server.alive()
    finally:
        with contextlib.suppress(FileNotFoundError):
            filler.unlink()
        unmounted = umount(mount_dir)
    say("  timeline:")
    timeline.show()
    say(f"  tmpfs {unmounted}")
    acked = [p for p in (*full, *after) if p.answer.ok and p.guid not in stored]
    return [
        Figure(
            case,
            "deliveries before filling",
            statuses(p.answer for p in warm),
            "202",
            all(p.answer.status == 202 for p in warm),
        ),
        Figure(
            case,
            "answers while full",
            statuses(p.answer for p in full),
            "503 (or 2xx if stored)",
            bool(full) and all(p.answer.status == 503 or p.answer.ok for p in full),
        ),
        Figure.none(case, "2xx not stored", len(acked)),
        Figure(
            case,
            "202 and /readyz ready after freeing, no restart",
            f"after {recovered:.2f} s"
            if recovered is not None
            else f"not within {RECOVERY_WITHIN:g} s",
            f"within {RECOVERY_WITHIN:g} s",
            recovered is not None and alive,
        ),
    ]


def free_space(path: Path) -> str:
    stat = os.statvfs(path)
    return mib(stat.f_bavail * stat.f_frsize / KIB)


# --- 5. secrets in logs and answers -----------------------------------------------------------

QUERY_TOKEN = re.compile(r"[?&]token=([^&\s\"'#]+)")


async def logs_session(ctx: Context) -> None:
    """A session that makes every secret travel: notices by Slack (one failed send
    first) and email, sign-ins and API calls with the token in the query, heartbeats,
    wrong credentials."""
    seen_posts, seen_mail = len(ctx.slack.posts), len(ctx.mail.messages)
    async with ctx.running("logs") as server:
        port = server.port
        f = Factory(port, ctx.keys)
        ctx.slack.fail_next = 1
        await f.probe("failing run", ACCEPTED, f.failing("logs-session", "main")).send(port)
        await f.probe(
            "wrong signature", UNSIGNED, f.body, sig=signature(f.body, ctx.keys.wrong)
        ).send(port)
        for path in (
            f"/?token={ctx.keys.api}",
            f"/api/v1/status?token={ctx.keys.api}",
            "/?token=wrong-token-0123456789",
        ):
            ctx.record(await call(port, "GET", path))
        beat = json.dumps({"report": "GOOD"}).encode()
        typed = [("Content-Type", JSON_TYPE)]
        ctx.record(
            await call(
                port,
                "POST",
                f"/api/v1/heartbeats/o/r/beat?token={ctx.keys.heartbeat}",
                headers=typed,
                body=beat,
            )
        )
        ctx.record(
            await call(
                port,
                "POST",
                "/api/v1/heartbeats/o/r/beat",
                headers=[*ctx.bearer(ctx.keys.heartbeat), *typed],
                body=beat,
            )
        )
        for path in (
            "/api/v1/rules",
            "/api/v1/outbox",
            "/api/v1/alerts",
            "/api/v1/status",
            "/api/v1/deliveries",
            "/readyz",
            "/healthz",
        ):
            ctx.record(await call(port, "GET", path, headers=ctx.bearer()))
            ctx.record(await call(port, "GET", path, headers=ctx.bearer("wrong-token-0123456789")))
        await wait_until(
            lambda: sum(b"logs-session" in b for _, b in ctx.slack.posts[seen_posts:]) >= 2, 20.0
        )
        await wait_until(lambda: len(ctx.mail.messages) > seen_mail, 10.0)
        for path in ("/api/v1/outbox", "/api/v1/alerts", "/api/v1/rules"):
            ctx.record(await call(port, "GET", path, headers=ctx.bearer()))
    sends = sum(b"logs-session" in b for _, b in ctx.slack.posts[seen_posts:])
    say(
        f"  session: Slack POSTs {sends} (the first answered 500),"
        f" emails {len(ctx.mail.messages) - seen_mail}, SMTP logins {ctx.mail.logins}"
    )


async def logs_case(ctx: Context) -> list[Figure]:
    case = "logs"
    await logs_session(ctx)
    texts = {path: path.read_text(errors="replace") for path in ctx.logs if path.exists()}
    size = sum(len(t) for t in texts.values())
    say(
        f"  scanned {len(texts)} server logs ({size / KIB:,.0f} KiB)"
        f" and {len(ctx.answers):,} API answers"
    )
    figures = []
    answers = b"\n".join(ctx.answers).decode("utf-8", "replace")
    leaks_in_answers = Counter[str]()
    for name, forms in ctx.keys.forms().items():
        found = Counter[str]()
        for path, text in texts.items():
            for form in forms:
                if hits := text.count(form):
                    found[path.parent.name] += hits
        leaks_in_answers[name] = sum(answers.count(form) for form in forms)
        where = f" ({', '.join(f'{k}: {n}' for k, n in found.most_common())})" if found else ""
        figures.append(
            Figure(case, f"{name} in the logs", f"{sum(found.values())}{where}", "0", not found)
        )
        for path, text in texts.items():
            for line in text.splitlines():
                if any(form in line for form in forms):
                    say(f"    {path.parent.name}: {redact(line, ctx.keys)[:240]}")
                    break
    queries = Counter[str]()
    for path, text in texts.items():
        queries[path.parent.name] += sum(
            1 for m in QUERY_TOKEN.finditer(text) if m.group(1).strip("*")
        )
    total = sum(queries.values())
    where = f" ({', '.join(f'{k}: {n}' for k, n in queries.most_common() if n)})" if total else ""
    figures.append(Figure(case, "?token= values in the logs", f"{total}{where}", "0", total == 0))
    leaked = sum(leaks_in_answers.values())
    detail = ", ".join(f"{k}: {n}" for k, n in leaks_in_answers.items() if n)
    figures.append(Figure.none(case, "secrets in API answers", leaked, detail))
    return figures


def redact(line: str, keys: Secrets) -> str:
    """A log line fit to print here: each secret replaced by its name."""
    for name, forms in keys.forms().items():
        for form in forms:
            line = line.replace(form, f"<{name}>")
    return line


# --- main ----------------------------------------------------------------------------------

CaseFn = Callable[[Context], Awaitable[list[Figure]]]
# In the order they run: logs last, so that it scans every server's log of the run.
CASES: dict[str, tuple[CaseFn, float]] = {
    "mutation": (mutation_case, 900.0),
    "bodies": (bodies_case, 300.0),
    "idle": (idle_case, 180.0),
    "slowloris": (loris_case, 180.0),
    "headers": (headers_case, 240.0),
    "api": (api_case, 300.0),
    "slack": (slack_case, 120.0),
    "lock": (lock_case, 180.0),
    "disk": (disk_case, 240.0),
    "logs": (logs_case, 180.0),
}
# Cases that mostly wait: with --quick they run at once, each with its own server.
TOGETHER = ("idle", "slowloris", "lock")
GROUPS = {"exhaustion": ["bodies", "idle", "slowloris", "headers"], "all": list(CASES)}


def batches(names: list[str], quick: bool) -> list[list[str]]:
    """The cases in order, one at a time; with ``quick``, TOGETHER's at the first one's place."""
    out: list[list[str]] = []
    together: list[str] = []
    for name in names:
        if quick and name in TOGETHER:
            if not together:
                out.append(together)
            together.append(name)
        else:
            out.append([name])
    return out


async def run_case(ctx: Context, name: str) -> list[Figure]:
    """One case, bounded in time; a crash or a timeout is a missed target, not the end."""
    fn, limit = CASES[name]
    lines: list[str] = [f"\n== {name} =="]
    _OUTPUT.set(lines)
    started = time.perf_counter()
    try:
        figures = await asyncio.wait_for(fn(ctx), limit)
    except Exception as exc:  # a case that cannot finish is reported; the others still run
        where = traceback.format_exc().strip().splitlines()[-6:]
        say("  FAILED: " + "\n  ".join(where))
        failure = f"no: {type(exc).__name__}: {str(exc)[:200]}"
        figures = [Figure(name, "case ran to its end", failure, "yes", False)]
    say(f"  ({time.perf_counter() - started:.1f} s)")
    _OUTPUT.set(None)
    print("\n".join(lines), flush=True)
    return figures


def summary(figures: list[Figure]) -> None:
    print("\n## Summary\n")
    print("| case | figure | measured | target | met |")
    print("|---|---|---|---|---|")
    for fig in figures:
        met = {True: "yes", False: "**NO**", None: "–"}[fig.met]
        cells = (fig.case, fig.name, fig.value, fig.target, met)
        print("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")


def raise_open_files() -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return f"raised from {soft} to {hard}"
    return f"{soft} (already the hard limit)"


async def run(args: argparse.Namespace, cfg: Config) -> list[Figure]:
    keys = Secrets.fresh()
    slack = SlackStandIn(keys.slack_path)
    mail = MailStandIn(keys.smtp_user, keys.smtp_password)
    await slack.start()
    mail.start()
    figures: list[Figure] = []
    try:
        with tempfile.TemporaryDirectory(prefix="pulsehook-abuse-") as tmp:
            root = Path(tmp)
            rules_dir = root / "rules"
            rules_dir.mkdir()
            (rules_dir / "abuse.toml").write_text(RULE_TOML)
            ctx = Context(
                cfg=cfg, keys=keys, root=root, rules_dir=rules_dir, slack=slack, mail=mail
            )
            for batch in batches(args.cases, cfg.quick):
                for found in await asyncio.gather(*(run_case(ctx, name) for name in batch)):
                    figures += found
            if args.keep_logs is not None:
                keep_logs(ctx.logs, args.keep_logs)
    finally:
        mail.stop()
        await slack.stop()
    return figures


def keep_logs(logs: list[Path], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for log in logs:
        if log.exists():
            shutil.copyfile(log, into / f"{log.parent.name}.log")
    print(f"\nserver logs copied to {into}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--quick", action="store_true", help="fewer requests, shorter waits (a smoke run)"
    )
    p.add_argument(
        "--case", action="append", choices=[*CASES, *GROUPS], help="run only this case (repeatable)"
    )
    p.add_argument(
        "--keep-logs",
        type=Path,
        metavar="DIR",
        help="copy every server's log to DIR (they may hold this run's secrets)",
    )
    p.add_argument(
        "--server-nofile",
        type=int,
        default=1024,
        help="soft RLIMIT_NOFILE the server starts with (1024)",
    )
    args = p.parse_args(argv)
    chosen = args.case or ["all"]
    wanted = {c for name in chosen for c in GROUPS.get(name, [name])}
    args.cases = [c for c in CASES if c in wanted]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # aiosmtpd logs a deprecation notice of its own at every login.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    cfg = Config.of(args.quick, args.server_nofile)
    pinned = "not pinned"
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > CLIENT_CPU:
        os.sched_setaffinity(0, {CLIENT_CPU})
        pinned = f"CPU {CLIENT_CPU}"
    files = raise_open_files()
    fingerprint = source_fingerprint()
    print(f"pulsehook sources: {fingerprint}")
    print(
        f"cases: {', '.join(args.cases)}{' (quick)' if cfg.quick else ''};"
        f" servers `pulsehook --debug serve` on CPU {SERVER_CPU}"
        f" with soft RLIMIT_NOFILE {cfg.server_nofile};"
        f" this process on {pinned}, RLIMIT_NOFILE {files}"
    )
    started = time.monotonic()
    figures = asyncio.run(run(args, cfg))
    summary(figures)
    if source_fingerprint() != fingerprint:
        print("\nWARNING: pulsehook's sources changed during the run; the figures mix versions")
    missed = [f for f in figures if f.met is False]
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    verdict = "PASS — every target met" if not missed else f"FAIL — {len(missed)} targets missed"
    print(f"verdict: {verdict}")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
