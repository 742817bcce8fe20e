"""Alert storm: a shared workflow breaks and hundreds of repositories go red within
seconds. What each channel is told, how soon, and whether any provider had to refuse.

    .venv/bin/python bench/alert_storm.py [--repos 300] [--spread 10] [--window 30]
        [--settle 45] [--keep]

``pulsehook serve`` (fresh data directory, pinned to CPU 0 when the machine has two)
runs one rule, ``build_failure`` (``build.status == 'failure' and
build.default_branch``, ``group_window`` from ``--window``) on four channels whose
``rate`` is left at its default, so the defaults are what is measured. The channels
point at stand-ins in this process (loopback only, each on its own thread and event
loop) that enforce the providers' limits and answer 429 to anything faster:

* Slack: one message per 1.0 s between accepted arrivals (429, ``Retry-After: 1``);
* Discord: 5 per 2 s, like a webhook's bucket (429 with ``{"retry_after": s}``), 204;
* PagerDuty Events v2: 120 a minute, 202 ``{"status": "success", ...}``;
* email: an aiosmtpd server (it refuses nothing).

Each records the ``time.monotonic()`` at which a message was complete, its body,
and the 429s it gave. Deliveries are GitHub's ``workflow_run.completed`` example,
compact and signed (X-Hub-Signature-256, a fresh X-GitHub-Delivery), each for its
own repository ``org/svcN`` (workflow ``CI`` on ``main``, its own run id and link).

Phases, one server throughout:

1. fail: ``--repos`` failed runs, open loop over ``--spread`` seconds (delivery i
   at start + i * spread / repos), then a wait to ``--window`` + ``--settle`` s
   after the first send;
2. lone: once no grouping window can be open (no message for ``--window`` + 2 s),
   one failure of a new repository ``org/lone``: the time from its 2xx to the
   first Slack message naming it;
3. recover: a successful run of ``org/lone`` and of every ``org/svcN``, spread the
   same way, and the same wait.

Per channel and phase: messages, seconds from the phase's first 2xx to its first
and last message, 429s, and how many repositories some message named. A name
counts when the text shows it (links left out; ``org/svc1`` does not match
``org/svc12``): Slack ``text``, Discord ``content``, PagerDuty summary and custom
details, email the text/plain part.

Targets (exit code 0 only when every one is met): every delivery answered 2xx; the
storm's first Slack message within 1 s of the first 2xx; at most 5 messages per
channel in any 60 s; no 429 from any stand-in; every repository named on Slack,
PagerDuty and email, in the storm and in the recovery; the lone failure on Slack
within 1 s of its 2xx; PagerDuty's group incident resolved only at the end (its
last event a ``resolve``, none before the last recovery was answered). How many
repositories Discord named (2,000 characters, then "…and N more") is reported,
not a target. The server's log is ``server.log`` in its data directory
(``--keep`` keeps the directory). A hard deadline bounds the whole run; every
process the bench starts is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import email
import email.policy
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import httpx
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from alert_latency import clean_env, pin_prefix
from loadgen import PATH, PAYLOAD, percentile, read_response
from receivers import free_port, source_fingerprint

SECRET = "bench-alert-storm-secret"
ROUTING_KEY = "benchstormroutingkey0123456789ab"
RULE = "build_failure"
GROUP_KEY = f"group|{RULE}"
WORKFLOW = "CI"
BRANCH = "main"
LONE = "org/lone"
REPO_ID_BASE, LONE_ID = 900_000, 899_999
RUN_BASE = 6_000_000_000  # + phase * RUN_STEP + n: every run its own id
RUN_STEP = 1_000_000

FIRST_TARGET_S = 1.0  # the storm's first Slack message after the first 2xx
LONE_TARGET_S = 1.0  # the lone failure's Slack message after its 2xx
PER_MINUTE = 5  # messages per channel in any 60 s
MINUTE = 60.0
QUIET_MARGIN = 2.0  # beyond the window: no window can still be open
LONE_WAIT = 15.0  # longest wait for the lone failure's messages
START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0
IDLE_REUSE = 2.0  # keep-alive connections idle longer are not reused (server timeout 5 s)
SERVER_CPU, CLIENT_CPU = 0, 1
LOG_TAIL = 40

URL_RE = re.compile(r"https?://[^\s<>|()\[\]\"']+")
NAME_RE = re.compile(r"\borg/(?:svc\d+|lone)\b")
REQUEST_ERRORS = (
    OSError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    ValueError,
    TimeoutError,
)

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def names_in(text: str) -> set[str]:
    """The repositories ``text`` shows by name (the links it carries left out)."""
    return set(NAME_RE.findall(URL_RE.sub(" ", text)))


def repo(n: int) -> str:
    return f"org/svc{n}"


# --- the stand-ins ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    at: float  # time.monotonic() when the message was complete
    body: Any
    text: str  # what the message says, for finding names


class StandIn(Protocol):
    name: str

    def arrivals(self) -> list[Arrival]: ...

    def refusals(self) -> list[float]: ...


def slack_text(body: Any) -> str:
    return str(body.get("text", "")) if isinstance(body, dict) else ""


def discord_text(body: Any) -> str:
    return str(body.get("content", "")) if isinstance(body, dict) else ""


def pagerduty_text(body: Any) -> str:
    payload = body.get("payload") if isinstance(body, dict) else None
    if not isinstance(payload, dict):
        return ""
    details = json.dumps(payload.get("custom_details"), ensure_ascii=False)
    return f"{payload.get('summary', '')}\n{details}"


def slack_refusal(wait: float) -> Response:
    return PlainTextResponse("rate_limited", status_code=429, headers={"Retry-After": "1"})


def discord_refusal(wait: float) -> Response:
    body = {
        "message": "You are being rate limited.",
        "retry_after": round(wait, 3),
        "global": False,
    }
    headers = {"Retry-After": str(max(1, math.ceil(wait)))}
    return JSONResponse(body, status_code=429, headers=headers)


def pagerduty_refusal(wait: float) -> Response:
    body = {"status": "throttle event", "message": "Requests are arriving too quickly"}
    headers = {"Retry-After": str(max(1, math.ceil(wait)))}
    return JSONResponse(body, status_code=429, headers=headers)


def slack_answer(body: Any) -> Response:
    return PlainTextResponse("ok")


def discord_answer(body: Any) -> Response:
    return Response(status_code=204)


def pagerduty_answer(body: Any) -> Response:
    key = body.get("dedup_key") if isinstance(body, dict) else None
    answer = {"status": "success", "message": "Event processed", "dedup_key": key}
    return JSONResponse(answer, status_code=202)


class PacedStandIn:
    """An HTTP provider on loopback (uvicorn on its own thread and loop) that accepts at
    most ``limit`` messages in any ``per`` seconds, counted between accepted arrivals,
    and answers 429 to anything sooner."""

    def __init__(
        self,
        name: str,
        limit: int,
        per: float,
        text: Callable[[Any], str],
        answer: Callable[[Any], Response],
        refusal: Callable[[float], Response],
    ) -> None:
        self.name = name
        self.limit, self.per = limit, per
        self._text, self._answer, self._refusal = text, answer, refusal
        self._accepted: list[Arrival] = []
        self._refused: list[float] = []
        self.invalid = 0
        self._lock = threading.Lock()
        self.port = free_port()
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name=f"{name}-stand-in", daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the {self.name} stand-in did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._accepted)

    def refusals(self) -> list[float]:
        with self._lock:
            return list(self._refused)

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        at = time.monotonic()
        try:
            body = json.loads(raw)
        except ValueError:
            with self._lock:
                self.invalid += 1
            return PlainTextResponse("invalid_payload", status_code=400)
        # No await between the stamp and the lock: arrivals are recorded in order.
        with self._lock:
            if len(self._accepted) >= self.limit:
                since = at - self._accepted[-self.limit].at
                if since < self.per:
                    self._refused.append(at)
                    return self._refusal(self.per - since)
            self._accepted.append(Arrival(at, body, self._text(body)))
        return self._answer(body)


class MailStandIn:
    """An SMTP server (aiosmtpd, its own thread) that records each message's text part."""

    name = "email"

    def __init__(self) -> None:
        self.port = free_port()
        self._accepted: list[Arrival] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._accepted)

    def refusals(self) -> list[float]:
        return []  # SMTP servers set their own pace; this one refuses nothing

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        at = time.monotonic()
        raw = envelope.original_content or envelope.content or b""
        data = raw.encode() if isinstance(raw, str) else bytes(raw)
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        text, subject = "", str(parsed.get("Subject", ""))
        if isinstance(parsed, EmailMessage):
            part = parsed.get_body(preferencelist=("plain",))
            if part is not None:
                text = str(part.get_content())
        with self._lock:
            self._accepted.append(Arrival(at, {"subject": subject, "text": text}, text))
        return "250 OK"


@dataclass
class StandIns:
    slack: PacedStandIn
    discord: PacedStandIn
    pagerduty: PacedStandIn
    mail: MailStandIn

    @classmethod
    def make(cls) -> StandIns:
        return cls(
            slack=PacedStandIn("slack", 1, 1.0, slack_text, slack_answer, slack_refusal),
            discord=PacedStandIn("discord", 5, 2.0, discord_text, discord_answer, discord_refusal),
            pagerduty=PacedStandIn(
                "pagerduty", 120, MINUTE, pagerduty_text, pagerduty_answer, pagerduty_refusal
            ),
            mail=MailStandIn(),
        )

    @property
    def all(self) -> list[StandIn]:
        return [self.slack, self.discord, self.pagerduty, self.mail]

    def start(self) -> None:
        for stand_in in (self.slack, self.discord, self.pagerduty, self.mail):
            stand_in.start()

    def stop(self) -> None:
        for stand_in in (self.slack, self.discord, self.pagerduty, self.mail):
            with contextlib.suppress(Exception):  # stop the others whatever one does
                stand_in.stop()

    def rules(self, window: float) -> str:
        return f"""\
[channels.slack]
webhook_url = "{self.slack.url("/services/T0BENCH/B0BENCH/alert-storm")}"

[channels.discord]
kind = "discord"
webhook_url = "{self.discord.url("/api/webhooks/1000/alert-storm")}"

[channels.oncall]
kind = "pagerduty"
routing_key = "{ROUTING_KEY}"
events_url = "{self.pagerduty.url("/v2/enqueue")}"

[channels.mail]
kind = "email"
host = "127.0.0.1"
port = {self.mail.port}
from = "pulsehook@example.com"
to = ["oncall@example.com"]

[[rule]]
name = "{RULE}"
condition = "build.status == 'failure' and build.default_branch"
channels = ["slack", "discord", "oncall", "mail"]
frequency = "immediate"
group_window = {window:g}
"""


# --- the deliveries -----------------------------------------------------------------------


class Bodies:
    """Failed and successful ``workflow_run.completed`` deliveries, one repository each."""

    def __init__(self) -> None:
        self.base: dict[str, Any] = json.loads(PAYLOAD.read_text())
        self.stamp = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)

    def next_stamp(self) -> str:
        """Now, and always later than the previous phase's runs (the next run is newer)."""
        now = datetime.now(UTC).replace(microsecond=0)
        self.stamp = max(now, self.stamp + timedelta(seconds=1))
        return self.stamp.strftime("%Y-%m-%dT%H:%M:%SZ")

    def body(self, full_name: str, repo_id: int, run_id: int, conclusion: str, at: str) -> bytes:
        data = copy.deepcopy(self.base)
        owner, name = full_name.split("/")
        repository = data["repository"]
        repository.update(
            id=repo_id,
            name=name,
            full_name=full_name,
            default_branch=BRANCH,
            html_url=f"https://github.com/{full_name}",
        )
        if isinstance(repository.get("owner"), dict):
            repository["owner"]["login"] = owner
        run = data["workflow_run"]
        run.update(
            id=run_id,
            name=WORKFLOW,
            head_branch=BRANCH,
            status="completed",
            conclusion=conclusion,
            event="push",
            run_attempt=1,
            html_url=f"https://github.com/{full_name}/actions/runs/{run_id}",
            created_at=at,
            run_started_at=at,
            updated_at=at,
        )
        for key in ("repository", "head_repository"):
            if isinstance(run.get(key), dict):
                run[key].update(id=repo_id, name=name, full_name=full_name)
        if isinstance(data.get("workflow"), dict):
            data["workflow"]["name"] = WORKFLOW
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def request(port: int, body: bytes) -> bytes:
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nUser-Agent: GitHub-Hookshot/bench\r\n"
        f"X-GitHub-Event: workflow_run\r\nX-GitHub-Delivery: {uuid.uuid4()}\r\n"
        f"X-Hub-Signature-256: {sign(body)}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Sent:
    repo: str
    due: float
    sent: float = math.nan  # time.monotonic() when written
    answered: float = math.nan  # ... when its answer was read
    status: int = 0  # 0: no answer
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Connections:
    """Keep-alive connections to pulsehook, one request at a time on each."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: deque[tuple[Conn, float]] = deque()

    async def exchange(self, data: bytes) -> int:
        conn: Conn | None = None
        while self.idle and conn is None:
            candidate, used = self.idle.pop()
            if time.monotonic() - used < IDLE_REUSE:
                conn = candidate
            else:
                candidate[1].close()
        if conn is None:
            conn = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = conn
        try:
            writer.write(data)
            await writer.drain()
            status, close = await read_response(reader)
        except BaseException:
            writer.close()
            raise
        if close:
            writer.close()
        else:
            self.idle.append((conn, time.monotonic()))
        return status

    def close(self) -> None:
        while self.idle:
            self.idle.pop()[0][1].close()


async def fire(pool: Connections, item: Sent, data: bytes) -> None:
    item.sent = time.monotonic()
    try:
        item.status = await asyncio.wait_for(pool.exchange(data), REQUEST_TIMEOUT)
    except REQUEST_ERRORS as exc:
        item.error = type(exc).__name__
        return
    item.answered = time.monotonic()


async def open_loop(port: int, planned: list[tuple[str, bytes]], spread: float) -> list[Sent]:
    """Send ``planned[i]`` at start + i * spread / len(planned), whatever the answers do."""
    pool = Connections(port)
    start = time.monotonic() + 0.02
    step = spread / len(planned) if planned else 0.0
    sends = [Sent(name, start + i * step) for i, (name, _) in enumerate(planned)]
    tasks: list[asyncio.Task[None]] = []
    try:
        for item, (_, data) in zip(sends, planned, strict=True):
            delay = item.due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(fire(pool, item, data)))
        await asyncio.gather(*tasks)  # each bounded by REQUEST_TIMEOUT
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pool.close()
    return sends


# --- pulsehook ------------------------------------------------------------------------------


class Pulsehook:
    """``pulsehook serve`` with its own data directory, its output in ``server.log``."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.data_dir = root / "data"
        self.data_dir.mkdir()
        self.rules_dir = root / "rules"
        self.log_path = self.data_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pinned = "not pinned"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        script = Path(sys.executable).with_name("pulsehook")
        cli = [str(script)] if script.exists() else [sys.executable, "-m", "pulsehook"]
        cmd = [*cli, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--data-dir", str(self.data_dir), "--rules-dir", str(self.rules_dir)]
        cmd += ["--log-level", "warning"]
        env = clean_env()
        # A token of its own, so the server does not generate one and print it.
        env.update(
            PULSEHOOK_WEBHOOK_SECRET=SECRET,
            PULSEHOOK_API_TOKEN=secrets.token_hex(16),
            PULSEHOOK_PUBLIC_URL=self.url,
        )
        prefix, preexec = pin_prefix(SERVER_CPU)
        if prefix or preexec:
            self.pinned = f"CPU {SERVER_CPU}"
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
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"pulsehook exited with {self.proc.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return
                time.sleep(0.1)
        raise RuntimeError(f"pulsehook did not answer /healthz in {START_TIMEOUT:.0f} s")

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

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_lines(self) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def log_tail(self, lines: int = LOG_TAIL) -> str:
        return "\n".join("    " + line for line in self.log_lines()[-lines:])

    def outbox(self) -> str:
        """The outbox by channel and status, read on a separate read-only connection."""
        uri = f"file:{self.data_dir / 'pulsehook.db'}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
                rows = conn.execute(
                    "SELECT channel, status, count(*) FROM outbox"
                    " GROUP BY channel, status ORDER BY channel, status"
                ).fetchall()
        except sqlite3.Error as exc:
            return f"not readable: {exc}"
        by: dict[str, list[str]] = {}
        for channel, status, count in rows:
            by.setdefault(str(channel), []).append(f"{status} {count}")
        return "; ".join(f"{c}: {', '.join(s)}" for c, s in by.items()) or "empty"


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    expected: tuple[str, ...]  # the repositories its messages should name
    sends: list[Sent] = field(default_factory=list)
    end: float = math.inf  # when the next phase began

    @property
    def start(self) -> float:
        return min((s.sent for s in self.sends if not math.isnan(s.sent)), default=math.inf)

    @property
    def first_ok(self) -> float:
        return min((s.answered for s in self.sends if s.ok), default=math.nan)

    @property
    def last_ok(self) -> float:
        return max((s.answered for s in self.sends if s.ok), default=math.nan)

    @property
    def answers(self) -> list[float]:
        return [s.answered - s.sent for s in self.sends if s.ok]

    @property
    def errors(self) -> list[Sent]:
        return [s for s in self.sends if not s.ok]

    def messages(self, stand_in: StandIn) -> list[Arrival]:
        return [a for a in stand_in.arrivals() if self.start <= a.at < self.end]

    def refused(self, stand_in: StandIn) -> int:
        return sum(1 for at in stand_in.refusals() if self.start <= at < self.end)

    def named(self, stand_in: StandIn) -> set[str]:
        found: set[str] = set()
        for arrival in self.messages(stand_in):
            found |= names_in(arrival.text)
        return found & set(self.expected)


@dataclass
class Run:
    phases: list[Phase] = field(default_factory=list)
    lone_latency: float = math.nan  # the lone failure's 2xx -> its Slack message
    quiet_wait: float = math.nan  # seconds waited before the lone failure
    failure: str | None = None


def last_arrival(stand_ins: Iterable[StandIn]) -> float:
    return max((a.at for s in stand_ins for a in s.arrivals()), default=-math.inf)


async def wait_quiet(stand_ins: list[StandIn], quiet: float, limit: float) -> None:
    """Until no channel got a message for ``quiet`` seconds (at most until ``limit``)."""
    while True:
        now = time.monotonic()
        calm = last_arrival(stand_ins) + quiet
        if now >= calm or now >= limit:
            return
        await asyncio.sleep(min(calm, limit) - now)


async def wait_named(stand_in: StandIn, name: str, after: float, limit: float) -> Arrival | None:
    """The first message after ``after`` that names ``name`` (waiting until ``limit``).
    Arrival times are the stand-in's stamps: how often this looks does not change them."""
    while True:
        for arrival in stand_in.arrivals():
            if arrival.at >= after and name in names_in(arrival.text):
                return arrival
        if time.monotonic() >= limit:
            return None
        await asyncio.sleep(0.005)


async def sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def scenario(
    run: Run, server: Pulsehook, stand_ins: StandIns, bodies: Bodies, args: argparse.Namespace
) -> None:
    port = server.port
    everyone = stand_ins.all
    storm = tuple(repo(n) for n in range(args.repos))

    # Warm-up: green runs of a repository no rule cares about, so the first measured
    # delivery finds a warm service; nothing alerts.
    at = bodies.next_stamp()
    warm = [
        (
            "org/warmup",
            request(port, bodies.body("org/warmup", 899_000, RUN_BASE - i, "success", at)),
        )
        for i in range(1, 6)
    ]
    warmed = await open_loop(port, warm, 0.5)
    if not all(s.ok for s in warmed):
        raise RuntimeError(f"warm-up answers: {[s.status or s.error for s in warmed]}")
    await asyncio.sleep(1.0)  # lets the worker take them before the timed part

    # 1. fail
    fail = Phase("fail", storm)
    run.phases.append(fail)
    at = bodies.next_stamp()
    planned = [
        (name, request(port, bodies.body(name, REPO_ID_BASE + n, RUN_BASE + n, "failure", at)))
        for n, name in enumerate(storm)
    ]
    fail.sends = await open_loop(port, planned, args.spread)
    await sleep_until(fail.start + args.window + args.settle)

    # 2. lone: once no window can be open, a failure is a group's first again.
    before = time.monotonic()
    limit = before + 2 * args.window + args.settle + 10
    await wait_quiet(everyone, args.window + QUIET_MARGIN, limit)
    run.quiet_wait = time.monotonic() - before
    lone = Phase("lone", (LONE,))
    run.phases.append(lone)
    at = bodies.next_stamp()
    lone_run = RUN_BASE + 3 * RUN_STEP
    lone.sends = await open_loop(
        port, [(LONE, request(port, bodies.body(LONE, LONE_ID, lone_run, "failure", at)))], 0.0
    )
    fail.end = lone.start
    if lone.sends[0].ok:
        until = lone.start + LONE_WAIT
        seen = await wait_named(stand_ins.slack, LONE, lone.start, until)
        if seen is not None:
            run.lone_latency = seen.at - lone.sends[0].answered
        for stand_in in everyone:  # its news on the other channels, before they recover
            await wait_named(stand_in, LONE, lone.start, until)

    # 3. recover: org/lone first, then every storm repository.
    recover = Phase("recover", (LONE, *storm))
    run.phases.append(recover)
    at = bodies.next_stamp()
    planned = [
        (LONE, request(port, bodies.body(LONE, LONE_ID, lone_run + 1, "success", at))),
        *(
            (
                name,
                request(
                    port,
                    bodies.body(name, REPO_ID_BASE + n, RUN_BASE + RUN_STEP + n, "success", at),
                ),
            )
            for n, name in enumerate(storm)
        ),
    ]
    recover.sends = await open_loop(port, planned, args.spread)
    lone.end = recover.start
    await sleep_until(recover.start + args.window + args.settle)


# --- figures -----------------------------------------------------------------------------------


def secs(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "never"
    return f"{value:.3f} s"


def ms(values: list[float], q: float | None) -> str:
    if not values:
        return "n/a"
    value = max(values) if q is None else percentile(values, q)
    return f"{value * 1000:.2f} ms"


def busiest_minute(arrivals: list[Arrival]) -> int:
    """The most messages in any 60 s (a window starting at each message)."""
    times = sorted(a.at for a in arrivals)
    return max(
        (sum(1 for t in times[i:] if t < start + MINUTE) for i, start in enumerate(times)),
        default=0,
    )


def report_phase(phase: Phase, stand_ins: StandIns) -> None:
    sends = phase.sends
    spread = max((s.sent for s in sends), default=phase.start) - phase.start
    print(
        f"\n== {phase.name}: {len(sends)} deliveries over {spread:.2f} s;"
        f" 2xx {len(sends) - len(phase.errors)}, errors {len(phase.errors)};"
        f" answer p50 {ms(phase.answers, 50)}, p99 {ms(phase.answers, 99)},"
        f" max {ms(phase.answers, None)} =="
    )
    for bad in phase.errors[:5]:
        print(f"  no 2xx: {bad.repo} status {bad.status} {bad.error}")
    first = phase.first_ok
    print(
        f"  {'channel':<10} {'messages':>8} {'first (s)':>10} {'last (s)':>10}"
        f" {'429s':>5} {'named':>11}"
    )
    for stand_in in stand_ins.all:
        got = phase.messages(stand_in)
        head = f"{got[0].at - first:10.3f}" if got else f"{'none':>10}"
        tail = f"{got[-1].at - first:10.3f}" if got else f"{'none':>10}"
        named = f"{len(phase.named(stand_in))}/{len(phase.expected)}"
        print(
            f"  {stand_in.name:<10} {len(got):>8} {head} {tail}"
            f" {phase.refused(stand_in):>5} {named:>11}"
        )
    print("  (seconds from the phase's first 2xx)")


def samples(run: Run, stand_ins: StandIns) -> None:
    fail = run.phases[0]
    print("\nWhat was said (the storm):")
    for stand_in in stand_ins.all:
        for i, arrival in enumerate(fail.messages(stand_in)[:3]):
            text = arrival.text
            if stand_in is stand_ins.pagerduty and isinstance(arrival.body, dict):
                payload = arrival.body.get("payload") or {}
                details = payload.get("custom_details") or {}
                text = (
                    f"{arrival.body.get('event_action')} {arrival.body.get('dedup_key')}:"
                    f" {payload.get('summary')} (firing_count {details.get('firing_count')},"
                    f" firing {len(details.get('firing') or [])} listed)"
                )
            elif stand_in is stand_ins.mail and isinstance(arrival.body, dict):
                text = f"{arrival.body.get('subject')} | {text}"
            flat = text.replace("\n", " ⏎ ")
            shown = flat if len(flat) <= 220 else f"{flat[:150]} … {flat[-60:]}"
            print(f"  {stand_in.name} #{i + 1} ({len(text):,} chars): {shown}")


def pagerduty_events(run: Run, stand_ins: StandIns) -> tuple[bool, str]:
    """Whether the group incident was resolved only at the end, and the events."""
    events = stand_ins.pagerduty.arrivals()
    ours = [e for e in events if isinstance(e.body, dict) and e.body.get("dedup_key") == GROUP_KEY]
    others = len(events) - len(ours)
    recover = run.phases[-1] if run.phases and run.phases[-1].name == "recover" else None
    if recover is None or not ours:
        return False, f"{len(ours)} events for {GROUP_KEY!r}, the recovery did not run"
    base = run.phases[0].first_ok
    actions = [f"{e.body.get('event_action')} +{e.at - base:.1f}s" for e in ours]
    last_recovered = recover.last_ok
    early = [e for e in ours if e.body.get("event_action") == "resolve" and e.at < last_recovered]
    last = ours[-1].body.get("event_action")
    detail = (
        f"{GROUP_KEY}: {', '.join(actions)}; last recovery answered"
        f" +{last_recovered - base:.1f}s; {len(early)} resolve before it"
        + (f"; {others} events with other dedup keys" if others else "")
    )
    return last == "resolve" and not early and not others, detail


def verdicts(run: Run, stand_ins: StandIns) -> list[tuple[bool | None, str]]:
    """(met, what) per target; None: reported, not a target."""
    found: list[tuple[bool | None, str]] = []
    sends = [s for p in run.phases for s in p.sends]
    errors = [s for s in sends if not s.ok]
    found.append(
        (
            bool(sends) and not errors,
            f"every delivery answered 2xx: {len(sends) - len(errors)} of {len(sends)}",
        )
    )
    by = {p.name: p for p in run.phases}
    fail = by.get("fail")
    first = math.inf
    if fail is not None:
        got = fail.messages(stand_ins.slack)
        first = got[0].at - fail.first_ok if got else math.inf
    found.append(
        (
            first <= FIRST_TARGET_S,
            f"the storm's first Slack message within {FIRST_TARGET_S:g} s of the first 2xx:"
            f" {secs(first)}",
        )
    )
    busiest = {s.name: busiest_minute(s.arrivals()) for s in stand_ins.all}
    found.append(
        (
            all(n <= PER_MINUTE for n in busiest.values()),
            f"at most {PER_MINUTE} messages per channel in any 60 s: "
            + ", ".join(f"{k} {v}" for k, v in busiest.items()),
        )
    )
    refused = {s.name: len(s.refusals()) for s in stand_ins.all}
    found.append(
        (
            not any(refused.values()),
            "no 429 from any stand-in: " + ", ".join(f"{k} {v}" for k, v in refused.items()),
        )
    )
    for name in ("fail", "recover"):
        phase = by.get(name)
        if phase is None:
            found.append((False, f"every repository named ({name}): the phase did not run"))
            continue
        counts = {
            s.name: len(phase.named(s))
            for s in (stand_ins.slack, stand_ins.pagerduty, stand_ins.mail)
        }
        found.append(
            (
                all(c == len(phase.expected) for c in counts.values()),
                f"every repository named on Slack, PagerDuty and email ({name}): "
                + ", ".join(f"{k} {v}/{len(phase.expected)}" for k, v in counts.items()),
            )
        )
    found.append(
        (
            run.lone_latency <= LONE_TARGET_S,
            f"the lone failure on Slack within {LONE_TARGET_S:g} s of its 2xx:"
            f" {secs(run.lone_latency)}",
        )
    )
    resolved, detail = pagerduty_events(run, stand_ins)
    found.append((resolved, f"PagerDuty resolved only at the end: {detail}"))
    if fail is not None:
        discord = len(fail.named(stand_ins.discord))
        found.append(
            (
                None,
                f"Discord named {discord}/{len(fail.expected)} in the storm"
                " (2,000 characters a message)",
            )
        )
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repos", type=int, default=300, help="repositories failing (default 300)")
    p.add_argument(
        "--spread", type=float, default=10.0, help="seconds the failures span (default 10)"
    )
    p.add_argument(
        "--window", type=float, default=30.0, help="the rule's group_window, s (default 30)"
    )
    p.add_argument(
        "--settle",
        type=float,
        default=45.0,
        help="wait beyond the window after a phase, s (default 45)",
    )
    p.add_argument("--keep", action="store_true", help="keep the data directory (server.log)")
    args = p.parse_args(argv)
    if args.repos < 1 or args.spread < 0 or args.window < 0 or args.settle < 0:
        p.error("--repos must be at least 1; --spread, --window and --settle not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pinned = "not pinned"
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > CLIENT_CPU:
        os.sched_setaffinity(0, {CLIENT_CPU})
        pinned = f"CPU {CLIENT_CPU}"
    # The hard deadline: the start, three phases, the quiet wait and the lone's wait.
    budget = (
        2 * (args.spread + args.window + args.settle)
        + (2 * args.window + args.settle + 10)
        + 2 * LONE_WAIT
        + 30
    )
    print(f"pulsehook sources: {source_fingerprint()}")
    print(
        f"{args.repos} repositories failing over {args.spread:g} s; group_window"
        f" {args.window:g} s; settle {args.settle:g} s; rates left at their defaults;"
        f" hard deadline {budget + START_TIMEOUT:.0f} s"
    )
    started = time.monotonic()
    run = Run()
    stand_ins = StandIns.make()
    root = Path(tempfile.mkdtemp(prefix="pulsehook-alert-storm-"))
    server = Pulsehook(root)
    outbox = "not read"
    try:
        stand_ins.start()
        server.rules_dir.mkdir()
        (server.rules_dir / "storm.toml").write_text(stand_ins.rules(args.window))
        server.start()
        print(
            f"pulsehook on {server.pinned}, bench and stand-ins on {pinned}; data {server.data_dir}"
        )
        asyncio.run(asyncio.wait_for(scenario(run, server, stand_ins, Bodies(), args), budget))
    except TimeoutError:
        run.failure = f"the hard deadline ({budget:.0f} s) passed"
    except Exception as exc:  # reported with what was measured so far
        run.failure = f"{type(exc).__name__}: {exc}"
    finally:
        if server.proc is not None and not server.alive():
            run.failure = (run.failure or "") + " (pulsehook exited during the run)"
        outbox = server.outbox()
        server.stop()
        stand_ins.stop()
    for phase in run.phases:
        report_phase(phase, stand_ins)
    if run.phases:
        samples(run, stand_ins)
    print(f"\nquiet wait before the lone failure: {secs(run.quiet_wait)}")
    print(f"lone failure, 2xx -> first Slack message naming {LONE}: {secs(run.lone_latency)}")
    storm = run.phases[0] if run.phases else None
    if storm is not None:
        print(f"pulsehook's answer during the storm: p99 {ms(storm.answers, 99)}")
    print(f"outbox: {outbox}")
    print("\nTargets:")
    ok = run.failure is None
    if run.failure:
        print(f"  FAIL  the run: {run.failure}")
    for met, what in verdicts(run, stand_ins):
        word = "info" if met is None else ("PASS" if met else "FAIL")
        print(f"  {word:<4}  {what}")
        ok = ok and met is not False
    lines = server.log_lines()
    print(f"\nserver log: {len(lines)} lines at warning and above ({server.log_path})")
    if not ok and lines:
        print(server.log_tail())
    if args.keep:
        print(f"data kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    print(f"total time {time.monotonic() - started:.0f} s")
    print(f"verdict: {'PASS — every target met' if ok else 'FAIL — see the targets'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
