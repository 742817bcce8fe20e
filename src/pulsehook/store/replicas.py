"""Replicas on one PostgreSQL database: who is alive, who leads, wake-ups between them.

Each replica keeps one session of its own (``Presence``) for as long as it
runs. On it, it holds a session-level advisory lock named after itself — the
database's word that it is alive, gone the moment the session ends (a crash,
SIGKILL, a lost network: the server drops the session, and its locks with
it) — and, while it leads, the leader's advisory lock. Another replica tells a
dead one's leases by the missing lock, and takes the lead by taking the lock.

Wake-ups ("deliveries were stored", "notices wait") cross replicas as
``NOTIFY pulsehook, '<topic> <sender>'``; a ``Listener`` on its own session
hands those of the other replicas to the local events hub.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from .postgres import connect

log = logging.getLogger(__name__)

CHANNEL = "pulsehook"
LEADER = "pulsehook:leader"
RECONNECT_SECONDS = 1.0
# The server notices a peer that vanished without closing its socket (a host
# gone, a partition) after about idle + interval x count seconds.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 2}


def lock_key(name: str) -> int:
    """A stable advisory-lock key for ``name``: 62 bits, so it is positive and its
    halves read back from ``pg_locks`` as they were given."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest()) >> 2


class Presence:
    """This replica's own session: its liveness lock, the leader lock, its NOTIFYs.

    Thread-safe: the dispatcher asks ``alive`` from the writer thread, the
    runtime ``lead`` from the event loop's worker threads.
    """

    def __init__(self, url: str, instance_id: str) -> None:
        self.id = instance_id
        self._url = url
        self._lock = threading.RLock()
        self._leading = False
        self._conn: psycopg.Connection[Any] | None = None
        self._open()
        self._pending: set[str] = set()
        self._wanted = threading.Condition()
        self._closing = False
        self._sender = threading.Thread(target=self._send, name="pulsehook-notify", daemon=True)
        self._sender.start()

    def _open(self) -> psycopg.Connection[Any]:
        conn = connect(self._url, autocommit=True, **KEEPALIVE)
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(self.id),))
        self._conn = conn
        return conn

    def _session(self) -> psycopg.Connection[Any]:
        """The session, opened again (with a new liveness lock) if it was lost."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            if self._leading:
                log.warning("lost the database session: no longer leading")
            self._leading = False
            if conn is not None:
                conn.close()
            conn = self._open()
        return conn

    def alive(self, instance: str) -> bool:
        """Whether the replica ``instance`` still holds its session."""
        if instance == self.id:
            return True
        key = lock_key(instance)
        with self._lock:
            row = (
                self._session()
                .execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                    " AND granted AND objsubid = 1 AND classid::bigint = %s"
                    " AND objid::bigint = %s AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database()))",
                    (key >> 32, key & 0xFFFFFFFF),
                )
                .fetchone()
            )
        return bool(row and row[0])

    def lead(self) -> bool:
        """Whether this replica leads: it holds the leader lock now, or takes it.

        False, and the lead is given up, when the session was lost meanwhile:
        the server dropped its locks, and another replica may lead already.
        """
        with self._lock:
            try:
                if self._leading:
                    self._session().execute("SELECT 1")
                    return self._conn is not None and self._leading
                row = (
                    self._session()
                    .execute("SELECT pg_try_advisory_lock(%s)", (lock_key(LEADER),))
                    .fetchone()
                )
                self._leading = bool(row and row[0])
            except psycopg.Error as exc:
                if self._leading:
                    log.warning("lost the database session: no longer leading (%s)", exc)
                self._leading = False
                with contextlib.suppress(psycopg.Error):
                    if self._conn is not None:
                        self._conn.close()
                self._conn = None
                return False
            return self._leading

    def resign(self) -> None:
        with self._lock:
            if self._leading and self._conn is not None and not self._conn.broken:
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(LEADER),))
            self._leading = False

    def notify(self, topic: str) -> None:
        """Tell the other replicas about ``topic`` soon (from any thread, never blocking)."""
        with self._wanted:
            self._pending.add(topic)
            self._wanted.notify()

    def _send(self) -> None:
        while True:
            with self._wanted:
                while not self._pending and not self._closing:
                    self._wanted.wait()
                if self._closing:
                    return
                topics, self._pending = self._pending, set()
            try:
                with self._lock:
                    conn = self._session()
                    for topic in sorted(topics):
                        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{topic} {self.id}"))
            except psycopg.Error as exc:
                # The others poll what they wait for as well; a lost wake-up delays, never loses.
                log.warning("could not notify the other replicas: %s", exc)
                with self._lock:
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None
                time.sleep(RECONNECT_SECONDS)

    def close(self) -> None:
        with self._wanted:
            self._closing = True
            self._wanted.notify()
        self._sender.join(timeout=5)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._leading = False


class Listener:
    """Hands the other replicas' NOTIFYs to ``on_topic`` (on this thread)."""

    def __init__(self, url: str, instance_id: str, on_topic: Callable[[str], None]) -> None:
        self._url = url
        self._id = instance_id
        self._on_topic = on_topic
        self._stopping = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="pulsehook-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                conn = self._conn = connect(self._url, autocommit=True, **KEEPALIVE)
                conn.execute(f"LISTEN {CHANNEL}")
                # A wake-up may have gone by while not listening: look once.
                for topic in ("deliveries", "notices"):
                    self._on_topic(topic)
                while not self._stopping.is_set():
                    for note in conn.notifies(timeout=1.0):
                        topic, _, sender = note.payload.partition(" ")
                        if sender != self._id:
                            self._on_topic(topic)
            except psycopg.Error as exc:
                if self._stopping.is_set():
                    return
                log.warning("listening for the other replicas failed: %s; again shortly", exc)
                self._stopping.wait(RECONNECT_SECONDS)
            finally:
                if self._conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        self._conn.close()
                    self._conn = None

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
