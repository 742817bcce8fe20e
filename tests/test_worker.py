"""How processing shares the writer with receiving: it gives way, up to a lag."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pulsehook.clock import FrozenClock
from pulsehook.ingest import BUSY_CHUNK, Worker, processing_lag
from pulsehook.store.db import Writer
from pulsehook.store.deliveries import Delivery, insert_batch, next_received_at

from .conftest import payload

RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)
CHUNKS = 6
DEFER = 0.5  # seconds processing gives way per chunk while receiving is busy


def test_lag_is_how_long_the_next_waiting_delivery_has_waited() -> None:
    assert processing_lag(None, RECEIVED) == 0.0
    assert processing_lag("2026-01-01T00:00:00Z", RECEIVED + timedelta(seconds=42)) == 42.0
    # A clock behind the receipt time (another process's clock) is no lag.
    assert processing_lag("2026-01-01T00:00:10Z", RECEIVED) == 0.0


def test_next_received_at_is_the_first_delivery_past_the_cursor(tmp_path: Path) -> None:
    writer = Writer(tmp_path / "w.db")
    try:
        _store(writer, 2)
        assert writer.submit(lambda db: next_received_at(db, 0)).result() == "2026-01-01T00:00:00Z"
        assert writer.submit(lambda db: next_received_at(db, 2)).result() is None
    finally:
        writer.close()


def _store(writer: Writer, count: int) -> None:
    body = json.dumps(payload("push"))
    batch = [
        Delivery(
            guid=f"d{i}",
            event="push",
            payload=body,
            content_type="application/json",
            received_at="2026-01-01T00:00:00Z",
        )
        for i in range(count)
    ]
    writer.submit(lambda db: insert_batch(db, batch)).result()


def _drain_while_busy(tmp_path: Path, *, behind: timedelta) -> tuple[float, Writer]:
    """Process CHUNKS busy-sized chunks with receiving busy throughout; seconds taken."""
    writer = Writer(tmp_path / "w.db")
    _store(writer, CHUNKS * BUSY_CHUNK)
    clock = FrozenClock(RECEIVED + behind)
    worker = Worker(writer, clock, busy=lambda: True, max_defer=DEFER, lag_limit=30.0)
    start = time.monotonic()
    seen = asyncio.run(asyncio.wait_for(worker.drain(), timeout=60))
    assert seen == CHUNKS * BUSY_CHUNK
    return time.monotonic() - start, writer


def test_processing_gives_way_to_busy_receiving_within_the_lag_limit(tmp_path: Path) -> None:
    took, writer = _drain_while_busy(tmp_path, behind=timedelta(seconds=5))
    writer.close()
    # Every chunk waited its turn (at most DEFER seconds each) while senders waited.
    assert took >= CHUNKS * DEFER


def test_processing_stops_giving_way_past_the_lag_limit(tmp_path: Path) -> None:
    took, writer = _drain_while_busy(tmp_path, behind=timedelta(minutes=10))
    writer.close()
    # Only the first chunk waits (the lag is learned from it) and the empty pass
    # that finds nothing left; the chunks in between go at once.
    assert took < CHUNKS * DEFER
