"""How processing shares the writer with receiving: turns, never waiting for quiet."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from pulsehook.clock import FrozenClock
from pulsehook.ingest import Worker, process_chunk, processing_lag
from pulsehook.store.db import NORMAL, URGENT, SqliteWriter, Tx, Writer
from pulsehook.store.deliveries import Delivery, decode_payload, insert_batch, next_received_at

from . import stores
from .conftest import payload

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


def test_lag_is_how_long_the_next_waiting_delivery_has_waited() -> None:
    assert processing_lag(None, RECEIVED) == 0.0
    assert processing_lag("2026-01-01T00:00:00Z", RECEIVED + timedelta(seconds=42)) == 42.0
    # A clock behind the receipt time (another process's clock) is no lag.
    assert processing_lag("2026-01-01T00:00:10Z", RECEIVED) == 0.0


def test_next_received_at_is_the_first_delivery_past_the_cursor(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "w.db")
    try:
        _store(writer, 2)
        assert writer.submit(lambda db: next_received_at(db, 0)).result() == "2026-01-01T00:00:00Z"
        assert writer.submit(lambda db: next_received_at(db, 2)).result() is None
    finally:
        writer.close()


def _deliveries(count: int, start: int = 0) -> list[Delivery]:
    body = json.dumps(payload("push"))
    return [
        Delivery(
            guid=f"d{i}",
            event="push",
            payload=body,
            content_type="application/json",
            received_at="2026-01-01T00:00:00Z",
        )
        for i in range(start, start + count)
    ]


def _store(writer: Writer, count: int) -> None:
    batch = _deliveries(count)
    writer.submit(lambda db: insert_batch(db, batch)).result()


def test_a_batch_says_which_deliveries_are_new_and_stores_each_guid_once(tmp_path: Path) -> None:
    with stores.Handle(tmp_path / "pulsehook.db") as db:
        assert db.transact(lambda d: insert_batch(d, _deliveries(2))) == [True, True]
        # d1 was stored before; d2 and d3 are new; d2 comes twice in this batch.
        again = [*_deliveries(3, start=1), *_deliveries(1, start=2)]
        assert db.transact(lambda d: insert_batch(d, again)) == [False, True, True, False]
        # More than one statement's worth of rows.
        many = _deliveries(300, start=10)
        assert all(db.transact(lambda d: insert_batch(d, many)))
        rows = db.transact(
            lambda d: list(
                d.query(
                    "SELECT d.guid, p.payload FROM deliveries d"
                    " JOIN delivery_payloads p ON p.delivery_id = d.id ORDER BY d.id"
                )
            )
        )
    assert [r["guid"] for r in rows] == [f"d{i}" for i in (0, 1, 2, 3, *range(10, 310))]
    body = json.loads(decode_payload(bytes(rows[-1]["payload"])))
    assert body == payload("push")


def test_the_lanes_take_turns_while_both_have_work(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "w.db")
    try:
        gate, started = threading.Event(), threading.Event()
        order: list[str] = []

        def hold(db: Tx) -> bool:
            started.set()
            return gate.wait(10)

        def note(name: str) -> Callable[[Tx], None]:
            return lambda db: order.append(name)

        blocker = writer.submit(hold, NORMAL)
        assert started.wait(10)  # the writer is busy: what follows queues up
        futures = [writer.submit(note(f"u{i}"), URGENT) for i in range(3)]
        futures += [writer.submit(note(f"n{i}"), NORMAL) for i in range(5)]
        gate.set()
        blocker.result(timeout=10)
        for future in futures:
            future.result(timeout=10)
        # Receiving first, then one of the others, turn about; the rest once alone.
        assert order == ["u0", "n0", "u1", "n1", "u2", "n2", "n3", "n4"]
    finally:
        writer.close()


def test_a_chunk_stops_at_its_time_budget(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "w.db")
    try:
        _store(writer, 5)
        last, count, _ = writer.submit(
            lambda db: process_chunk(
                db, after_id=0, now="2026-01-01T00:00:01Z", statuses=("pending",), budget=0.0
            )
        ).result()
        assert (last, count) == (1, 1)  # one delivery, then the writer's turn is over
        last, count, _ = writer.submit(
            lambda db: process_chunk(
                db, after_id=last, now="2026-01-01T00:00:01Z", statuses=("pending",)
            )
        ).result()
        assert (last, count) == (5, 4)
    finally:
        writer.close()


def test_processing_keeps_up_with_a_stream_that_never_pauses(tmp_path: Path) -> None:
    """Deliveries keep arriving in the urgent lane throughout: processing does not
    wait for a pause, so when the stream ends almost nothing is left waiting."""
    writer = SqliteWriter(tmp_path / "w.db")
    _store(writer, 300)  # a backlog to start with
    worker = Worker(writer, FrozenClock(RECEIVED), chunk_seconds=0.002)
    stream_length = 2000

    async def go() -> tuple[int, int]:
        sent = 0

        async def stream() -> None:
            nonlocal sent
            while sent < stream_length:
                batch = _deliveries(1, start=1000 + sent)
                sent += 1
                await writer.run(partial(insert_batch, batch=batch), URGENT)

        draining = asyncio.create_task(worker.drain())
        await asyncio.gather(*(stream() for _ in range(4)))
        waiting = await writer.run(
            lambda db: db.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'")
        )
        left = int(waiting.fetchone()[0])
        seen = await asyncio.wait_for(draining, timeout=60)
        return left, seen

    try:
        left, seen = asyncio.run(go())
    finally:
        writer.close()
    assert seen == 300 + stream_length
    # Waiting for quiet, all 2,000 would still wait; taking turns, a handful do.
    assert left < 100, left


def test_a_chunks_deliveries_are_marked_processed_together(tmp_path: Path) -> None:
    from pulsehook.store.deliveries import mark_processed

    writer = SqliteWriter(tmp_path / "w.db")
    try:
        _store(writer, 3)
        batch = _deliveries(600, start=10)
        writer.submit(lambda db: insert_batch(db, batch)).result()
        writer.submit(
            lambda db: process_chunk(
                db, after_id=0, now="2026-01-01T00:00:01Z", statuses=("pending",), limit=3
            )
        ).result()
        writer.submit(lambda db: mark_processed(db, list(range(4, 604)), at="t")).result()
        rows = writer.submit(
            lambda db: db.execute(
                "SELECT status, count(*), max(attempts) FROM deliveries GROUP BY status"
            ).fetchall()
        ).result()
    finally:
        writer.close()
    # Past SQLite's variable limit too: every one marked, each once.
    assert [tuple(r) for r in rows] == [("processed", 603, 1)]


def test_processing_that_the_store_refused_is_tried_again_without_a_wake_up(
    tmp_path: Path,
) -> None:
    """A full disk fails intake too, so no new delivery comes to wake the worker:
    it must try again by itself once space frees."""
    writer = SqliteWriter(tmp_path / "w.db")
    runs = []
    for n in range(200):  # new runs: processing them needs new pages
        run = payload("workflow_run.completed")
        run["workflow_run"]["id"] = n
        runs.append(
            Delivery(f"r{n}", "workflow_run", json.dumps(run), "json", "2026-01-01T00:00:00Z")
        )
    writer.submit(lambda db: insert_batch(db, runs)).result()

    def fill(db: Any) -> None:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")

    def pending(db: Any) -> int:
        return int(
            db.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchone()[0]
        )

    async def go() -> tuple[int, int, int]:
        writer.submit(fill).result(timeout=10)
        worker = Worker(writer, FrozenClock(RECEIVED))
        running = asyncio.create_task(worker.run())
        try:
            # The first pass fails: nothing was processed, readiness says why.
            for _ in range(200):
                if writer.failing is not None:
                    break
                await asyncio.sleep(0.01)
            before = await writer.run(pending)
            await writer.run(lambda db: db.execute("PRAGMA max_page_count = 1073741823"))
            # No wake(): the worker's own retry (after RETRY_FIRST) processes the backlog.
            for _ in range(500):
                if await writer.run(pending) == 0:
                    break
                await asyncio.sleep(0.01)
            return before, await writer.run(pending), int(writer.failing is None)
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running

    try:
        before, after, recovered = asyncio.run(go())
    finally:
        writer.close()
    assert before > 0 and after == 0 and recovered == 1
