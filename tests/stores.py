"""The store under test, whichever it is, as a test looks into it.

The suite runs on SQLite and on PostgreSQL (``PULSEHOOK_TEST_BACKEND``); a
test that checks what was stored opens the store the service under test
uses: the SQLite file at the path it names, or the database in
``PULSEHOOK_DATABASE_URL`` (set per test by conftest's hermetic
environment). Statements are the store's own spelling (``?``), respelled
for PostgreSQL as the service's are.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from pulsehook.store import dialect
from pulsehook.store.db import Tx, open_database, transaction, wrap
from pulsehook.store.postgres import PgTx, migrate
from pulsehook.store.postgres import connect as pg_connect

T = TypeVar("T")


def url() -> str | None:
    return os.environ.get("PULSEHOOK_DATABASE_URL") or None


class PgConnection:
    """What the tests use of a sqlite3 connection, on PostgreSQL (autocommit)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(dialect.postgres(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(dialect.postgres(sql), [tuple(r) for r in rows])

    def close(self) -> None:
        self.conn.close()


@contextlib.contextmanager
def connect(path: Path | str) -> Iterator[Any]:
    """A connection to the store at ``path`` (or the configured PostgreSQL);
    changes are committed as they are made, and it is closed on leaving."""
    configured = url()
    if configured is not None:
        conn = PgConnection(pg_connect(configured, autocommit=True))
        try:
            yield conn
        finally:
            conn.close()
        return
    sqlite = sqlite3.connect(path, isolation_level=None)
    try:
        yield sqlite
    finally:
        sqlite.close()


@contextlib.contextmanager
def write_lock(path: Path | str) -> Iterator[None]:
    """Another session holding the store's write lock for as long as this is held:
    the service's writes wait past their timeout and fail as unavailable."""
    configured = url()
    if configured is None:
        blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        return
    with psycopg.connect(configured) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        # EXCLUSIVE: reads go on, every write waits (as SQLite's EXCLUSIVE in WAL mode).
        conn.execute("LOCK TABLE " + ", ".join(tables) + " IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


class Handle:
    """The store at a path (or the configured PostgreSQL) for a test to fill:
    ``transact(fn)`` runs ``fn`` in one transaction, as the writer would."""

    def __init__(self, path: Path | str) -> None:
        self._url = url()
        if self._url is not None:
            self._pg = pg_connect(self._url)
            migrate(self._pg)
            self._pg.commit()
        else:
            self._db = wrap(open_database(Path(path)))

    def transact(self, fn: Callable[[Tx], T]) -> T:
        if self._url is None:
            return transaction(self._db, fn)
        with self._pg.transaction():
            return fn(PgTx(self._pg))

    def close(self) -> None:
        if self._url is None:
            self._db.conn.close()
        else:
            self._pg.close()

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def create(path: Path | str) -> None:
    """The store as the service leaves it after one start: there, and migrated."""
    Handle(path).close()
