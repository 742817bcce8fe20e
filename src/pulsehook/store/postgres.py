"""The store on PostgreSQL: the same store functions, psycopg 3 and its pool.

Each process still has one writer thread on one connection, each job one
transaction, so a replica's own writes are as ordered as on SQLite; replicas
coordinate through the database itself (row locks, advisory locks, NOTIFY).
Readers take pooled connections, each read one read-only transaction.

Statements are bound on the client (psycopg's ``ClientCursor``): the store's
SQL leans on SQLite's loose typing (``? IS NULL``, a Python bool into an
integer column), which literal values reproduce and server-side parameters,
typed before they are seen, do not.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper, Loader
from sqlite_utils.utils import dedupe_keys

from ..errors import StorageError, StorageRefused, StorageUnavailable
from . import dialect
from .db import Cursor, Readers, Tx, Writer
from .migrations import MIGRATIONS, Migration, statements

log = logging.getLogger(__name__)
T = TypeVar("T")

CONNECT_SECONDS = 10
# Replicas starting together: one applies the migrations, the others wait on this lock.
MIGRATION_LOCK = 0x70756C73  # "puls"
READERS_MAX = 8


class _BoolAsInteger(Dumper):
    """SQLite keeps booleans as 0 and 1, and so does the schema here."""

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class _Number(Loader):
    """``sum()`` and ``avg()`` answer numeric: an int when whole, as SQLite does."""

    def load(self, data: Any) -> Any:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


class _BoolLoader(Loader):
    def load(self, data: Any) -> Any:
        return 1 if bytes(data) == b"t" else 0


def connect(url: str, *, autocommit: bool = False, **options: Any) -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] = psycopg.connect(
        url,
        autocommit=autocommit,
        cursor_factory=psycopg.ClientCursor,
        connect_timeout=CONNECT_SECONDS,
        application_name="pulsehook",
        **options,
    )
    configure(conn)
    return conn


def configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_dumper(bool, _BoolAsInteger)
    conn.adapters.register_loader("numeric", _Number)
    conn.adapters.register_loader("bool", _BoolLoader)


def _values(parameters: Sequence[Any]) -> tuple[Any, ...]:
    """The parameters as PostgreSQL takes them: its text holds no NUL, which a
    payload's string may (JSON's \\u0000); it becomes U+FFFD, as an undecodable
    byte would. The payload itself is kept as received."""
    return tuple(
        p.replace("\x00", "\ufffd") if isinstance(p, str) and "\x00" in p else p for p in parameters
    )


class _Pipelined:
    """A statement's cursor while the writer pipelines: its rows are fetched when
    read (psycopg waits for them then), its row count once answered (a read of a
    later statement brings the answer along; else a flush)."""

    def __init__(self, cursor: psycopg.Cursor[Any], tx: PgTx) -> None:
        self._cursor = cursor
        self._tx = tx

    @property
    def rowcount(self) -> int:
        if self._cursor.pgresult is None:  # not answered yet
            self._tx.flush()
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


class PgTx:
    """A ``Tx`` on one PostgreSQL connection (``store.db.Tx``).

    With a ``pipeline`` (the writer's), a statement is sent without waiting for
    its answer: the answers come back together at the next statement whose rows
    are read, or at ``flush()``. Processing a delivery then costs a round trip
    per read, not per statement.
    """

    dialect = "postgresql"

    def __init__(
        self, conn: psycopg.Connection[Any], pipeline: psycopg.Pipeline | None = None
    ) -> None:
        self.conn = conn
        self._pipeline = pipeline

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        cursor = self.conn.cursor()
        cursor.execute(dialect.postgres(sql), _values(parameters))
        return cursor if self._pipeline is None else _Pipelined(cursor, self)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(dialect.postgres(sql), [_values(r) for r in rows])

    def query(self, sql: str, params: Sequence[Any] | None = None) -> Iterator[dict[str, Any]]:
        cursor = self.conn.cursor()
        cursor.execute(dialect.postgres(sql), _values(params or ()))
        try:
            rows = cursor.fetchall()  # first: a pipelined statement has no description before
        except psycopg.ProgrammingError as exc:
            if exc.sqlstate is not None:  # the server refused the statement
                raise
            rows = None  # psycopg's own: the statement returned no rows
        if cursor.description is None or rows is None:
            raise ValueError("query() is for statements that return rows; use execute()")
        keys = [d.name for d in cursor.description]
        if len(set(keys)) != len(keys):
            keys = list(dedupe_keys(keys))  # as on SQLite: id, id_2
        return (dict(zip(keys, row, strict=True)) for row in rows)

    def flush(self) -> None:
        if self._pipeline is not None:
            self._pipeline.sync()

    @property
    def in_transaction(self) -> bool:
        return self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


# SQLSTATE classes that say the database cannot take the work now, not that
# the statement is wrong: connection lost (08), resources (53), operator
# intervention such as a shutdown (57), a system error (58), a lock not granted
# or a conflict with another transaction (40, 55P03).
_UNAVAILABLE_CLASSES = ("08", "53", "57", "58", "40")
_UNAVAILABLE_STATES = ("55P03",)
_REFUSED = (pg_errors.IntegrityError, pg_errors.DataError)


def unavailable(exc: Exception) -> bool:
    if isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_STATES


def storage_error(exc: Exception, doing: str) -> StorageUnavailable | StorageError:
    if unavailable(exc):
        return StorageUnavailable(f"database {doing} failed: {exc}")
    if isinstance(exc, _REFUSED):
        return StorageRefused(f"database {doing} refused: {type(exc).__name__}: {exc}")
    return StorageError(f"database {doing} failed: {type(exc).__name__}: {exc}")


def migrate(conn: psycopg.Connection[Any], migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Apply the migrations not yet applied, numbered as SQLite's; return the version.

    Each runs in one transaction under an advisory lock, so of replicas
    starting together one migrates and the others wait, then find it done.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        for number in range(version + 1, len(migrations) + 1):
            for statement in postgres_migration(migrations[number - 1]):
                conn.execute(statement, ())
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
            log.info("schema migration %d applied", number)
            version = number
    return version


def postgres_migration(migration: Migration) -> list[str]:
    """A migration's statements as PostgreSQL runs them.

    A migration given as a function mends SQLite files written by earlier
    texts of other migrations (number 10); no PostgreSQL database was made
    from those texts, so on PostgreSQL it has nothing to do.
    """
    if not isinstance(migration, str):
        return []
    return dialect.in_dependency_order([dialect.ddl(s) for s in statements(migration)])


class PostgresWriter(Writer):
    """This process's writer on PostgreSQL: one connection, each job one transaction.

    The connection stays in pipeline mode: a job's statements go out without
    waiting for each answer, a read waits for what was sent before it, and the
    commit is the job's last round trip. A connection the server dropped is
    opened again for the next job; the job that met it fails
    StorageUnavailable, so nothing is acknowledged that did not commit.
    """

    driver_errors = (psycopg.Error,)

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000) -> None:
        self.url = url
        self.busy_timeout_ms = busy_timeout_ms
        self._wrote = True
        with connect(url) as conn:
            migrate(conn)
        self._conn, self._pipeline, self._mode = self._open()
        super().__init__()

    def _open(self) -> tuple[psycopg.Connection[Any], psycopg.Pipeline, contextlib.ExitStack]:
        conn = connect(self.url, autocommit=True)
        # As SQLite's busy timeout: a lock held elsewhere past this fails the job
        # as unavailable (55P03), rather than holding every sender behind it.
        conn.execute(f"SET lock_timeout = {int(self.busy_timeout_ms)}")
        conn.autocommit = False
        mode = contextlib.ExitStack()  # pipeline mode, for as long as the connection lasts
        return conn, mode.enter_context(conn.pipeline()), mode

    def _close(self) -> None:
        # Leaving pipeline mode syncs; on a dropped connection that fails, and
        # there is nothing left to sync.
        with contextlib.suppress(psycopg.Error):
            self._mode.close()
        self._conn.close()

    def _connection(self) -> tuple[psycopg.Connection[Any], psycopg.Pipeline]:
        if self._conn.closed or self._conn.broken:
            self._close()
            self._conn, self._pipeline, self._mode = self._open()
        return self._conn, self._pipeline

    def _transaction(self, fn: Callable[[Tx], T]) -> T:
        conn, pipeline = self._connection()
        try:
            result = fn(PgTx(conn, pipeline))
            if self.failing is not None:
                # Reads go on beside a lock that holds every write: only a job
                # that wrote shows the store takes writes again.
                (wrote,) = conn.execute(
                    "SELECT pg_current_xact_id_if_assigned() IS NOT NULL"
                ).fetchone() or (False,)
                self._wrote = bool(wrote)
            conn.commit()  # a statement that failed unread fails the job here
        except BaseException:
            self._abandon(conn)
            raise
        return result

    @staticmethod
    def _abandon(conn: psycopg.Connection[Any]) -> None:
        """Roll the job's transaction back. A ROLLBACK sent behind a statement that
        failed unread is skipped by the server, and the failure it reports belongs
        to the job being abandoned: then roll back once more."""
        for _ in range(2):
            if conn.broken or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                return
            try:
                conn.rollback()
            except psycopg.Error:
                continue
            return

    def _recovered(self) -> bool:
        wrote, self._wrote = self._wrote, True
        return wrote

    def _unavailable(self, exc: Exception) -> bool:
        return unavailable(exc)

    def _storage_error(self, exc: Exception, doing: str) -> StorageUnavailable | StorageError:
        return storage_error(exc, doing)

    def _finish(self) -> None:
        self._close()


class PostgresReaders(Readers):
    """Pooled read-only connections; each read is one REPEATABLE READ snapshot."""

    driver_errors = (psycopg.Error, psycopg_pool.PoolTimeout)

    def __init__(self, url: str, *, size: int = READERS_MAX) -> None:
        super().__init__()
        self.url = url
        self.pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=size,
            kwargs={
                "cursor_factory": psycopg.ClientCursor,
                "connect_timeout": CONNECT_SECONDS,
                "application_name": "pulsehook-reader",
            },
            configure=configure,
            timeout=CONNECT_SECONDS,
            open=True,
        )
        self._lock = threading.Lock()

    def _read(self, fn: Callable[[Tx], T]) -> T:
        with self.pool.connection() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                return fn(PgTx(conn))

    def _storage_error(self, exc: Exception, doing: str) -> StorageUnavailable | StorageError:
        return storage_error(exc, doing)

    def close(self) -> None:
        super().close()
        self.pool.close()
