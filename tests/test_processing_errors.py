"""Errors say what they are: a normalizer's crash is an error, not an ignored payload;
only a locked, full or failing store is "unavailable", a faulty statement is a bug."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from pulsehook.app import create_app
from pulsehook.errors import (
    BadRequest,
    NormalizerFailed,
    StorageError,
    StorageRefused,
    StorageUnavailable,
    UnsupportedEvent,
)
from pulsehook.github import normalize
from pulsehook.ingest import News, process_chunk
from pulsehook.intake import Intake
from pulsehook.runtime import open_store
from pulsehook.settings import Settings
from pulsehook.store import deliveries
from pulsehook.store.db import (
    SqliteReaders,
    SqliteWriter,
    Tx,
    Writer,
    open_database,
    transaction,
    wrap,
)
from pulsehook.store.deliveries import Delivery, insert_batch

from . import stores
from .conftest import AUTH, deliver, drained, live, payload, wait_for

NOW = "2026-01-01T00:00:00Z"


def _broken(data: dict[str, Any]) -> list[Any]:
    raise KeyError("head_commit")


def _row(db: Tx, guid: str) -> tuple[str, str | None, int]:
    found = next(db.query("SELECT status, error, attempts FROM deliveries WHERE guid = ?", (guid,)))
    return found["status"], found["error"], found["attempts"]


# -- a normalizer that raises ------------------------------------------------------


def test_normalize_reports_a_crashing_normalizer_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(normalize.NORMALIZERS, "push", _broken)
    with pytest.raises(NormalizerFailed) as caught:
        normalize.normalize("push", payload("push"))
    assert str(caught.value) == "push normalizer failed: KeyError: 'head_commit'"
    assert isinstance(caught.value.__cause__, KeyError)
    # To whoever only asks for facts, there are none: an UnsupportedEvent too.
    assert isinstance(caught.value, UnsupportedEvent)


def test_a_crashing_normalizer_leaves_its_delivery_in_error_to_be_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db = wrap(open_database(tmp_path / "p.db"))
    stored = [
        Delivery("crash", "push", json.dumps(payload("push")), "json", NOW),
        Delivery("other", "sponsorship", "{}", "json", NOW),
    ]
    transaction(db, partial(insert_batch, batch=stored))
    monkeypatch.setitem(normalize.NORMALIZERS, "push", _broken)
    caplog.set_level(logging.ERROR, logger="pulsehook.ingest")
    transaction(db, partial(process_chunk, after_id=0, now=NOW, statuses=("pending",)))

    status, error, attempts = _row(db, "crash")
    assert status == "error" and attempts == 1
    assert error is not None and "KeyError: 'head_commit'" in error
    assert _row(db, "other")[0] == "ignored"  # an event pulsehook does not read
    # Logged once, with its traceback; nothing of the delivery was applied.
    failures = [r for r in caplog.records if r.getMessage() == "delivery processing failed"]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert next(db.query("SELECT count(*) AS n FROM repositories"))["n"] == 0

    # Mended (as an upgrade would): the pass at start, over pending and error, takes it.
    monkeypatch.undo()
    transaction(db, partial(process_chunk, after_id=0, now=NOW, statuses=("pending", "error")))
    assert _row(db, "crash") == ("processed", None, 2)
    assert _row(db, "other")[0] == "ignored"
    assert next(db.query("SELECT count(*) AS n FROM repositories"))["n"] == 1
    db.conn.close()


# -- the store: unavailable, refused, or a bug --------------------------------------


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    w = SqliteWriter(tmp_path / "t.db", busy_timeout_ms=100)
    yield w
    w.close()


def _run(writer: Writer, job: Callable[[Tx], Any]) -> Any:
    return asyncio.run(writer.run(job))


def test_a_locked_database_is_unavailable(writer: Writer, tmp_path: Path) -> None:
    blocker = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageUnavailable, match="locked") as caught:
            _run(writer, lambda db: db.execute("SELECT 1"))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    cause = caught.value.__cause__
    assert isinstance(cause, sqlite3.OperationalError) and cause.sqlite_errorname == "SQLITE_BUSY"
    assert _run(writer, lambda db: 1) == 1  # the lock gone, writes go again


def test_a_read_only_database_is_unavailable(writer: Writer) -> None:
    def write(db: Tx) -> None:
        db.execute("PRAGMA query_only = ON")
        try:
            db.execute("CREATE TABLE scratch (x)")
        finally:
            db.execute("PRAGMA query_only = OFF")

    with pytest.raises(StorageUnavailable, match="readonly"):
        _run(writer, write)


def test_a_sql_error_is_a_storage_error_not_unavailable(writer: Writer) -> None:
    with pytest.raises(StorageError) as caught:
        _run(writer, lambda db: db.execute("INSERT INTO no_such_table VALUES (1)"))
    assert not isinstance(caught.value, StorageUnavailable | StorageRefused)
    assert "no such table: no_such_table" in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert _run(writer, lambda db: 1) == 1  # the store itself is fine


def test_a_constraint_is_a_refusal_of_the_row(writer: Writer) -> None:
    with pytest.raises(StorageRefused, match="NOT NULL") as caught:
        _run(writer, lambda db: db.execute("INSERT INTO deliveries (guid) VALUES (NULL)"))
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)


def test_reads_are_classified_the_same(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"  # a rollback journal: an exclusive lock stops readers
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (x)")
    setup.close()
    readers = SqliteReaders(path, busy_timeout_ms=100)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageUnavailable, match="locked"):
            asyncio.run(readers.run(lambda db: list(db.query("SELECT * FROM t"))))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with pytest.raises(StorageError) as caught:
        asyncio.run(readers.run(lambda db: list(db.query("SELECT * FROM no_such_table"))))
    assert not isinstance(caught.value, StorageUnavailable)
    assert asyncio.run(readers.run(lambda db: list(db.query("SELECT * FROM t")))) == []
    readers.close()
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(StorageUnavailable, match="unable to open"):
        asyncio.run(SqliteReaders(tmp_path / "a-directory").run(lambda db: None))


# -- intake and the webhook: a store bug is a 500, not a 503 or a 400 ----------------


def _faulty_insert(db: Tx, batch: list[Delivery]) -> list[bool]:
    db.execute("INSERT INTO deliveries (no_such_column) VALUES (1)")
    return [True for _ in batch]


def test_intake_fails_every_sender_of_a_batch_the_stores_sql_fails(
    writer: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deliveries, "insert_batch", _faulty_insert)
    jobs = writer.turns[0]
    intake = Intake(writer, batch_max=256, on_commit=lambda: None)
    batch = [Delivery(g, "push", "{}", "json", NOW) for g in ("a", "b", "c")]

    async def run() -> list[bool | BaseException]:
        return await asyncio.gather(*(intake.submit(d) for d in batch), return_exceptions=True)

    outcomes = asyncio.run(run())
    assert all(isinstance(o, StorageError) for o in outcomes), outcomes
    assert not any(isinstance(o, StorageUnavailable | BadRequest) for o in outcomes)
    assert writer.turns[0] - jobs == 1  # not tried again one by one: no row was at fault


def test_the_webhook_answers_a_store_bug_with_500(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deliveries, "insert_batch", _faulty_insert)
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as client:
        answer = deliver(client, "push", payload("push"), guid="bug-1")
        assert answer.status_code == 500
        assert answer.json()["error"]["code"] == "internal_error"
        monkeypatch.undo()
        assert deliver(client, "push", payload("push"), guid="bug-1").status_code == 202
        wait_for(lambda: drained(client))


def test_a_faulty_statement_leaves_readiness_alone(writer: Writer) -> None:
    """Readiness answers for the store's state: one job's SQL bug does not make it 503."""
    with pytest.raises(StorageError):
        _run(writer, lambda db: db.execute("SELECT * FROM no_such_table"))
    assert writer.failing is None


def test_a_read_after_close_is_unavailable_not_a_bug(tmp_path: Path) -> None:
    SqliteWriter(tmp_path / "c.db").close()  # a migrated database
    readers = SqliteReaders(tmp_path / "c.db")
    assert asyncio.run(readers.run(lambda db: 1)) == 1
    readers.close()
    with pytest.raises(StorageUnavailable, match="closing"):
        asyncio.run(readers.run(lambda db: 1))


# -- a delivery whose writes the store refuses ----------------------------------------

_DOOMED_SQLITE = (
    "CREATE TRIGGER doomed BEFORE INSERT ON builds WHEN NEW.workflow = 'doomed'"
    " BEGIN SELECT RAISE(ABORT, 'doomed build'); END"
)
_DOOMED_POSTGRES = (
    "CREATE FUNCTION doomed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " IF NEW.workflow = 'doomed' THEN RAISE EXCEPTION 'doomed build'; END IF;"
    " RETURN NEW; END $$;"
    " CREATE TRIGGER doomed BEFORE INSERT ON builds FOR EACH ROW EXECUTE FUNCTION doomed()"
)


def test_a_write_refused_mid_chunk_fails_that_delivery_alone(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # On PostgreSQL the chunk's statements are pipelined: the refused insert is
    # heard of only at a later read, after other deliveries went on. Still only
    # the one at fault is kept as an error, and every other one is applied.
    writer, readers = open_store(settings)
    try:
        runs = []
        for n in range(5):
            run = payload("workflow_run.completed")
            run["workflow_run"]["id"] = 1000 + n
            run["workflow"]["name"] = "doomed" if n == 2 else f"ci-{n}"
            runs.append(Delivery(f"run{n}", "workflow_run", json.dumps(run), "json", NOW))
        writer.submit(lambda db: insert_batch(db, runs)).result()
        if stores.url() is None:
            with stores.connect(settings.db_path) as conn:
                conn.execute(_DOOMED_SQLITE)
        else:
            with psycopg.connect(str(stores.url()), autocommit=True) as conn:
                conn.execute(_DOOMED_POSTGRES)
        caplog.set_level(logging.ERROR, logger="pulsehook.ingest")
        news = News()
        _, count, _ = writer.submit(
            lambda db: process_chunk(db, after_id=0, now=NOW, statuses=("pending",), news=news)
        ).result()
        assert count == 5
        outcome = writer.submit(
            lambda db: [
                (r["guid"], r["status"], r["error"])
                for r in db.query("SELECT guid, status, error FROM deliveries ORDER BY id")
            ]
        ).result()
        builds = writer.submit(
            lambda db: sorted(r["workflow"] for r in db.query("SELECT workflow FROM builds"))
        ).result()
    finally:
        writer.close()
        readers.close()
    assert [(g, s) for g, s, _ in outcome] == [
        ("run0", "processed"),
        ("run1", "processed"),
        ("run2", "error"),
        ("run3", "processed"),
        ("run4", "processed"),
    ]
    assert "doomed build" in str(outcome[2][2])
    assert builds == ["ci-0", "ci-1", "ci-3", "ci-4"]
    assert news.failed == ["workflow_run"]
    failures = [r for r in caplog.records if r.getMessage() == "delivery processing failed"]
    assert len(failures) == 1
