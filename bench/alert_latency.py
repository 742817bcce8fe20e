"""Alert latency under steady load: from a delivery's 2xx answer to the Slack POST
of the alert it caused, against a bare floor receiver in the same run.

    .venv/bin/python bench/alert_latency.py [--seconds 60] [--rates 50,200,1000]
        [--burst 5000] [--drain 30] [--skip-floor] [--skip-burst]

``pulsehook serve`` (pinned to CPU 0, fresh data directory per phase) runs one
rule, ``build_failure`` (``build.status == 'failure' and build.default_branch``,
immediate, Slack; not grouped and the channel unpaced, so each alert is its own
notice, sent as soon as it can be), with SLACK_WEBHOOK_URL pointing at a stand-in that runs in
this process, on its own thread and event loop: it answers 200 "ok" at once
and records the ``time.perf_counter()`` at which each POST's body is complete.

Each delivery is GitHub's real ``workflow_run.completed`` example, compact and
signed (X-Hub-Signature-256), with a fresh X-GitHub-Delivery. Nine in ten are
the same successful run of the example's workflow; one in ten is a failed run
on the default branch of a new workflow ``wf-N`` (its own run and workflow ids),
so every one is a new alert subject (no flap damping, no deduplication). The
stand-in finds ``wf-N`` in the Slack body and matches it to the moment the
delivery that caused it was answered 2xx. Bodies, signatures and request heads
are built before the timed phase.

Steady phases are open loop: request i is sent at start + i/rate whatever the
earlier answers did, on a pool of 64 keep-alive connections (hand-written
HTTP/1.1, as bench/loadgen.py); a request due while no connection is free is a
"late send" and gets a new connection (up to 1,024 open, then it waits). After
the timed phase the bench waits (at most ``--drain`` seconds) for the outstanding
alerts; an alert that does not arrive counts as infinitely late. Targets: alert
p99 <= 0.5 s up to 200/s, <= 2 s above (1000/s), with every alert received and
no webhook error.

The burst phase (fresh server) sends ``--burst`` deliveries, same mix, as fast as
64 connections allow (closed loop). Targets: no error, every answer < 100 ms,
every alert at Slack within 5 s of the burst's last answer.

The floor is a bare receiver (uvicorn running ``floor_app`` below, also pinned
to CPU 0) that, inside each request, checks the HMAC, inserts the raw body into
SQLite (WAL, one insert + commit), parses the JSON and, for a failed run on
the default branch, POSTs ``{"text": ...}`` to the same stand-in with httpx
before it answers. Its alerts therefore arrive before its answers: its
answer-to-alert figures are at or below zero ("from send" shows the full path).
The floor's figures are for comparison; only pulsehook's decide the exit code.

Answer times run from the request's write to its answer; "send lag" is how late
the generator wrote requests against the schedule. This process (load
generator and stand-in) pins itself to CPU 1. CPU used meanwhile by other
processes is shown per phase, and flagged over 10 % of a CPU. Exit code 0 when
every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import gc
import hashlib
import hmac
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from loadgen import PATH, PAYLOAD, Target, percentile, read_response
from receivers import (
    BENCH_DIR,
    free_port,
    installed,
    process_ticks,
    source_fingerprint,
    ticks_since,
    verify_and_store,
)

SECRET = "bench-alert-latency-secret"
# Every alert its own notice, sent as soon as it can be: this measures the path from
# delivery to channel. Grouping and pacing would hold a steady stream of new alerts
# for the group's window and the channel's pace (bench/alert_storm.py measures those).
RULE_TOML = """\
[channels.slack]
webhook_url = "${SLACK_WEBHOOK_URL}"
rate = "off"

[[rule]]
name = "build_failure"
condition = "build.status == 'failure' and build.default_branch"
channels = ["slack"]
frequency = "immediate"
group = false
"""
FAIL_EVERY = 10  # one delivery in ten is a failed run of a new workflow
CONNECTIONS = 64
MAX_CONNECTIONS = 1024  # past this, a late request waits for a free connection
REQUEST_TIMEOUT = 30.0
START_TIMEOUT = 60.0
WARMUP_DELIVERIES = 20
SERVER_CPU, CLIENT_CPU = 0, 1
BURST_MAX_MS, BURST_ALERTS_S = 100.0, 5.0
FLOOR_DB = "floor.db"
OTHER_CPU_WARN = 0.10  # more CPU than this used by other processes: the figures are suspect

NAME_MARK = "__bench_failing_workflow__"
RUN_MARK, WORKFLOW_MARK = 987650000001, 987650000002
RUN_BASE, WORKFLOW_BASE = 7_000_000_000, 8_000_000_000
NAME_RE = re.compile(rb"\bwf-(\d+)\b")
OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
REQUEST_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def target_for(rate: float) -> float:
    """The alert p99 target at ``rate`` deliveries/s: 0.5 s up to 200/s, 2 s above."""
    return 0.5 if rate <= 200 else 2.0


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def compact(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


# --- the deliveries ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Planned:
    head: bytes
    body: bytes
    name: str | None  # the failing workflow's name, for the deliveries that alert


class Mix:
    """Nine in ten: the example's successful run. One in ten: a failed run of ``wf-N``."""

    def __init__(self) -> None:
        base = json.loads(PAYLOAD.read_text())
        self.repo: str = base["repository"]["full_name"]
        self.default_branch: str = base["repository"]["default_branch"]
        workflow = base.get("workflow") if isinstance(base.get("workflow"), dict) else {}
        self.workflow: str = workflow.get("name") or base["workflow_run"]["name"]
        good = copy.deepcopy(base)
        good["workflow_run"].update(
            status="completed", conclusion="success", head_branch=self.default_branch
        )
        self.success = compact(good)
        self.success_signature = sign(self.success)
        bad = copy.deepcopy(base)
        bad["workflow_run"].update(
            status="completed",
            conclusion="failure",
            head_branch=self.default_branch,
            name=NAME_MARK,
            id=RUN_MARK,
            workflow_id=WORKFLOW_MARK,
        )
        if isinstance(bad.get("workflow"), dict):
            bad["workflow"].update(name=NAME_MARK, id=WORKFLOW_MARK)
        self.template = compact(bad)
        for mark in (NAME_MARK, str(RUN_MARK), str(WORKFLOW_MARK)):
            assert self.template.count(mark.encode()) >= 1, mark
        assert not NAME_RE.search(self.success) and not NAME_RE.search(self.template)
        self.numbers = itertools.count(1)

    def failing(self, n: int) -> bytes:
        return (
            self.template.replace(NAME_MARK.encode(), f"wf-{n}".encode())
            .replace(str(RUN_MARK).encode(), str(RUN_BASE + n).encode())
            .replace(str(WORKFLOW_MARK).encode(), str(WORKFLOW_BASE + n).encode())
        )

    def plan(self, port: int, count: int) -> list[Planned]:
        """``count`` requests, every tenth a failed run of a new workflow."""
        good = Target(port=port, body=self.success, signature=self.success_signature)
        items = []
        for i in range(count):
            if i % FAIL_EVERY == FAIL_EVERY - 1:
                n = next(self.numbers)
                body = self.failing(n)
                bad = Target(port=port, body=body, signature=sign(body))
                items.append(Planned(bad.raw_head(str(uuid.uuid4())), body, f"wf-{n}"))
            else:
                items.append(Planned(good.raw_head(str(uuid.uuid4())), self.success, None))
        return items


# --- the Slack stand-in ----------------------------------------------------------------


class SlackStandIn:
    """An HTTP/1.1 server on its own thread and loop: 200 "ok" to everything, and the
    receive time of each POST that names exactly one ``wf-N``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.posts = 0
        self.duplicates = 0
        self.unmatched: list[bytes] = []
        self.sample: str | None = None
        self._arrivals: dict[str, float] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="slack-stand-in", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T0BENCH/B0BENCH/alert-latency"

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"the Slack stand-in did not start: {self._error}")

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def arrivals(self, names: Iterable[str]) -> dict[str, float]:
        with self._lock:
            return {n: self._arrivals[n] for n in names if n in self._arrivals}

    def _record(self, line: bytes, body: bytes, at: float) -> None:
        names = {m.decode() for m in NAME_RE.findall(body)}
        with self._lock:
            self.posts += 1
            if not line.startswith(b"POST ") or len(names) != 1:
                if len(self.unmatched) < 5:
                    self.unmatched.append(body[:300])
                return
            name = f"wf-{names.pop()}"
            if name in self._arrivals:
                self.duplicates += 1
                return
            self._arrivals[name] = at
            if self.sample is None:
                with contextlib.suppress(ValueError, TypeError):
                    self.sample = str(json.loads(body).get("text"))[:200]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
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
                self._record(lines[0], body, time.perf_counter())
                writer.write(OK_RESPONSE)
                await writer.drain()
                if headers.get(b"connection") == b"close":
                    return
        except (*REQUEST_ERRORS, asyncio.CancelledError):
            return
        finally:
            writer.close()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port)
            )
        except OSError as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()


# --- the floor receiver (served by uvicorn in its own process) ---------------------------


def floor_app() -> Starlette:
    """HMAC check, one INSERT + COMMIT, a JSON parse and, for a failed run on the
    default branch, the Slack POST — all before answering."""
    data_dir = Path(os.environ["BENCH_DATA_DIR"])
    secret = os.environ["BENCH_SECRET"].encode()
    slack_url = os.environ["BENCH_SLACK_URL"]
    conn = sqlite3.connect(data_dir / FLOOR_DB, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS deliveries (guid TEXT PRIMARY KEY, event TEXT, body BLOB)"
    )
    clients: list[httpx.AsyncClient] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
        async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
            clients.append(client)
            yield

    async def receive(request: Request) -> Response:
        body = await verify_and_store(request, secret, conn)
        if body is None:
            return Response(status_code=401)
        event = request.headers.get("x-github-event", "")
        data = orjson.loads(body)
        run = data.get("workflow_run") or {}
        repo = data.get("repository") or {}
        branch = run.get("head_branch")
        if (
            event == "workflow_run"
            and run.get("conclusion") == "failure"
            and branch
            and branch == repo.get("default_branch")
        ):
            name = (data.get("workflow") or {}).get("name") or run.get("name")
            text = (
                f":red_circle: *FIRING* `build_failure` — *{repo.get('full_name')}*:"
                f" {name} on {branch}: failure <{run.get('html_url')}|open>"
            )
            answer = await clients[0].post(slack_url, json={"text": text})
            answer.raise_for_status()
        return Response(status_code=202)

    return Starlette(
        routes=[Route(PATH, receive, methods=["POST"])],
        lifespan=lifespan,
    )


# --- processes --------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    """This environment without anything that would configure pulsehook or a channel."""
    dropped = ("PULSEHOOK_", "SLACK_", "DISCORD_", "BENCH_")
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(dropped) and k not in ("GITHUB_TOKEN", "PULSE_SCAN_INTERVAL")
    }


def pin_prefix(cpu: int) -> tuple[list[str], Callable[[], None] | None]:
    """(command prefix, preexec_fn) that pin a child to ``cpu``, when this machine can."""
    if (os.cpu_count() or 1) <= cpu:
        return [], None
    if shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)], None
    if hasattr(os, "sched_setaffinity"):
        return [], lambda: os.sched_setaffinity(0, {cpu})
    return [], None


class Server:
    """``pulsehook serve`` or the floor: one process, pinned, with its own data dir."""

    def __init__(self, system: str, root: Path, slack_url: str) -> None:
        self.system = system
        self.port = free_port()
        self.data_dir = root / f"{system}-{self.port}"
        self.data_dir.mkdir(parents=True)
        self.rules_dir = root / "rules"
        self.slack_url = slack_url
        self.log_path = self.data_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = clean_env()
        host = ["--host", "127.0.0.1", "--port", str(self.port)]
        if self.system == "pulsehook":
            script = Path(sys.executable).with_name("pulsehook")
            cli = [str(script)] if script.exists() else [sys.executable, "-m", "pulsehook"]
            env.update(PULSEHOOK_WEBHOOK_SECRET=SECRET, SLACK_WEBHOOK_URL=self.slack_url)
            cmd = [*cli, "serve", *host, "--data-dir", str(self.data_dir)]
            cmd += ["--rules-dir", str(self.rules_dir), "--log-level", "warning"]
            return cmd, env
        env.update(
            BENCH_DATA_DIR=str(self.data_dir), BENCH_SECRET=SECRET, BENCH_SLACK_URL=self.slack_url
        )
        cmd = [sys.executable, "-m", "uvicorn", "alert_latency:floor_app", "--factory"]
        cmd += ["--app-dir", str(BENCH_DIR), *host, "--log-level", "warning", "--no-access-log"]
        cmd += ["--loop", "uvloop" if installed("uvloop") else "asyncio"]
        cmd += ["--http", "httptools" if installed("httptools") else "h11"]
        return cmd, env

    def start(self) -> None:
        cmd, env = self.command()
        prefix, preexec = pin_prefix(SERVER_CPU)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*prefix, *cmd],
                cwd=self.data_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.system} exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.system} did not listen in {START_TIMEOUT:.0f} s")

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

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU of the whole process (all threads); 0 once it is gone."""
        assert self.proc is not None
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def affinity(self) -> str:
        if self.proc is None or not hasattr(os, "sched_getaffinity"):
            return "?"
        try:
            return ",".join(str(c) for c in sorted(os.sched_getaffinity(self.proc.pid)))
        except OSError:
            return "?"

    def store(self) -> str:
        """What the server's database holds, read on a separate read-only connection."""
        name = "pulsehook.db" if self.system == "pulsehook" else FLOOR_DB
        uri = f"file:{self.data_dir / name}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
                if self.system != "pulsehook":
                    rows = conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]
                    return f"{rows:,} rows stored"
                deliveries = dict(
                    conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status")
                )
                outbox = dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY status"))
        except sqlite3.Error as exc:
            return f"store not readable: {exc}"
        return f"deliveries {_counts(deliveries)}; outbox {_counts(outbox)}"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "empty"


# --- load ------------------------------------------------------------------------------


@dataclass
class Load:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    unsent: int = 0  # the time limit stopped the schedule
    late: int = 0  # due while no keep-alive connection was free
    opened: int = 0  # connections opened, the initial pool included
    statuses: Counter[int] = field(default_factory=Counter)  # 0: no answer
    failures: Counter[str] = field(default_factory=Counter)  # why there was no answer
    answers: list[float] = field(default_factory=list)  # write -> answer, seconds
    lag: list[float] = field(default_factory=list)  # actual send - scheduled send, seconds
    answered_at: dict[str, float] = field(default_factory=dict)  # failing name -> 2xx time
    sent_at: dict[str, float] = field(default_factory=dict)
    not_ok: set[str] = field(default_factory=set)  # failing deliveries without a 2xx
    last_answer: float = 0.0

    def record(self, item: Planned, status: int, sent: float, answered: float) -> None:
        self.statuses[status] += 1
        self.answers.append(answered - sent)
        self.last_answer = max(self.last_answer, answered)
        if 200 <= status < 300:
            self.ok += 1
            if item.name:
                self.answered_at[item.name] = answered
                self.sent_at[item.name] = sent
        else:
            self.errors += 1
            if item.name:
                self.not_ok.add(item.name)

    def fail(self, item: Planned, exc: BaseException) -> None:
        self.errors += 1
        self.statuses[0] += 1
        self.failures[type(exc).__name__] += 1
        if item.name:
            self.not_ok.add(item.name)


class Pool:
    """Keep-alive connections to one server, handed out one request at a time."""

    def __init__(self, port: int, load: Load) -> None:
        self.port = port
        self.load = load
        self.idle: deque[Conn] = deque()
        self.live = 0

    async def connect(self) -> Conn:
        self.live += 1
        self.load.opened += 1
        try:
            return await asyncio.open_connection("127.0.0.1", self.port)
        except BaseException:
            self.live -= 1
            raise

    async def fill(self, count: int) -> None:
        for _ in range(count):
            self.idle.append(await self.connect())

    async def acquire(self, deadline: float) -> Conn:
        while not self.idle and self.live >= MAX_CONNECTIONS:
            if time.perf_counter() > deadline:
                raise TimeoutError("no connection became free")
            await asyncio.sleep(0.001)
        return self.idle.popleft() if self.idle else await self.connect()

    def release(self, conn: Conn, close: bool) -> None:
        if close:
            self.discard(conn)
        else:
            self.idle.append(conn)

    def discard(self, conn: Conn) -> None:
        self.live -= 1
        conn[1].close()

    def close(self) -> None:
        while self.idle:
            self.discard(self.idle.popleft())


async def exchange(conn: Conn, item: Planned) -> tuple[int, bool]:
    reader, writer = conn
    writer.write(item.head)
    writer.write(item.body)
    await writer.drain()
    return await read_response(reader)


async def fire(pool: Pool, item: Planned, conn: Conn | None) -> None:
    """One request of the open loop, on ``conn`` or, if none was free, on a new one."""
    load = pool.load
    deadline = time.perf_counter() + REQUEST_TIMEOUT
    sent = time.perf_counter()
    try:
        if conn is None:
            conn = await asyncio.wait_for(pool.acquire(deadline), REQUEST_TIMEOUT)
        status, close = await asyncio.wait_for(exchange(conn, item), REQUEST_TIMEOUT)
    except (*REQUEST_ERRORS, TimeoutError, asyncio.CancelledError) as exc:
        load.fail(item, exc)
        if conn is not None:
            pool.discard(conn)
        if isinstance(exc, asyncio.CancelledError):
            raise
        return
    load.record(item, status, sent, time.perf_counter())
    pool.release(conn, close)


async def open_loop(port: int, plan: list[Planned], rate: float, seconds: float) -> Load:
    """Send ``plan[i]`` at start + i/rate, whatever the answers do."""
    load = Load()
    pool = Pool(port, load)
    await pool.fill(CONNECTIONS)
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter() + 0.02
    limit = start + seconds + 30.0
    try:
        for i, item in enumerate(plan):
            due = start + i / rate
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
                now = time.perf_counter()
            if now > limit:
                load.unsent = len(plan) - i
                break
            load.lag.append(now - due)
            conn = pool.idle.popleft() if pool.idle else None
            if conn is None:
                load.late += 1
            load.sent += 1
            task = asyncio.create_task(fire(pool, item, conn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            _, pending = await asyncio.wait(set(tasks), timeout=REQUEST_TIMEOUT + 10)
            for task in pending:
                task.cancel()  # counted as errors by fire()
            await asyncio.gather(*pending, return_exceptions=True)
    finally:
        pool.close()
    return load


async def closed_loop(port: int, plan: list[Planned], connections: int) -> Load:
    """Send ``plan`` as fast as ``connections`` keep-alive connections allow."""
    load = Load()
    pool = Pool(port, load)
    await pool.fill(connections)
    items: Iterator[Planned] = iter(plan)
    deadline = time.perf_counter() + 120.0

    async def worker(conn: Conn | None) -> None:
        try:
            for item in items:
                if time.perf_counter() > deadline:
                    load.unsent += 1
                    continue
                load.sent += 1
                sent = time.perf_counter()
                try:
                    if conn is None:
                        conn = await asyncio.wait_for(pool.connect(), REQUEST_TIMEOUT)
                    status, close = await asyncio.wait_for(exchange(conn, item), REQUEST_TIMEOUT)
                except (*REQUEST_ERRORS, TimeoutError) as exc:
                    load.fail(item, exc)
                    if conn is not None:
                        pool.discard(conn)
                    conn = None
                    continue
                load.record(item, status, sent, time.perf_counter())
                if close:
                    pool.discard(conn)
                    conn = None
        finally:
            if conn is not None:
                pool.discard(conn)

    conns = [pool.idle.popleft() for _ in range(len(pool.idle))]
    await asyncio.gather(*(worker(c) for c in conns))
    return load


async def wait_for_alerts(slack: SlackStandIn, names: Iterable[str], until: float) -> None:
    waiting = set(names)
    while waiting and time.perf_counter() < until:
        waiting -= set(slack.arrivals(waiting))
        if waiting:
            await asyncio.sleep(0.05)


async def warm_up(server: Server, slack: SlackStandIn, mix: Mix, seconds: float) -> float:
    """A few paced deliveries, two of them alerting, so the measured ones find a warm
    service; the seconds the slower warm-up alert took."""
    plan = mix.plan(server.port, WARMUP_DELIVERIES)
    load = Load()
    pool = Pool(server.port, load)
    conn = await pool.connect()
    try:
        for item in plan:
            sent = time.perf_counter()
            status, _ = await asyncio.wait_for(exchange(conn, item), REQUEST_TIMEOUT)
            load.record(item, status, sent, time.perf_counter())
            await asyncio.sleep(0.01)
    finally:
        pool.discard(conn)
    if load.errors:
        raise RuntimeError(f"warm-up answers: {dict(load.statuses)}")
    await wait_for_alerts(slack, load.answered_at, time.perf_counter() + seconds)
    got = slack.arrivals(load.answered_at)
    if len(got) != len(load.answered_at):
        raise RuntimeError(
            f"warm-up: {len(got)} of {len(load.answered_at)} alerts reached Slack in"
            f" {seconds:.0f} s — is the rule firing?\n{server.log_tail()}"
        )
    return max(got[n] - load.answered_at[n] for n in got)


# --- phases and figures ------------------------------------------------------------------


@dataclass
class Phase:
    system: str
    load_name: str  # "200/s" or "burst 5000"
    rate: float | None = None  # None for the burst
    seconds: float = 0.0
    load: Load = field(default_factory=Load)
    latencies: list[float] = field(default_factory=list)  # answer -> Slack, inf if missing
    from_send: list[float] = field(default_factory=list)  # write -> Slack
    received: int = 0
    alerted_not_ok: int = 0  # alerts for deliveries that were not answered 2xx
    server_cpu: float = 0.0
    other_cpu: float = 0.0  # CPUs used meanwhile by processes neither the bench's nor the server's
    warmup_alert: float = 0.0
    store_after_load: str = ""
    store_after_wait: str = ""
    after_burst: float = math.nan  # burst's last answer -> last alert, seconds
    failure: str | None = None

    @property
    def expected(self) -> int:
        return len(self.load.answered_at)

    @property
    def missing(self) -> int:
        return self.expected - self.received

    @property
    def target(self) -> float:
        return target_for(self.rate) if self.rate is not None else BURST_ALERTS_S

    def problems(self) -> list[str]:
        """Why the targets are not met (empty: they are)."""
        if self.failure:
            return [self.failure]
        found = []
        if self.load.errors:
            found.append(f"{self.load.errors} webhook errors")
        if self.load.unsent:
            found.append(f"{self.load.unsent} not sent in the time limit")
        if not self.expected:
            found.append("no alert expected")
        if self.missing:
            found.append(f"{self.missing} alerts missing")
        if self.rate is not None:
            p99 = percentile(self.latencies, 99)
            if self.latencies and p99 > self.target:
                found.append(f"alert p99 {unit(secs(p99))} > {self.target:g} s")
        else:
            worst = max(self.load.answers, default=0.0) * 1000
            if worst >= BURST_MAX_MS:
                found.append(f"max answer {worst:.1f} ms >= {BURST_MAX_MS:g} ms")
            if not math.isnan(self.after_burst) and self.after_burst > BURST_ALERTS_S:
                found.append(
                    f"last alert {self.after_burst:.2f} s after the burst > {BURST_ALERTS_S:g} s"
                )
        return found

    @property
    def busy_machine(self) -> bool:
        return self.other_cpu > OTHER_CPU_WARN and self.seconds >= 1.0

    @property
    def passed(self) -> bool:
        return not self.problems()


def secs(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "never"
    return f"{value:.3f}"


def unit(text: str) -> str:
    return text if text in ("n/a", "never") else f"{text} s"


def ms(values: list[float], q: float | None) -> str:
    if not values:
        return "n/a"
    value = max(values) if q is None else percentile(values, q)
    return f"{value * 1000:.2f}"


def stats(values: list[float]) -> tuple[str, str, str]:
    if not values:
        return "n/a", "n/a", "n/a"
    return (secs(percentile(values, 50)), secs(percentile(values, 99)), secs(max(values)))


def settle(phase: Phase, slack: SlackStandIn) -> None:
    """Match the Slack arrivals to the answers that caused them."""
    load = phase.load
    got = slack.arrivals(load.answered_at)
    phase.received = len(got)
    phase.latencies = [got.get(n, math.inf) - t for n, t in load.answered_at.items()]
    phase.from_send = [got.get(n, math.inf) - load.sent_at[n] for n in load.answered_at]
    phase.alerted_not_ok = len(slack.arrivals(load.not_ok))
    if phase.rate is None and got:
        phase.after_burst = max(got.values()) - load.last_answer if not phase.missing else math.inf


async def measure(
    phase: Phase, server: Server, slack: SlackStandIn, mix: Mix, args: argparse.Namespace
) -> None:
    phase.warmup_alert = await warm_up(server, slack, mix, args.drain)
    count = int(phase.rate * args.seconds) if phase.rate is not None else args.burst
    plan = mix.plan(server.port, count)
    gc.collect()
    gc.freeze()  # so that no full collection over the plan and the modules stalls the sender
    try:
        own = {os.getpid(), server.pid}
        others, cpu_before, started = process_ticks(own), server.cpu_seconds(), time.perf_counter()
        if phase.rate is not None:
            phase.load = await open_loop(server.port, plan, phase.rate, args.seconds)
        else:
            phase.load = await closed_loop(server.port, plan, CONNECTIONS)
        ended = time.perf_counter()
    finally:
        gc.unfreeze()
    phase.seconds = ended - started
    phase.server_cpu = (server.cpu_seconds() - cpu_before) / max(phase.seconds, 1e-9)
    phase.other_cpu = ticks_since(others, process_ticks(own)) / max(phase.seconds, 1e-9)
    del plan
    phase.store_after_load = server.store()
    await wait_for_alerts(slack, phase.load.answered_at, ended + args.drain)
    settle(phase, slack)
    phase.store_after_wait = server.store()
    if not server.alive():
        phase.failure = f"{server.system} exited during the phase:\n{server.log_tail()}"


def run_phase(
    runner: asyncio.Runner,
    system: str,
    rate: float | None,
    root: Path,
    slack: SlackStandIn,
    mix: Mix,
    args: argparse.Namespace,
) -> Phase:
    name = f"{rate:g}/s" if rate is not None else f"burst {args.burst}"
    phase = Phase(system=system, load_name=name, rate=rate)
    server = Server(system, root, slack.url)
    try:
        server.start()
        runner.run(measure(phase, server, slack, mix, args))
        phase.store_after_wait += f"  (server allowed on CPUs {server.affinity()})"
    except Exception as exc:  # a broken phase is reported; the others still run
        phase.failure = f"{type(exc).__name__}: {exc}"
    finally:
        server.stop()
    report(phase)
    return phase


def report(phase: Phase) -> None:
    load = phase.load
    print(f"\n== {phase.system} — {phase.load_name} ==")
    if phase.failure and not load.sent:
        print(f"  FAILED: {phase.failure}")
        return
    rate = load.sent / phase.seconds if phase.seconds else 0.0
    print(
        f"  deliveries sent {load.sent:,} in {phase.seconds:.1f} s ({rate:,.0f}/s)"
        f"  2xx {load.ok:,}  errors {load.errors:,}"
        + (f" {dict(load.statuses)} {dict(load.failures)}" if load.errors else "")
        + (f"  NOT SENT {load.unsent:,}" if load.unsent else "")
    )
    if phase.rate is not None:
        print(
            f"  late sends {load.late:,} (connections opened {load.opened:,});"
            f" send lag p99 {ms(load.lag, 99)} ms, max {ms(load.lag, None)} ms"
        )
    print(
        f"  webhook answer: p50 {ms(load.answers, 50)} ms  p99 {ms(load.answers, 99)} ms"
        f"  max {ms(load.answers, None)} ms   server CPU {phase.server_cpu:.0%}"
        f"  other processes {phase.other_cpu:.0%}"
        + ("  WARNING: another workload shared the machine" if phase.busy_machine else "")
    )
    p50, p99, worst = stats(phase.latencies)
    s50, s99, _ = stats(phase.from_send)
    print(
        f"  alerts expected {phase.expected:,}  received {phase.received:,}"
        + (f"  MISSING {phase.missing:,}" if phase.missing else "")
        + (f"  (also {phase.alerted_not_ok} for non-2xx)" if phase.alerted_not_ok else "")
    )
    print(
        f"  alert latency (answer -> Slack): p50 {unit(p50)}  p99 {unit(p99)}"
        f"  max {unit(worst)}   (from send: p50 {unit(s50)}, p99 {unit(s99)})"
    )
    if phase.rate is None:
        slowest = max(load.answers, default=0.0) * 1000
        print(
            f"  0 errors: {'yes' if not load.errors else 'NO'};"
            f" max answer {slowest:.2f} ms (target < {BURST_MAX_MS:g} ms):"
            f" {'yes' if slowest < BURST_MAX_MS else 'NO'};"
            f" burst's last answer -> last alert {unit(secs(phase.after_burst))}"
            f" (target <= {BURST_ALERTS_S:g} s):"
            f" {'yes' if phase.after_burst <= BURST_ALERTS_S else 'NO'}"
        )
    else:
        holds = (
            bool(phase.expected)
            and phase.received == phase.expected
            and percentile(phase.latencies, 99) <= phase.target
        )
        print(f"  target alert p99 <= {phase.target:g} s: {'holds' if holds else 'does not hold'}")
    print(f"  warm-up alert took {phase.warmup_alert:.3f} s")
    print(f"  store when the load ended: {phase.store_after_load}")
    print(f"  store after the wait:      {phase.store_after_wait}")
    problems = phase.problems()
    word = ("PASS" if not problems else "FAIL") if phase.system == "pulsehook" else "floor"
    detail = "all targets met" if not problems else "; ".join(problems)
    print(f"  verdict: {word} — {detail}")


def summary(phases: list[Phase]) -> None:
    steady = [p for p in phases if p.rate is not None]
    bursts = [p for p in phases if p.rate is None]

    def result(p: Phase) -> str:
        if p.system == "pulsehook":
            return "PASS" if p.passed else "**FAIL**"
        return "meets" if p.passed else "misses"

    print("\n## Summary\n")
    if steady:
        print(
            "| system | rate | sent | 2xx | errors | late sends | send lag p99 ms"
            " | answer p50 / p99 / max ms | server CPU | alerts expected / received"
            " | alert p50 / p99 / max s | target p99 | result |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for p in steady:
            a = p.load.answers
            p50, p99, worst = stats(p.latencies)
            print(
                f"| {p.system} | {p.load_name} | {p.load.sent:,} | {p.load.ok:,}"
                f" | {p.load.errors:,} | {p.load.late:,} | {ms(p.load.lag, 99)}"
                f" | {ms(a, 50)} / {ms(a, 99)} / {ms(a, None)} | {p.server_cpu:.0%}"
                f" | {p.expected:,} / {p.received:,} | {p50} / {p99} / {worst}"
                f" | ≤ {p.target:g} s | {result(p)} |"
            )
    if bursts:
        print(
            "\n| system | burst | 2xx | errors | answer p99 / max ms (max < 100)"
            " | alerts expected / received | alert p50 / p99 / max s"
            " | last answer → last alert s (≤ 5) | result |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for p in bursts:
            a = p.load.answers
            p50, p99, worst = stats(p.latencies)
            print(
                f"| {p.system} | {p.load.sent:,} | {p.load.ok:,} | {p.load.errors:,}"
                f" | {ms(a, 99)} / {ms(a, None)} | {p.expected:,} / {p.received:,}"
                f" | {p50} / {p99} / {worst} | {secs(p.after_burst)} | {result(p)} |"
            )
    busy = [f"{p.system} {p.load_name}" for p in phases if p.busy_machine]
    if busy:
        print(
            f"\nWARNING: other processes used more than {OTHER_CPU_WARN:.0%} of a CPU during:"
            f" {', '.join(busy)}; rerun on a quiet machine"
        )
    print(
        "\nAlert latency runs from the delivery's 2xx answer to the stand-in's receipt of"
        " the Slack POST; a missing alert counts as never. The floor posts to Slack"
        " before it answers, so its answer-to-alert figures are at or below zero."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="seconds per rate (default 60)")
    p.add_argument("--rates", default="50,200,1000", help="deliveries/s, comma-separated")
    p.add_argument("--burst", type=int, default=5000, help="deliveries in the burst phase")
    p.add_argument(
        "--drain", type=float, default=30.0, help="longest wait for alerts after a phase (s)"
    )
    p.add_argument("--skip-floor", action="store_true", help="pulsehook only")
    p.add_argument("--skip-burst", action="store_true", help="no burst phase")
    args = p.parse_args(argv)
    try:
        args.rate_list = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        p.error(f"--rates: not a list of numbers: {args.rates!r}")
    if any(r <= 0 for r in args.rate_list) or args.seconds <= 0 or args.burst < FAIL_EVERY:
        p.error("rates and --seconds must be positive, --burst at least 10")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pinned = "not pinned"
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > CLIENT_CPU:
        os.sched_setaffinity(0, {CLIENT_CPU})
        pinned = f"CPU {CLIENT_CPU}"
    sys.setswitchinterval(0.0005)  # the stand-in's thread stamps arrivals promptly
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if installed("uvloop"):
        import uvloop

        loop_factory = uvloop.new_event_loop
    mix = Mix()
    systems = ["pulsehook"] if args.skip_floor else ["pulsehook", "floor"]
    fingerprint = source_fingerprint()
    server_pin = pin_prefix(SERVER_CPU)
    print(f"pulsehook sources: {fingerprint}")
    print(
        f"body: {PAYLOAD.name}, {len(mix.success):,} bytes compact; 1 in {FAIL_EVERY} a failed"
        f" run on {mix.default_branch!r} of a new workflow wf-N, else {mix.workflow!r} succeeding"
        f" ({mix.repo})"
    )
    print(
        f"servers on CPU {SERVER_CPU} ({'taskset' if server_pin[0] else 'sched_setaffinity'}"
        f" if available), load generator and Slack stand-in on {pinned};"
        f" rates {args.rates}/s for {args.seconds:g} s each; burst {args.burst};"
        f" alerts awaited up to {args.drain:g} s"
    )
    slack = SlackStandIn()
    slack.start()
    phases: list[Phase] = []
    started = time.monotonic()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="pulsehook-alert-latency-") as tmp,
            asyncio.Runner(loop_factory=loop_factory) as runner,
        ):
            root = Path(tmp)
            (root / "rules").mkdir()
            (root / "rules" / "build_failure.toml").write_text(RULE_TOML)
            for rate in args.rate_list:
                for system in systems:
                    phases.append(run_phase(runner, system, rate, root, slack, mix, args))
            if not args.skip_burst:
                for system in systems:
                    phases.append(run_phase(runner, system, None, root, slack, mix, args))
    finally:
        slack.stop()
    summary(phases)
    print(
        f"\nSlack stand-in: {slack.posts:,} POSTs, {slack.duplicates} duplicates,"
        f" {len(slack.unmatched)} without exactly one wf-N name"
    )
    if slack.sample:
        print(f"sample Slack text: {slack.sample}")
    for body in slack.unmatched:
        print(f"  unmatched body: {body!r}")
    if source_fingerprint() != fingerprint:
        print("WARNING: pulsehook's sources changed during the run; the figures mix versions")
    ok = all(p.passed for p in phases if p.system == "pulsehook")
    print(f"total time {time.monotonic() - started:.0f} s")
    print(f"verdict: {'PASS — every target met' if ok else 'FAIL — see the summary'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
