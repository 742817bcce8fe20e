"""Several replicas of ``pulsehook serve`` on one PostgreSQL database, one of them
SIGKILLed now and then: nothing acknowledged is lost, no notice is lost or sent
twice beyond what was in flight at the kills, alerts stay prompt; then ingest at
saturation, one replica against N.

    .venv/bin/python bench/replicas.py [--seconds 60] [--rate 200] [--replicas 3]
        [--kill-every 15] [--saturation-seconds 10] [--drain 60] [--slack-delay 0.02]
        [--backend postgresql|sqlite]

The database is a throwaway PostgreSQL cluster (``tests/postgres.py``: the newest
installed PostgreSQL's binaries, run as an unprivileged user when this runs as
root, on 127.0.0.1 and a free port, stopped by its postmaster's PID; or the server
PULSEHOOK_TEST_DATABASE_URL names), with a fresh database per phase, dropped at
the end. Each replica is ``pulsehook serve`` on its own port on 127.0.0.1, with its
own data directory (for local files) and the same PULSEHOOK_DATABASE_URL,
webhook secret and rule set: bench/alert_latency.py's ``build_failure``
(immediate, Slack, not grouped, channel unpaced: one notice per alert, sent as
soon as it can be), SLACK_WEBHOOK_URL pointing at alert_latency's Slack stand-in,
which runs in this process on its own thread. Here the stand-in holds each answer
``--slack-delay`` seconds (20 ms), so that a notice is really in flight for a
while: received by Slack, not yet answered. A replica is up once GET /healthz
answers 200; each is then warmed up with 20 deliveries whose two alerts must reach
Slack, and the database must hold what they stored (else the replicas did not use
PULSEHOOK_DATABASE_URL and the run fails saying so).

The deliveries are alert_latency's mix: GitHub's ``workflow_run.completed``
example, compact and signed, with a fresh X-GitHub-Delivery; one in ten is a
failed run on the default branch of a new workflow ``wf-N``, so each is a new
alert subject and the stand-in matches its notice by name. The resilience phase
is open loop at ``--rate`` for ``--seconds``: request i is due at start + i/rate
and goes to replica i mod N. A connection refused or reset, or closed without an
answer, moves the same request (same delivery id) to the next replica, as a load
balancer would: "retried" (a keep-alive connection that fails is first tried once
more on a new connection to the same replica: "reconnected"). Only a 2xx counts as
acknowledged, and every acknowledged delivery id is kept. Every ``--kill-every``
seconds one replica, each in turn, is SIGKILLed and started again at once on the
same port and data directory; at that moment the bench records how many Slack
POSTs were in flight, all replicas' (the bound below) and the killed process's own
(each replica's process posts to a path of its own at the stand-in, so the
stand-in knows the sender; a POST of the killed process read only after the kill
was sent before it, and counts as in flight too). Just before each kill it also
counts the notices the process had claimed and not yet recorded (its leases in
the outbox): a send Slack has answered but the process has not recorded yet is
no longer in flight, and may still go again, so duplicates beyond the in-flight
bound but within these are told apart from a live replica's notice sent twice.
After the phase it waits at most ``--drain`` seconds for the outstanding notices
(and for the outbox to empty).

Then ingest at saturation: one replica, then N, each on a fresh database, loaded
closed loop by 64 keep-alive connections (spread over the replicas) for
``--saturation-seconds``: 2xx answers per second, with the CPU the replicas, this
process, the PostgreSQL cluster and every other process used meanwhile (over 10 %
of a core by other processes: flagged, the figures are suspect). Nothing is pinned
to a CPU: how much N replicas help depends on the cores they share with the load
generator, the stand-in and PostgreSQL.

Targets (exit code 0 when every one is met, 1 otherwise):
  * 0 acknowledged deliveries lost: every id answered 2xx is in ``deliveries``
    (``guid = ANY(...)`` on PostgreSQL), in every phase;
  * 0 notices lost: every acknowledged failing delivery's wf-N reached Slack;
  * duplicates (POSTs for a wf-N after its first) <= the sends in flight at the
    kills, summed over the kills: at each, the larger of the Slack POSTs in flight
    and the notices the killed process had claimed and not yet recorded (a send is
    in flight from its claim to its record; 0 in the saturation runs, which kill nothing),
    counted up to the end of each phase; those that come while its replicas are
    being stopped (SIGTERM) are shown apart;
  * alert p99 <= 2 s, from the delivery's 2xx answer to the Slack POST's arrival
    (a notice that never arrives counts as infinitely late);
  * ingest at saturation, one replica on PostgreSQL >= 0.5 x one replica on its own
    SQLite file (the bare baseline, measured in the same run).

``--backend sqlite`` is a smoke mode for the bench itself, until PostgreSQL is
there: one replica on its own SQLite file (``pulsehook.db`` in its data
directory), no kills, and a single saturation figure. Every process the bench
starts is stopped by its PID at the end, also on Ctrl-C, SIGTERM or an error, and
every wait is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from alert_latency import (
    CONNECTIONS,
    FAIL_EVERY,
    NAME_RE,
    REQUEST_ERRORS,
    REQUEST_TIMEOUT,
    RULE_TOML,
    START_TIMEOUT,
    WARMUP_DELIVERIES,
    Conn,
    Load,
    Mix,
    Planned,
    Pool,
    Server,
    SlackStandIn,
    exchange,
    secs,
    unit,
    wait_for_alerts,
    warm_up,
)
from loadgen import PAYLOAD, percentile
from receivers import PROJECT_DIR, installed, process_ticks, source_fingerprint, ticks_since

ALERT_P99_TARGET = 2.0  # seconds, answer -> Slack
INGEST_RATIO_TARGET = 0.5  # one replica on PostgreSQL against one on SQLite, same run
SATURATION_PLAN_RATE = 3000  # deliveries/s planned ahead for a saturation phase; more on demand
PLAN_CHUNK = 2048
GUID_RE = re.compile(rb"\r\nX-GitHub-Delivery: ([0-9a-f-]{36})\r\n")
SQLITE_FILE = "pulsehook.db"
OTHER_CPU_WARN = 0.10  # CPUs used by unrelated processes past which the figures are suspect


# --- the Slack stand-in, answers held so that sends are in flight -----------------------


class HeldAnswers:
    """One stand-in connection's writer: each answer is held ``delay`` s before it is
    written, and its POST is in flight from the moment it was read until then."""

    def __init__(self, writer: asyncio.StreamWriter, slack: HoldingSlack) -> None:
        self._writer = writer
        self._slack = slack
        self._held: list[bytes] = []
        self._sender = ""

    def write(self, data: bytes) -> None:
        if not self._held:
            # The base handler writes the answer right after recording the request, with
            # no await between: the sender recorded last is this request's.
            self._sender = self._slack.last_sender
            self._slack.hold(self._sender)
        self._held.append(data)

    async def drain(self) -> None:
        if self._held:
            try:
                await asyncio.sleep(self._slack.delay)
                for data in self._held:
                    self._writer.write(data)
            finally:
                self._release()
        await self._writer.drain()

    def close(self) -> None:
        self._release()
        self._writer.close()

    def _release(self) -> None:
        if self._held:
            self._held.clear()
            self._slack.release(self._sender)


class HoldingSlack(SlackStandIn):
    """alert_latency's stand-in, with each answer held ``delay`` s. Each replica's
    process posts to a path of its own (``…/<sender>``, see ``Replica``), so the
    stand-in knows who sent each POST: the POSTs in flight by sender, and the senders
    of each wf-N in order."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.last_sender = ""
        self.senders: dict[str, list[str]] = {}  # wf-N -> who POSTed it, in order
        self._in_flight: Counter[str] = Counter()
        self._dead: dict[str, list[Kill]] = {}  # a killed process -> its kill

    def sender_url(self, sender: str) -> str:
        return f"{self.url}/{sender}"

    def hold(self, sender: str) -> None:
        with self._lock:
            self._in_flight[sender] += 1
            for kill in self._dead.get(sender, []):
                kill.late += 1  # sent before its process was killed, read only now

    def release(self, sender: str) -> None:
        with self._lock:
            self._in_flight[sender] -= 1
            if self._in_flight[sender] <= 0:
                del self._in_flight[sender]

    def killed(self, sender: str, kill: Kill) -> None:
        """Take the in-flight figures of ``kill``, the kill of ``sender``'s process."""
        with self._lock:
            kill.in_flight = sum(self._in_flight.values())
            kill.own = self._in_flight[sender]
            self._dead.setdefault(sender, []).append(kill)

    def repeated(self, names: set[str] | None = None) -> dict[str, list[str]]:
        """The names POSTed more than once (of ``names``, or of all), with their senders."""
        with self._lock:
            return {
                n: list(who)
                for n, who in self.senders.items()
                if len(who) > 1 and (names is None or n in names)
            }

    def _record(self, line: bytes, body: bytes, at: float) -> None:
        super()._record(line, body, at)
        path = line.split(b" ")[1] if line.count(b" ") >= 2 else b""
        sender = path.rsplit(b"/", 1)[-1].decode(errors="replace")
        names = set(NAME_RE.findall(body))
        with self._lock:
            self.last_sender = sender
            if line.startswith(b"POST ") and len(names) == 1:
                self.senders.setdefault(f"wf-{names.pop().decode()}", []).append(sender)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The base handler only writes, drains and closes: HeldAnswers does those three.
        await super()._handle(reader, cast(asyncio.StreamWriter, HeldAnswers(writer, self)))


def duplicates(slack: HoldingSlack, names: set[str]) -> tuple[int, dict[str, list[str]]]:
    """POSTs for ``names`` after each one's first, and the names POSTed more than once
    with their senders."""
    repeated = slack.repeated(names)
    return sum(len(who) - 1 for who in repeated.values()), repeated


# --- the replicas -------------------------------------------------------------------------


class Replica(Server):
    """``pulsehook serve`` on its own port and data directory, on a shared database;
    started again on the same port and directory after a kill."""

    def __init__(
        self, group: str, index: int, root: Path, slack: HoldingSlack, database_url: str | None
    ) -> None:
        super().__init__("pulsehook", root, slack.url)
        self.group = group  # which phase's replicas: the stand-in's sender names are unique
        self.slack = slack
        self.index = index
        self.database_url = database_url
        self.starts = 0
        self.pids: list[int] = []  # every process this replica has been

    def command(self) -> tuple[list[str], dict[str, str]]:
        cmd, env = super().command()
        env.pop("DATABASE_URL", None)  # the service reads it too: only the bench's own counts
        # The same stand-in, a path per process: the stand-in tells who sent each POST.
        env["SLACK_WEBHOOK_URL"] = self.slack.sender_url(self.sender)
        if self.database_url:
            env["PULSEHOOK_DATABASE_URL"] = self.database_url
        return cmd, env

    @property
    def sender(self) -> str:
        """The name of this replica's current process at the Slack stand-in."""
        return f"{self.group}-r{self.index}p{self.starts}"

    def launch(self) -> None:
        """Start the process (again), its output appended to the replica's log."""
        self.starts += 1
        cmd, env = self.command()
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.data_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.pids.append(self.proc.pid)

    async def healthy(self, client: httpx.AsyncClient, timeout: float = START_TIMEOUT) -> float:
        """Wait (at most ``timeout`` s) for GET /healthz to answer 200; seconds waited."""
        began = time.monotonic()
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() - began < timeout:
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                raise RuntimeError(f"replica {self.index} exited with {code}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url, timeout=1.0)).status_code == 200:
                    return time.monotonic() - began
            await asyncio.sleep(0.05)
        raise RuntimeError(
            f"replica {self.index}: /healthz not 200 within {timeout:.0f} s:\n{self.log_tail()}"
        )

    def kill(self) -> None:
        """SIGKILL this replica's process, by its PID, and reap it."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def family(parent: int | None) -> set[int]:
    """``parent`` and its children (a postmaster and its backends), from /proc."""
    if parent is None:
        return set()
    found = {parent}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == parent:
                    found.add(int(entry.name))
    return found


def cpu_apart(
    before: dict[int, int], after: dict[int, int], postgres: set[int], seconds: float
) -> tuple[float, float]:
    """CPUs used between two ``process_ticks`` snapshots: by ``postgres``, by the rest."""

    def part(inside: bool) -> float:
        keep = {p: n for p, n in before.items() if (p in postgres) == inside}
        return ticks_since(keep, {p: n for p, n in after.items() if (p in postgres) == inside})

    span = max(seconds, 1e-9)
    return (part(True) / span if postgres else math.nan), part(False) / span


def cpu_text(postgres: float, others: float, backend: str) -> str:
    """The CPU figures of a phase; ``postgres`` is NaN when the server is not this run's."""
    text = ""
    if backend == "postgresql":
        text = "PostgreSQL (not started by this run) among the others, "
        if not math.isnan(postgres):
            text = f"PostgreSQL {postgres:.0%}, "
    text += f"other processes {others:.0%}"
    if others > OTHER_CPU_WARN:
        text += " — WARNING: another workload shared the machine"
    return text


def stop_all(replicas: Sequence[Replica]) -> None:
    """Stop every replica by its PID (SIGTERM, then SIGKILL if it lingers)."""
    for replica in replicas:
        try:
            replica.stop()
        except Exception as exc:  # the others are still stopped
            print(f"  stopping replica {replica.index} (pid {replica.proc and replica.proc.pid})")
            print(f"  failed: {exc}")


# --- the store ------------------------------------------------------------------------------


class NotInUse(RuntimeError):
    """The replicas did not store into the database the bench gave them."""


class Store(Protocol):
    label: str

    def stored(self, guids: Sequence[str]) -> int: ...
    def summary(self) -> str: ...
    def pending_notices(self) -> int | None: ...
    def leased_by(self, pid: int) -> int | None: ...
    def check(self, replicas: Sequence[Replica], at_least: int) -> None: ...


def _counts(rows: Sequence[tuple[Any, ...]]) -> str:
    return ", ".join(f"{status} {int(n):,}" for status, n in sorted(rows)) or "empty"


class PostgresStore:
    """The replicas' PostgreSQL database, read on a connection of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.label = f"PostgreSQL database {urlsplit(url).path.lstrip('/')}"

    def _rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            return conn.execute(query, params).fetchall()

    def stored(self, guids: Sequence[str]) -> int:
        rows = self._rows("SELECT count(*) FROM deliveries WHERE guid = ANY(%s)", (list(guids),))
        return int(rows[0][0])

    def summary(self) -> str:
        try:
            deliveries = self._rows("SELECT status, count(*) FROM deliveries GROUP BY status")
            outbox = self._rows("SELECT status, count(*) FROM outbox GROUP BY status")
        except psycopg.Error as exc:
            return f"not readable: {type(exc).__name__}: {exc}"
        return f"deliveries {_counts(deliveries)}; outbox {_counts(outbox)}"

    def pending_notices(self) -> int | None:
        try:
            rows = self._rows("SELECT count(*) FROM outbox WHERE status = 'pending'")
        except psycopg.Error:
            return None
        return int(rows[0][0])

    def leased_by(self, pid: int) -> int | None:
        """Notices process ``pid`` claimed and has not recorded (its leases are
        named ``<pid>-<random>``)."""
        query = "SELECT count(*) FROM outbox WHERE status = 'pending' AND leased_by LIKE %s"
        try:
            return int(self._rows(query, (f"{pid}-%",))[0][0])
        except psycopg.Error:
            return None

    def check(self, replicas: Sequence[Replica], at_least: int) -> None:
        """Fail unless the replicas store into this database."""
        local = [str(r.index) for r in replicas if (r.data_dir / SQLITE_FILE).exists()]
        also = f"; replicas {', '.join(local)} made a {SQLITE_FILE} instead" if local else ""
        table = self._rows("SELECT to_regclass('deliveries') IS NOT NULL")[0][0]
        if not table:
            raise NotInUse(
                f"no deliveries table in {self.label}: the replicas did not use"
                f" PULSEHOOK_DATABASE_URL{also} (is the PostgreSQL backend in this pulsehook?)"
            )
        count = int(self._rows("SELECT count(*) FROM deliveries")[0][0])
        if count < at_least:
            raise NotInUse(
                f"{self.label} holds {count} deliveries after a warm-up that stored"
                f" {at_least}{also}"
            )


class SqliteStore:
    """The one replica's SQLite file, read on a read-only connection of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = f"SQLite file {path.name}"

    def _rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        uri = f"file:{self.path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
            return conn.execute(query, params).fetchall()

    def stored(self, guids: Sequence[str]) -> int:
        query = "SELECT count(*) FROM deliveries WHERE guid IN (SELECT value FROM json_each(?))"
        return int(self._rows(query, (json.dumps(list(guids)),))[0][0])

    def summary(self) -> str:
        try:
            deliveries = self._rows("SELECT status, count(*) FROM deliveries GROUP BY status")
            outbox = self._rows("SELECT status, count(*) FROM outbox GROUP BY status")
        except sqlite3.Error as exc:
            return f"not readable: {exc}"
        return f"deliveries {_counts(deliveries)}; outbox {_counts(outbox)}"

    def pending_notices(self) -> int | None:
        try:
            return int(self._rows("SELECT count(*) FROM outbox WHERE status = 'pending'")[0][0])
        except sqlite3.Error:
            return None

    def leased_by(self, pid: int) -> int | None:
        query = "SELECT count(*) FROM outbox WHERE status = 'pending' AND leased_by LIKE ?"
        try:
            return int(self._rows(query, (f"{pid}-%",))[0][0])
        except sqlite3.Error:
            return None

    def check(self, replicas: Sequence[Replica], at_least: int) -> None:
        count = int(self._rows("SELECT count(*) FROM deliveries")[0][0])
        if count < at_least:
            raise NotInUse(f"{self.path} holds {count} deliveries, the warm-up {at_least}")


class Databases:
    """Fresh databases on one PostgreSQL server, each dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []
        self._run = secrets.token_hex(3)

    def create(self, label: str) -> str:
        name = f"pulsehook_bench_{self._run}_{label}"
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        return urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{name}"))

    def drop_all(self) -> None:
        for name in self.created:
            try:
                with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(name)
                        )
                    )
            except psycopg.Error as exc:
                print(f"  could not drop database {name}: {exc}")


def postgres_cluster() -> contextlib.AbstractContextManager[Any]:
    """tests/postgres.py's cluster: PULSEHOOK_TEST_DATABASE_URL's server, or a throwaway one."""
    if str(PROJECT_DIR) not in sys.path:
        sys.path.insert(0, str(PROJECT_DIR))
    from tests.postgres import ENV_URL, cluster

    return cluster(os.environ.get(ENV_URL) or None)


# --- the load -------------------------------------------------------------------------------


def guid_of(item: Planned) -> str:
    found = GUID_RE.search(item.head)
    assert found is not None, item.head[:200]
    return found.group(1).decode()


class Feed:
    """Planned deliveries with their ids: ``count`` built ahead, more on demand."""

    def __init__(self, mix: Mix, port: int, count: int) -> None:
        self._mix = mix
        self._port = port
        self.items: list[tuple[Planned, str]] = []
        self.extended = 0
        self.taken = 0
        self._extend(count)

    def _extend(self, count: int) -> None:
        self.items += [(p, guid_of(p)) for p in self._mix.plan(self._port, count)]

    def take(self) -> tuple[Planned, str]:
        if self.taken >= len(self.items):
            self._extend(PLAN_CHUNK)
            self.extended += PLAN_CHUNK
        self.taken += 1
        return self.items[self.taken - 1]

    def names(self) -> set[str]:
        """The wf-N of every failing delivery taken so far."""
        return {p.name for p, _ in self.items[: self.taken] if p.name}


@dataclass
class Spread:
    """What the client saw, over every replica."""

    load: Load = field(default_factory=Load)
    acked: list[str] = field(default_factory=list)  # delivery ids answered 2xx
    retried: int = 0  # attempts moved to the next replica
    reconnected: int = 0  # keep-alive connections that failed, tried again on a new one
    gave_up: int = 0  # requests no replica answered
    by_replica: Counter[int] = field(default_factory=Counter)  # 2xx answers by replica
    seconds: float = 0.0


async def deliver(
    pools: Sequence[Pool], first: int, item: Planned, guid: str, spread: Spread
) -> None:
    """Send ``item`` to replica ``first``; when it is down, to the next, and so on."""
    load = spread.load
    failure: BaseException = ConnectionError("no replica")
    for step in range(len(pools)):
        index = (first + step) % len(pools)
        pool = pools[index]
        for fresh in (False, True):
            conn: Conn | None = None
            reused = False
            sent = time.perf_counter()
            try:
                if not fresh and pool.idle:
                    conn, reused = pool.idle.popleft(), True
                else:
                    conn = await asyncio.wait_for(pool.connect(), REQUEST_TIMEOUT)
                status, close = await asyncio.wait_for(exchange(conn, item), REQUEST_TIMEOUT)
            except REQUEST_ERRORS as exc:  # refused, reset, or closed without an answer
                if conn is not None:
                    pool.discard(conn)
                failure = exc
                if reused:
                    spread.reconnected += 1
                    continue
                break
            except (TimeoutError, asyncio.CancelledError) as exc:
                # No answer in time: maybe stored, maybe not; a balancer does not resend.
                if conn is not None:
                    pool.discard(conn)
                load.fail(item, exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            load.record(item, status, sent, time.perf_counter())
            pool.release(conn, close)
            if 200 <= status < 300:
                spread.acked.append(guid)
                spread.by_replica[index] += 1
            return
        if step < len(pools) - 1:
            spread.retried += 1
    spread.gave_up += 1
    load.fail(item, failure)


async def spread_open_loop(
    pools: Sequence[Pool], spread: Spread, feed: Feed, rate: float, start: float, seconds: float
) -> Spread:
    """Delivery i at ``start`` + i/rate, to replica i mod N, whatever the answers do."""
    tasks: set[asyncio.Task[None]] = set()
    limit = start + seconds + 30.0
    count = len(feed.items)
    try:
        for i in range(count):
            item, guid = feed.take()
            due = start + i / rate
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
                now = time.perf_counter()
            if now > limit:
                spread.load.unsent = count - i
                break
            spread.load.lag.append(now - due)
            spread.load.sent += 1
            task = asyncio.create_task(deliver(pools, i % len(pools), item, guid, spread))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            bound = REQUEST_TIMEOUT * 2 * len(pools) + 10
            _, pending = await asyncio.wait(set(tasks), timeout=bound)
            for task in pending:
                task.cancel()  # counted as failed by deliver()
            await asyncio.gather(*pending, return_exceptions=True)
    finally:
        for pool in pools:
            pool.close()
    spread.seconds = time.perf_counter() - start
    return spread


@dataclass
class Kill:
    replica: int
    at: float = 0.0  # seconds into the phase
    in_flight: int = 0  # Slack POSTs read and not yet answered, from every replica
    own: int = 0  # of those, the killed process's
    late: int = 0  # the killed process's POSTs read only after the kill (sent before it)
    leased: int | None = None  # notices it had claimed and not recorded, just before the kill
    restart: float = math.nan  # seconds until its /healthz answered again
    failure: str | None = None


async def kill_in_turn(
    store: Store,
    replicas: Sequence[Replica],
    pools: Sequence[Pool],
    slack: HoldingSlack,
    client: httpx.AsyncClient,
    start: float,
    seconds: float,
    every: float,
) -> list[Kill]:
    """At ``start`` + k·``every`` (k = 1, 2, … while within ``seconds``): SIGKILL the next
    replica and start it again at once on the same port."""
    kills: list[Kill] = []
    back: list[asyncio.Task[None]] = []

    async def restarted(replica: Replica, kill: Kill) -> None:
        try:
            kill.restart = await replica.healthy(client)
        except RuntimeError as exc:
            kill.failure = str(exc)

    k = 1
    while every > 0 and k * every < seconds:
        await asyncio.sleep(max(0.0, start + k * every - time.perf_counter()))
        replica = replicas[(k - 1) % len(replicas)]
        kill = Kill(replica.index)
        kill.leased = await asyncio.to_thread(store.leased_by, replica.pid)
        slack.killed(replica.sender, kill)
        replica.kill()
        kill.at = time.perf_counter() - start
        pools[replica.index].close()  # the balancer drops its idle connections to it
        replica.launch()
        kills.append(kill)
        back.append(asyncio.create_task(restarted(replica, kill)))
        k += 1
    if back:
        await asyncio.wait(back, timeout=START_TIMEOUT + 5)
    return kills


async def start_replicas(
    replicas: Sequence[Replica],
    store_for: Callable[[], Store],
    slack: HoldingSlack,
    mix: Mix,
    client: httpx.AsyncClient,
    drain: float,
) -> Store:
    """Start, wait for /healthz, warm up; check the deliveries land in the store."""
    for replica in replicas:
        replica.launch()
    for replica in replicas:
        await replica.healthy(client)
    for replica in replicas:
        await warm_up(replica, slack, mix, drain)
    store = store_for()
    store.check(replicas, WARMUP_DELIVERIES * len(replicas))
    return store


# --- the resilience phase -------------------------------------------------------------------


@dataclass
class Resilience:
    replicas: int
    spread: Spread = field(default_factory=Spread)
    kills: list[Kill] = field(default_factory=list)
    stored: int = 0
    expected: int = 0
    received: int = 0
    alerted_not_ok: int = 0
    duplicates: int = 0
    duplicated: dict[str, list[str]] = field(default_factory=dict)  # wf-N -> its senders
    names: set[str] = field(default_factory=set)  # wf-N of every failing delivery sent
    at_stop: int = 0  # more duplicates, while the replicas were stopped (SIGTERM) and after
    latencies: list[float] = field(default_factory=list)
    waited: float = 0.0
    postgres_cpu: float = 0.0  # CPUs used by the PostgreSQL cluster the bench started
    other_cpu: float = 0.0  # by processes neither the bench's, a replica's nor PostgreSQL's
    pending_notices: int | None = None
    store_after_load: str = ""
    store_after_wait: str = ""
    store_label: str = ""
    failure: str | None = None

    @property
    def acked(self) -> int:
        return len(self.spread.acked)

    @property
    def bound(self) -> int:
        """Sends in flight at the kills: a send is in flight from its claim to its
        record, so a kill's bound is the larger of the POSTs Slack held then and
        the notices the killed process had claimed and not recorded."""
        return sum(max(k.in_flight + k.late, k.leased or 0) for k in self.kills)

    @property
    def own_bound(self) -> int:
        return sum(k.own + k.late for k in self.kills)

    @property
    def leased(self) -> int | None:
        """Notices the killed processes had claimed and not recorded, summed."""
        counts = [k.leased for k in self.kills]
        return None if None in counts else sum(c for c in counts if c is not None)

    def problems(self) -> list[str]:
        if self.failure:
            return [self.failure]
        found = []
        if self.stored != self.acked:
            found.append(f"{self.acked - self.stored:,} acknowledged deliveries not stored")
        if not self.expected:
            found.append("no notice expected")
        if self.received < self.expected:
            found.append(f"{self.expected - self.received:,} notices lost")
        if self.duplicates > self.bound:
            found.append(
                f"{self.duplicates} duplicates > {self.bound} sends in flight at the kills"
            )
        p99 = percentile(self.latencies, 99)
        if self.latencies and p99 > ALERT_P99_TARGET:
            found.append(f"alert p99 {unit(secs(p99))} > {ALERT_P99_TARGET:g} s")
        found += [
            f"replica {k.replica} after the kill at {k.at:.1f} s: {k.failure}"
            for k in self.kills
            if k.failure
        ]
        return found


async def measure_resilience(
    phase: Resilience,
    replicas: Sequence[Replica],
    store_for: Callable[[], Store],
    slack: HoldingSlack,
    mix: Mix,
    args: argparse.Namespace,
) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        store = await start_replicas(replicas, store_for, slack, mix, client, args.drain)
        phase.store_label = store.label
        feed = Feed(mix, replicas[0].port, max(1, int(args.rate * args.seconds)))
        spread = Spread()
        pools = [Pool(r.port, spread.load) for r in replicas]
        gc.collect()
        gc.freeze()  # no full collection over the plan stalls the sender
        try:
            others = process_ticks({os.getpid()})
            start = time.perf_counter() + 0.05
            phase.spread, phase.kills = await asyncio.gather(
                spread_open_loop(pools, spread, feed, args.rate, start, args.seconds),
                kill_in_turn(
                    store, replicas, pools, slack, client, start, args.seconds, args.kill_every
                ),
            )
        finally:
            gc.unfreeze()
        ended = time.perf_counter()
        mine = {os.getpid(), *(pid for r in replicas for pid in r.pids)}
        after = {pid: n for pid, n in process_ticks(mine).items() if pid not in mine}
        pg = family(args.postmaster)
        phase.postgres_cpu, phase.other_cpu = cpu_apart(others, after, pg, ended - start)
        del feed
        phase.store_after_load = store.summary()
        answered = phase.spread.load.answered_at
        await wait_for_alerts(slack, answered, ended + args.drain)
        # Then the outbox: a notice sent again after a kill is counted when it arrives.
        while time.perf_counter() < ended + args.drain:
            phase.pending_notices = store.pending_notices()
            if not phase.pending_notices:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(min(1.0, max(0.0, ended + args.drain - time.perf_counter())))
        phase.waited = time.perf_counter() - ended
    phase.store_after_wait = store.summary()
    phase.stored = store.stored(phase.spread.acked)
    got = slack.arrivals(answered)
    phase.expected, phase.received = len(answered), len(got)
    phase.latencies = [got.get(n, math.inf) - t for n, t in answered.items()]
    not_ok = phase.spread.load.not_ok
    phase.alerted_not_ok = len(slack.arrivals(not_ok))
    phase.names = set(answered) | not_ok
    phase.duplicates, phase.duplicated = duplicates(slack, phase.names)
    for replica in replicas:
        if not replica.alive():
            raise RuntimeError(f"replica {replica.index} exited:\n{replica.log_tail()}")


def quantile(values: list[float], q: float) -> str:
    """``percentile`` in seconds as text; "n/a" when there is nothing to rank."""
    return secs(percentile(values, q)) if values else "n/a"


def report_resilience(phase: Resilience, args: argparse.Namespace) -> None:
    spread, load = phase.spread, phase.spread.load
    print(
        f"\n== resilience — {phase.replicas} replica(s), {args.rate:g}/s for {args.seconds:g} s"
        + (f", one killed every {args.kill_every:g} s ==" if args.kill_every else ", no kills ==")
    )
    if phase.failure and not load.sent:
        print(f"  FAILED: {phase.failure}")
        return
    statuses = ", ".join(f"{s or 'no answer'}: {n:,}" for s, n in sorted(load.statuses.items()))
    print(
        f"  deliveries sent {load.sent:,} in {spread.seconds:.1f} s  answered 2xx {phase.acked:,}"
        f"  ({statuses})" + (f"  NOT SENT {load.unsent:,}" if load.unsent else "")
    )
    print(
        f"  retried on the next replica {spread.retried:,}; reconnected {spread.reconnected:,};"
        f" no replica answered {spread.gave_up:,}"
        + (f" {dict(load.failures)}" if load.failures else "")
        + f"; 2xx by replica {dict(sorted(spread.by_replica.items()))}"
    )
    print(
        f"  send lag p99 {percentile(load.lag, 99) * 1000:.2f} ms;"
        f" webhook answer p50 {percentile(load.answers, 50) * 1000:.2f} ms"
        f" p99 {percentile(load.answers, 99) * 1000:.2f} ms"
        f" max {max(load.answers, default=0.0) * 1000:.2f} ms"
    )
    lost = phase.acked - phase.stored
    print(
        f"  deliveries answered 2xx {phase.acked:,}  stored {phase.stored:,}"
        f" ({phase.store_label})  lost {lost:,}"
    )
    print(
        f"  notices expected {phase.expected:,}  received at Slack {phase.received:,}"
        f"  lost {phase.expected - phase.received:,}"
        + (
            f"  (also {phase.alerted_not_ok} for deliveries not answered 2xx)"
            if phase.alerted_not_ok
            else ""
        )
    )
    for k in phase.kills:
        restart = f"up again in {k.restart:.2f} s" if not math.isnan(k.restart) else "NOT up again"
        print(
            f"  kill at {k.at:5.1f} s: replica {k.replica}; Slack POSTs in flight"
            f" {k.in_flight + k.late} ({k.own} the killed process's, + {k.late} of its POSTs"
            f" read after the kill); it held {'?' if k.leased is None else k.leased} notices"
            f" claimed and not recorded; {restart}"
        )
    print(
        f"  duplicates {phase.duplicates} (wf-N received more than once: {len(phase.duplicated)})"
        f"  bound: sends in flight at the kills {phase.bound}"
        f" (the killed replicas' own {phase.own_bound})"
    )
    for name, who in sorted(phase.duplicated.items())[:10]:
        print(f"    {name} POSTed by {' then '.join(who)} (phase-r<replica>p<its n-th process>)")
    leased = phase.leased
    if phase.duplicates > phase.own_bound and leased is not None and phase.duplicates <= leased:
        print(
            f"  NOTE: more duplicates than the killed processes had in flight, but no more than"
            f" they had claimed and not recorded ({leased}): sends Slack had answered that"
            " they died before recording"
        )
    elif phase.duplicates > phase.own_bound:
        print(
            "  NOTE: more duplicates than the killed processes had in flight or claimed:"
            " a live replica's notice was sent again too"
        )
    print(
        f"  alert latency (2xx answer -> Slack): p50 {unit(quantile(phase.latencies, 50))}"
        f"  p99 {unit(quantile(phase.latencies, 99))}"
        f"  max {unit(secs(max(phase.latencies, default=math.nan)))}"
    )
    pending = "unknown" if phase.pending_notices is None else f"{phase.pending_notices:,}"
    print(f"  waited {phase.waited:.1f} s after the load; notices still pending {pending}")
    backend = "postgresql" if phase.store_label.startswith("PostgreSQL") else "sqlite"
    print(
        f"  CPU during the load, of one core ({os.cpu_count()} CPUs):"
        f" {cpu_text(phase.postgres_cpu, phase.other_cpu, backend)}"
    )
    print(f"  store when the load ended: {phase.store_after_load}")
    print(f"  store after the wait:      {phase.store_after_wait}")
    problems = phase.problems()
    verdict = "PASS — all targets met" if not problems else "FAIL — " + "; ".join(problems)
    print(f"  verdict: {verdict}")


# --- saturation -----------------------------------------------------------------------------


@dataclass
class Saturation:
    replicas: int
    load: Load = field(default_factory=Load)
    acked: list[str] = field(default_factory=list)
    stored: int = 0
    seconds: float = 0.0
    replica_cpu: float = 0.0  # CPUs, summed over the replicas
    own_cpu: float = 0.0  # this process: load generator and Slack stand-in
    postgres_cpu: float = 0.0  # the PostgreSQL cluster the bench started
    other_cpu: float = 0.0  # every other process
    extended: int = 0
    names: set[str] = field(default_factory=set)  # wf-N of every failing delivery sent
    duplicates: int = 0  # before the replicas are stopped: no kill here, so the bound is 0
    at_stop: int = 0  # more, while they were stopped (SIGTERM) and after
    store_label: str = ""
    failure: str | None = None
    sqlite: bool = False  # the baseline: one replica on a SQLite file

    @property
    def rate(self) -> float:
        return len(self.acked) / self.seconds if self.seconds else 0.0

    def problems(self) -> list[str]:
        name = f"saturation with {self.replicas}"
        if self.failure:
            return [f"{name}: {self.failure}"]
        found = []
        if self.stored != len(self.acked):
            lost = len(self.acked) - self.stored
            found.append(f"{name}: {lost:,} acknowledged deliveries not stored")
        if self.duplicates:
            found.append(f"{name}: {self.duplicates} duplicates, and no replica was killed")
        return found


async def measure_saturation(
    phase: Saturation,
    replicas: Sequence[Replica],
    store_for: Callable[[], Store],
    slack: HoldingSlack,
    mix: Mix,
    args: argparse.Namespace,
) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        store = await start_replicas(replicas, store_for, slack, mix, client, args.drain)
    phase.store_label = store.label
    seconds = args.saturation_seconds
    feed = Feed(mix, replicas[0].port, int(SATURATION_PLAN_RATE * seconds))
    load = phase.load
    pools = [Pool(r.port, load) for r in replicas]

    async def worker(pool: Pool, deadline: float) -> None:
        conn: Conn | None = None
        try:
            while time.perf_counter() < deadline:
                item, guid = feed.take()
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
                    await asyncio.sleep(0.01)
                    continue
                load.record(item, status, sent, time.perf_counter())
                if 200 <= status < 300:
                    phase.acked.append(guid)
                if close:
                    pool.discard(conn)
                    conn = None
        finally:
            if conn is not None:
                pool.discard(conn)

    own = {os.getpid(), *(r.pid for r in replicas)}
    gc.collect()
    gc.freeze()
    try:
        others, cpu_before = process_ticks(own), sum(r.cpu_seconds() for r in replicas)
        mine = time.process_time()
        start = time.perf_counter()
        deadline = start + seconds
        workers = [worker(pools[k % len(pools)], deadline) for k in range(CONNECTIONS)]
        await asyncio.wait_for(asyncio.gather(*workers), seconds + REQUEST_TIMEOUT + 10)
        phase.seconds = time.perf_counter() - start
    finally:
        gc.unfreeze()
    span = max(phase.seconds, 1e-9)
    phase.replica_cpu = (sum(r.cpu_seconds() for r in replicas) - cpu_before) / span
    phase.own_cpu = (time.process_time() - mine) / span
    pg = family(args.postmaster)
    phase.postgres_cpu, phase.other_cpu = cpu_apart(others, process_ticks(own), pg, span)
    phase.extended = feed.extended
    phase.names = feed.names()
    phase.stored = store.stored(phase.acked)
    phase.duplicates, _ = duplicates(slack, phase.names)
    for replica in replicas:
        if not replica.alive():
            raise RuntimeError(f"replica {replica.index} exited:\n{replica.log_tail()}")


def report_saturation(phase: Saturation) -> None:
    load = phase.load
    print(f"\n== ingest at saturation — {phase.replicas} replica(s), {CONNECTIONS} connections ==")
    if phase.failure and not load.sent:
        print(f"  FAILED: {phase.failure}")
        return
    print(
        f"  2xx {len(phase.acked):,} in {phase.seconds:.1f} s: {phase.rate:,.0f} deliveries/s"
        f"  errors {load.errors:,}"
        + (f" {dict(load.statuses)} {dict(load.failures)}" if load.errors else "")
    )
    print(
        f"  answer p50 {percentile(load.answers, 50) * 1000:.1f} ms"
        f"  p99 {percentile(load.answers, 99) * 1000:.1f} ms;"
        f" stored {phase.stored:,} of {len(phase.acked):,} ({phase.store_label})"
    )
    backend = "postgresql" if phase.store_label.startswith("PostgreSQL") else "sqlite"
    print(
        f"  CPU, of one core ({os.cpu_count()} CPUs): replicas {phase.replica_cpu:.0%},"
        f" load generator + stand-in {phase.own_cpu:.0%},"
        f" {cpu_text(phase.postgres_cpu, phase.other_cpu, backend)}"
        + (f"; planned {phase.extended:,} more on the fly" if phase.extended else "")
    )
    if phase.failure:
        print(f"  FAILED: {phase.failure}")


# --- running it -----------------------------------------------------------------------------


def attribute_duplicates(
    slack: HoldingSlack, resilience: Resilience, saturations: Sequence[Saturation]
) -> list[str]:
    """Count every phase's duplicates again at the end of the run: those beyond the
    phase's own count came while its replicas were stopped (SIGTERM) or later. Say
    which phase each repeated name belongs to."""
    resilience.at_stop = duplicates(slack, resilience.names)[0] - resilience.duplicates
    for phase in saturations:
        phase.at_stop = duplicates(slack, phase.names)[0] - phase.duplicates
    stopped = resilience.at_stop + sum(s.at_stop for s in saturations)
    if stopped:
        print(
            f"\nNOTE: {stopped} more duplicates came while replicas were being stopped with"
            " SIGTERM ("
            + ", ".join(
                [f"resilience {resilience.at_stop}"]
                + [f"saturation {s.replicas}: {s.at_stop}" for s in saturations]
            )
            + "): a stopping replica gives up its sends in flight, and another replica sends"
            " them again. Shown, not a target: the targets count up to each phase's end."
        )
    where = []
    for name, who in sorted(slack.repeated().items()):
        if name in resilience.names:
            phase_name = "resilience"
        else:
            owner = [s for s in saturations if name in s.names]
            phase_name = f"saturation {owner[0].replicas}" if owner else "a warm-up"
        where.append(f"{name} in {phase_name} by {' then '.join(who)}")
    return where


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="timed phase (default 60)")
    p.add_argument("--rate", type=float, default=200.0, help="deliveries/s (default 200)")
    p.add_argument("--replicas", type=int, default=3, help="replicas (default 3)")
    p.add_argument(
        "--kill-every", type=float, default=15.0, help="seconds between kills, 0: none (15)"
    )
    p.add_argument(
        "--saturation-seconds", type=float, default=10.0, help="per saturation run, 0: none (10)"
    )
    p.add_argument("--drain", type=float, default=60.0, help="longest wait for notices (60 s)")
    p.add_argument(
        "--slack-delay", type=float, default=0.02, help="the stand-in holds each answer (0.02 s)"
    )
    p.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.rate <= 0 or args.replicas < 1:
        p.error("--seconds and --rate must be positive, --replicas at least 1")
    if args.kill_every < 0 or args.saturation_seconds < 0 or args.drain < 0:
        p.error("--kill-every, --saturation-seconds and --drain must not be negative")
    if not 0 <= args.slack_delay <= 5:
        p.error("--slack-delay must be between 0 and 5 s")
    if args.backend == "sqlite":
        args.replicas, args.kill_every = 1, 0.0
    return args


def _terminate(signum: int, frame: FrameType | None) -> None:
    # As Ctrl-C: asyncio.Runner cancels the phase, and the unwinding stops every process.
    signal.raise_signal(signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    sys.setswitchinterval(0.0005)  # the stand-in's thread stamps arrivals promptly
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if installed("uvloop"):
        import uvloop

        loop_factory = uvloop.new_event_loop
    mix = Mix()
    fingerprint = source_fingerprint()
    print(f"pulsehook sources: {fingerprint}")
    print(
        f"body: {PAYLOAD.name}, {len(mix.success):,} bytes compact; 1 in {FAIL_EVERY} a failed"
        f" run of a new workflow wf-N on {mix.default_branch!r}"
    )
    if args.backend == "sqlite":
        print(
            "backend: SQLite — SMOKE MODE for the bench itself: one replica on its own"
            " pulsehook.db, no kills, one saturation run"
        )
    else:
        print(
            f"backend: PostgreSQL — {args.replicas} replicas on one database"
            + (f", one SIGKILLed every {args.kill_every:g} s" if args.kill_every else ", no kills")
        )
    print(
        f"{args.rate:g} deliveries/s for {args.seconds:g} s; notices awaited up to"
        f" {args.drain:g} s; Slack answers held {args.slack_delay * 1000:g} ms;"
        f" {os.cpu_count()} CPUs, nothing pinned"
    )
    slack = HoldingSlack(args.slack_delay)
    started: list[Replica] = []
    resilience = Resilience(replicas=args.replicas)
    saturations: list[Saturation] = []
    began = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            slack.start()
            stack.callback(slack.stop)
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pulsehook-rep-")))
            (root / "rules").mkdir()
            (root / "rules" / "build_failure.toml").write_text(RULE_TOML)
            databases: Databases | None = None
            args.postmaster = None  # the PostgreSQL cluster's, when this run started it
            if args.backend == "postgresql":
                try:
                    server = stack.enter_context(postgres_cluster())
                except (FileNotFoundError, RuntimeError, subprocess.CalledProcessError) as exc:
                    print(f"verdict: FAIL — no PostgreSQL to run on: {exc}")
                    return 1
                print(
                    f"PostgreSQL: {'throwaway cluster' if server.pid else 'configured server'}"
                    f" {urlsplit(server.url).netloc}"
                )
                databases = Databases(server.url)
                args.postmaster = server.pid
                stack.callback(databases.drop_all)
            stack.callback(stop_all, started)  # before the databases go and the cluster stops
            runner = stack.enter_context(asyncio.Runner(loop_factory=loop_factory))

            def replicas_for(
                count: int, label: str, group: str, *, sqlite: bool = False
            ) -> tuple[list[Replica], Callable[[], Store]]:
                url = databases.create(label) if databases is not None and not sqlite else None
                made = [Replica(group, i, root, slack, url) for i in range(count)]
                started.extend(made)
                if url is not None:
                    return made, lambda: PostgresStore(url)
                return made, lambda: SqliteStore(made[0].data_dir / SQLITE_FILE)

            replicas, store_for = replicas_for(args.replicas, "resilience", "res")
            unused = False
            try:
                runner.run(measure_resilience(resilience, replicas, store_for, slack, mix, args))
            except Exception as exc:  # reported; saturation still runs, if it can
                resilience.failure = f"{type(exc).__name__}: {exc}"
                unused = isinstance(exc, NotInUse)
            finally:
                stop_all(replicas)
            report_resilience(resilience, args)
            counts = sorted({1, args.replicas}) if args.saturation_seconds else []
            if unused and counts:
                print("\n(saturation skipped: the replicas do not use the database)")
                counts = []
            # The bare baseline in the same run: one replica on its own SQLite file.
            plan = [(c, False) for c in counts]
            if args.backend == "postgresql" and counts:
                plan.append((1, True))
            for count, on_sqlite in plan:
                phase = Saturation(replicas=count, sqlite=on_sqlite)
                replicas, store_for = replicas_for(
                    count,
                    f"saturation_{count}",
                    f"sat{count}{'s' if on_sqlite else ''}",
                    sqlite=on_sqlite,
                )
                try:
                    runner.run(measure_saturation(phase, replicas, store_for, slack, mix, args))
                except Exception as exc:  # reported; the other run still runs
                    phase.failure = f"{type(exc).__name__}: {exc}"
                finally:
                    stop_all(replicas)
                report_saturation(phase)
                saturations.append(phase)
    except KeyboardInterrupt:
        print("\ninterrupted: every process started was stopped")
        return 130
    late = attribute_duplicates(slack, resilience, saturations)
    problems = resilience.problems() + [p for s in saturations for p in s.problems()]
    one_pg = next((s for s in saturations if s.replicas == 1 and not s.sqlite), None)
    one_sqlite = next((s for s in saturations if s.sqlite), None)
    ratio = None
    if one_pg and one_sqlite and one_sqlite.rate and not (one_pg.failure or one_sqlite.failure):
        ratio = one_pg.rate / one_sqlite.rate
        if ratio < INGEST_RATIO_TARGET:
            problems.append(
                f"ingest on PostgreSQL {ratio:.2f}x SQLite's (target >= {INGEST_RATIO_TARGET}x)"
            )
    print("\n## Summary\n")
    print(
        "| backend | replicas | 2xx / stored | notices expected / received | duplicates"
        " / in flight at kills | claimed, not recorded at kills | alert p50 / p99 s | kills |"
    )
    print("|---|---|---|---|---|---|---|---|")
    r = resilience
    print(
        f"| {args.backend} | {r.replicas} | {r.acked:,} / {r.stored:,} | {r.expected:,} /"
        f" {r.received:,} | {r.duplicates} / {r.bound} | {'?' if r.leased is None else r.leased}"
        f" | {quantile(r.latencies, 50)} /"
        f" {quantile(r.latencies, 99)} | {len(r.kills)} |"
    )
    if saturations:
        figures = ", ".join(
            f"{s.replicas} replica(s){' on SQLite' if s.sqlite else ''} {s.rate:,.0f}/s"
            f" ({s.duplicates} duplicates, {s.at_stop} more at the stop)"
            if not s.failure
            else f"{s.replicas}: failed"
            for s in saturations
        )
        print(f"\ningest at saturation ({CONNECTIONS} connections): {figures}")
        if ratio is not None:
            print(f"one replica on PostgreSQL vs on SQLite: {ratio:.2f}x")
    busy = ["resilience"] if resilience.other_cpu > OTHER_CPU_WARN else []
    busy += [f"saturation {s.replicas}" for s in saturations if s.other_cpu > OTHER_CPU_WARN]
    if busy:
        print(
            f"\nWARNING: other processes used more than {OTHER_CPU_WARN:.0%} of a CPU during:"
            f" {', '.join(busy)}; rerun on a quiet machine"
        )
    print(
        f"\nSlack stand-in: {slack.posts:,} POSTs, {slack.duplicates} repeated"
        f" ({', '.join(late) or 'none'}), {len(slack.unmatched)} without exactly one wf-N"
    )
    if source_fingerprint() != fingerprint:
        print("WARNING: pulsehook's sources changed during the run; the figures mix versions")
    print(f"total time {time.monotonic() - began:.0f} s")
    # One line per problem: the phases' reports above show the logs.
    brief = [p.splitlines()[0] for p in problems]
    verdict = "PASS — every target met" if not brief else "FAIL — " + "; ".join(brief)
    print(f"verdict: {verdict}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
