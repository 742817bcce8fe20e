"""Opening the database, and the one writer.

Every write goes through ``Writer``: one thread, one connection, each job one
``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction. Jobs come in two lanes —
acknowledging deliveries (a sender waits on the socket) and everything else
(processing, sending, scheduling) — and while both have work the lanes take
turns, so neither waits for the other to go quiet. Readers open their own
connections; WAL lets them read while the writer writes.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlite_utils
from sqlite_utils.utils import dedupe_keys

from ..errors import StorageError, StorageRefused, StorageUnavailable
from .checkpoint import Checkpointer
from .migrations import migrate

log = logging.getLogger(__name__)
T = TypeVar("T")

IDLE_SECONDS = 0.05  # no job for this long: checkpoint
# Bytes of log that ask for a checkpoint even under load. Small, so that a full
# disk finds little in the log still to copy into the database file: once some
# space frees, one checkpoint gets through and the log starts over.
WAL_STEP = 16 * 1024 * 1024
WAL_CAP = 1024 * 1024 * 1024  # past this, checkpoints are not keeping up: the writer waits
WAL_KEEP = 16 * 1024 * 1024  # the log file is cut back to this when it starts over
WRITER_CACHE_KIB = 16 * 1024  # the writer's page cache (SQLite's default is 2 MiB)

URGENT = 0  # acknowledging a delivery: a sender is waiting
NORMAL = 1  # processing, sending, scheduling: nobody is waiting on the socket


class Cursor(Protocol):
    """What ``Tx.execute`` returns, as both drivers' cursors have it."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Tx(Protocol):
    """What a store function is handed: the writer's open transaction or a
    reader's snapshot, on either database.

    Statements are written once, in the SQL both share (``?`` placeholders);
    a PostgreSQL handle respells them (``store.dialect``). ``dialect`` names
    the database, for the few statements only one of them has. Callers
    outside store/ name this type and pass it on; they never issue SQL through it.
    """

    dialect: str

    def execute(self, sql: str, parameters: Sequence[Any] = ...) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def query(self, sql: str, params: Sequence[Any] | None = None) -> Iterator[dict[str, Any]]: ...

    def flush(self) -> None:
        """Wait until every statement sent so far has run: one that failed raises
        here. A statement may otherwise answer late, at the next one read."""

    @property
    def in_transaction(self) -> bool: ...


Job = tuple[Callable[[Tx], Any], Future[Any]]


def connect(
    path: Path, *, synchronous: str = "normal", busy_timeout_ms: int = 5000, readonly: bool = False
) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE,
    # so the write lock is taken up front and never upgraded mid-transaction.
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        _use_wal(conn, busy_timeout_ms)
        conn.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
    return conn


def _use_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Turn WAL on, waiting up to the busy timeout for another process's lock.

    SQLite takes the lock that turning WAL on needs without its busy handler: a
    server and a worker starting together on a new file would otherwise find it
    "locked" at once.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # any of its extended codes
            if not busy or time.monotonic() > deadline:
                raise
        time.sleep(0.005)


def open_database(
    path: Path, *, synchronous: str = "normal", busy_timeout_ms: int = 5000
) -> sqlite3.Connection:
    """A write connection with the schema migrated to the latest version."""
    conn = connect(path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
    migrate(conn)
    return conn


class Database(sqlite_utils.Database):
    """sqlite-utils' Database, its ``query()`` run as the one statement it is.

    sqlite-utils guards every ``query()`` with a savepoint, so that a statement
    that turns out to return no rows can be undone before it raises. pulsehook's
    queries are SELECTs of its own; the guard added two statements to each, a
    sixth of all the statements of processing a delivery.
    """

    dialect = "sqlite"

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def flush(self) -> None:
        """Nothing to wait for: SQLite runs each statement as it is executed."""

    def query(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> Generator[dict[str, Any], None, None]:
        cursor = self.conn.execute(sql, params if params is not None else ())
        if cursor.description is None:
            raise ValueError("query() is for statements that return rows; use execute()")
        keys = [d[0] for d in cursor.description]
        if len(set(keys)) != len(keys):
            keys = list(dedupe_keys(keys))  # as sqlite-utils names them: id, id_2
        return (dict(zip(keys, row, strict=True)) for row in cursor)


def wrap(conn: sqlite3.Connection) -> Database:
    return Database(conn, execute_plugins=False)


# SQLite's primary result codes that say the database cannot take the work now
# (another connection holds it, the disk is full or failing, the file cannot be
# opened or written, memory ran out), not that the statement is wrong.
_UNAVAILABLE = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_PROTOCOL,
    }
)
# Errors about the data of one row (a constraint, a value SQLite cannot hold).
_REFUSED = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError)


def _unavailable(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the store cannot take the work now (not that it is wrong)."""
    # The primary code: extended ones (SQLITE_IOERR_WRITE ...) carry it in the low byte.
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.OperationalError)
        and code is not None
        and code & 0xFF in _UNAVAILABLE
    )


def _storage_error(exc: sqlite3.Error, doing: str) -> StorageUnavailable | StorageError:
    """The project's error for the driver's ``exc`` while ``doing`` (the caller
    raises it ``from exc``).

    Only the state of the store is StorageUnavailable (a 503: try again later);
    anything else is a fault of a statement — StorageRefused for one row's data,
    StorageError for the SQL itself — which no retry mends.
    """
    if _unavailable(exc):
        return StorageUnavailable(f"database {doing} failed: {exc}")
    if isinstance(exc, _REFUSED):
        return StorageRefused(f"database {doing} refused: {type(exc).__name__}: {exc}")
    return StorageError(f"database {doing} failed: {type(exc).__name__}: {exc}")


def transaction(db: Database, fn: Callable[[Database], T]) -> T:
    """Run ``fn`` in one immediate transaction; roll back on any error.

    sqlite-utils turns its own writes inside an open transaction into
    savepoints, so table helpers compose with this.
    """
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(db)
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    db.conn.execute("COMMIT")
    return result


class Savepoint:
    """A step inside the open transaction (``savepoint``): undone alone if it fails."""

    def __init__(self, db: Tx, name: str) -> None:
        self._db = db
        self._name = name

    def rollback(self, after: BaseException) -> None:
        """Undo what the step wrote before ``after`` stopped it; the step goes
        on, and what it writes next is kept when it ends.

        SQLite rolls the whole transaction back itself on some errors (a full
        disk, an I/O error): then nothing is left to go on in, and ``after`` is
        raised again, for the transaction's owner to see.
        """
        if not self._db.in_transaction:
            raise after
        settle(self._db)
        self._db.execute(f"ROLLBACK TO SAVEPOINT {self._name}")


IN_CHUNK = 500  # values in one IN list: well under SQLite's variable limit


def present(db: Tx, table: str, column: str, values: Iterable[str]) -> set[str]:
    """Which of ``values`` stand in ``column`` of ``table`` (both pulsehook's own
    names, never input), asked in bounded IN lists."""
    wanted = sorted(set(values))
    found: set[str] = set()
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start : start + IN_CHUNK]
        marks = ",".join("?" for _ in chunk)
        rows = db.query(f"SELECT {column} FROM {table} WHERE {column} IN ({marks})", chunk)
        found |= {str(r[column]) for r in rows}
    return found


def settle(db: Tx) -> None:
    """Hear out the statements still unanswered before undoing them: one that
    failed unread would have the server skip the rollback sent behind it. Its
    failure is what is being undone, and is not raised again."""
    with contextlib.suppress(Exception):
        db.flush()


@contextlib.contextmanager
def savepoint(db: Tx, name: str) -> Iterator[Savepoint]:
    """A step of the open transaction (a delivery of a chunk): what it wrote stays
    when it ends, unless rolled back; an exception leaving it undoes it first."""
    if not name.isidentifier():
        raise ValueError(f"not a savepoint name: {name!r}")
    db.execute(f"SAVEPOINT {name}")
    try:
        yield Savepoint(db, name)
    except BaseException:
        if db.in_transaction:
            settle(db)
            db.execute(f"ROLLBACK TO SAVEPOINT {name}")
            db.execute(f"RELEASE SAVEPOINT {name}")
        raise
    db.execute(f"RELEASE SAVEPOINT {name}")


class Writer(abc.ABC):
    """The single writer thread of a process, on either database.

    Each job is one transaction (``_transaction``); the lanes and their turns,
    the readiness flag and closing are the same for both databases.
    """

    # The driver's errors, which ``run`` turns into the project's.
    driver_errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self) -> None:
        self._lanes: tuple[deque[Job], deque[Job]] = (deque(), deque())
        self._turn = URGENT  # the lane served next when both have work
        self._ready = threading.Condition()
        self._closing = False
        self.turns = [0, 0]  # jobs run per lane, for tests and diagnostics
        self.failing: str | None = None  # the last write's error, until one commits
        self._thread = threading.Thread(target=self._run, name="pulsehook-writer", daemon=True)
        self._thread.start()

    # What each database does differently.
    @abc.abstractmethod
    def _transaction(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` in one transaction on this writer's connection and commit."""

    @abc.abstractmethod
    def _unavailable(self, exc: Exception) -> bool:
        """Whether the driver's ``exc`` says the store cannot take writes now."""

    @abc.abstractmethod
    def _storage_error(self, exc: Exception, doing: str) -> StorageUnavailable | StorageError:
        """The project's error for the driver's ``exc`` (raised ``from exc``)."""

    def _idle_timeout(self) -> float | None:
        """How long to wait for a job before ``_idle`` (None: no idle work)."""
        return None

    def _idle(self) -> None:  # noqa: B027 — a hook: only SQLite has work for a quiet moment
        """Work for a quiet moment."""

    def _committed(self) -> None:  # noqa: B027 — a hook: only SQLite minds its log after a job
        """After each job, committed or not."""

    def _recovered(self) -> bool:
        """Whether the job that just committed shows the store takes writes again."""
        return True

    @abc.abstractmethod
    def _finish(self) -> None:
        """The thread's last act: close the connection."""

    def submit(self, fn: Callable[[Tx], T], lane: int = NORMAL) -> Future[T]:
        future: Future[T] = Future()
        with self._ready:
            if self._closing:
                raise StorageUnavailable("the database is closing")
            self._lanes[URGENT if lane == URGENT else NORMAL].append((fn, future))
            self._ready.notify()
        return future

    def _next(self) -> Job | None:
        """The next job, lanes taking turns; None once closing and empty."""
        with self._ready:
            while not (self._lanes[URGENT] or self._lanes[NORMAL]):
                if self._closing:
                    return None
                if not self._ready.wait(timeout=self._idle_timeout()):
                    self._idle()
            lane = self._turn if self._lanes[self._turn] else 1 - self._turn
            self._turn = 1 - lane
            self.turns[lane] += 1
            return self._lanes[lane].popleft()

    async def run(self, fn: Callable[[Tx], T], lane: int = NORMAL) -> T:
        """Run ``fn`` in one transaction on the writer thread and wait for the commit.

        A store that cannot take the write (locked past the busy timeout, disk
        full, I/O error, the server gone) raises StorageUnavailable: the caller
        must not acknowledge. Any other driver error is a statement's fault:
        StorageRefused (a row's data) or StorageError (the SQL).
        """
        try:
            return await asyncio.wrap_future(self.submit(fn, lane))
        except self.driver_errors as exc:
            raise self._storage_error(exc, "write") from exc

    def _run(self) -> None:
        while (job := self._next()) is not None:
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = self._transaction(fn)
            except self.driver_errors as exc:
                # Disk full, I/O error, locked past the timeout: readiness says so
                # until a transaction commits again. A faulty statement is a bug of
                # one job, not the store's state: the next job may well commit.
                if self._unavailable(exc):
                    self.failing = str(exc)
                future.set_exception(exc)
            except BaseException as exc:  # noqa: BLE001 — handed to the waiting caller
                future.set_exception(exc)
            else:
                # Readiness is mended before the caller hears of the commit, so
                # whoever waited sees the state its own write produced.
                if self._recovered():
                    self.failing = None
                future.set_result(result)
            self._committed()
        self._finish()

    def close(self) -> None:
        """Finish the queued jobs, then stop; later submissions are refused."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join(timeout=30)


class SqliteWriter(Writer):
    """The writer on a SQLite file: one connection, each job one ``BEGIN
    IMMEDIATE`` transaction; it schedules the WAL's checkpoints itself."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "normal",
        busy_timeout_ms: int = 5000,
        wal_step: int = WAL_STEP,
        wal_cap: int = WAL_CAP,
        wal_keep: int = WAL_KEEP,
    ) -> None:
        self.db = wrap(
            open_database(path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
        )
        # Checkpoints are the writer's to schedule: SQLite's automatic ones run
        # inside whichever commit crosses the threshold, with senders waiting.
        self.db.conn.execute("PRAGMA wal_autocheckpoint = 0")
        # The log file keeps its size when it starts over after a checkpoint; cut
        # back, its size measures the log written since, which the limits rely on.
        self.db.conn.execute(f"PRAGMA journal_size_limit = {int(wal_keep)}")
        # Each delivery touches a random page of the guid index: keep those cached.
        self.db.conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        self._wal = Path(f"{path}-wal")
        self._wal_step = wal_step
        self._wal_cap = wal_cap
        self.checkpointer = Checkpointer(
            connect(path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
        )
        self._dirty = False
        super().__init__()

    def _transaction(self, fn: Callable[[Tx], T]) -> T:
        return transaction(self.db, fn)

    def _unavailable(self, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.Error) and _unavailable(exc)

    def _storage_error(self, exc: Exception, doing: str) -> StorageUnavailable | StorageError:
        assert isinstance(exc, sqlite3.Error)
        return _storage_error(exc, doing)

    def _idle_timeout(self) -> float | None:
        return IDLE_SECONDS if self._dirty else None

    def _idle(self) -> None:
        # A quiet moment with changes not yet checkpointed is the time for it.
        self.checkpointer.request()
        self._dirty = False

    def _committed(self) -> None:
        self._dirty = True
        wal = self._wal_bytes()
        if wal > self._wal_cap:
            # A long read pins the log, or checkpoints fall behind: the
            # log must not grow without bound, so commits wait this once.
            log.warning("write-ahead log at %d MiB: checkpointing in line", wal >> 20)
            self._checkpoint("RESTART")
        elif wal > self._wal_step:
            self.checkpointer.request()

    def _finish(self) -> None:
        self.checkpointer.close()
        self._checkpoint("TRUNCATE")
        self.db.conn.close()

    def _wal_bytes(self) -> int:
        try:
            return os.stat(self._wal).st_size
        except OSError:
            return 0

    def _checkpoint(self, mode: str) -> None:
        """Copy the log into the database file on the writer's own connection."""
        try:
            self.db.conn.execute(f"PRAGMA wal_checkpoint({mode})")
        except sqlite3.Error as exc:
            log.warning("checkpoint (%s) failed: %s", mode, exc)
        self._dirty = False


class Readers(abc.ABC):
    """Read-only snapshots for the web and the CLI, off the writer's thread."""

    driver_errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self) -> None:
        self._closed = False

    @abc.abstractmethod
    def _read(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` on a read-only snapshot (on the calling thread)."""

    @abc.abstractmethod
    def _storage_error(self, exc: Exception, doing: str) -> StorageUnavailable | StorageError:
        """The project's error for the driver's ``exc`` (raised ``from exc``)."""

    async def run(self, fn: Callable[[Tx], T]) -> T:
        if self._closed:
            raise StorageUnavailable("the database is closing")
        try:
            return await asyncio.to_thread(self._read, fn)
        except self.driver_errors as exc:
            if self._closed:  # closed under a read in flight: shutting down, not a bug
                raise StorageUnavailable("the database is closing") from exc
            raise self._storage_error(exc, "read") from exc

    def close(self) -> None:
        self._closed = True


class SqliteReaders(Readers):
    """Read-only connections to a SQLite file, one per reading thread."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        super().__init__()
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def connection(self) -> Database:
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            conn = connect(self.path, busy_timeout_ms=self.busy_timeout_ms, readonly=True)
            db = wrap(conn)
            self._local.db = db
            with self._lock:
                self._all.append(conn)
        return db

    def _read(self, fn: Callable[[Tx], T]) -> T:
        return fn(self.connection())

    def _storage_error(self, exc: Exception, doing: str) -> StorageUnavailable | StorageError:
        assert isinstance(exc, sqlite3.Error)
        return _storage_error(exc, doing)

    def close(self) -> None:
        super().close()
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
