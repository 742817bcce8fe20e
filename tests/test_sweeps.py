"""The daily rescore as a sweep: short writer turns, intake between them, resumed
after a restart."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from pulsehook.clock import FrozenClock, iso
from pulsehook.rules.model import RuleSet
from pulsehook.schedule.runner import RESCORE, Scheduler
from pulsehook.store import sweeps
from pulsehook.store.db import URGENT, SqliteReaders, SqliteWriter, Tx, Writer

REPOS = 40


def _repositories(writer: Writer, count: int) -> None:
    def fill(db: Any) -> None:
        db.conn.executemany(
            "INSERT INTO repositories (id, full_name, owner, first_seen_at, last_seen_at)"
            " VALUES (?, ?, 'o', ?, ?)",
            [
                (n, f"o/r{n}", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")
                for n in range(1, count + 1)
            ],
        )

    writer.submit(fill).result(timeout=10)


def _scored(writer: Writer) -> int:
    return int(
        writer.submit(lambda db: db.execute("SELECT count(*) FROM health").fetchone()[0]).result()
    )


def _scheduler(writer: Writer, clock: FrozenClock, sweep_seconds: float) -> Scheduler:
    return Scheduler(
        writer,
        RuleSet(),
        clock,
        timezone="UTC",
        on_notices=lambda: None,
        sweep_seconds=sweep_seconds,
    )


def test_the_rescore_runs_in_chunks_and_intake_takes_turns_between_them(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "w.db")
    clock = FrozenClock()
    try:
        _repositories(writer, REPOS)
        # A zero budget: one repository per writer turn, the smallest chunk there is.
        scheduler = _scheduler(writer, clock, 0.0)
        order: list[str] = []

        async def go() -> None:
            await scheduler.tick()  # starts the day's rescore and does its first chunk
            assert _scored(writer) == 1
            assert await scheduler.seconds_to_next() == 0.0  # the next chunk comes at once
            passes = 1
            while await scheduler.seconds_to_next() == 0.0:
                # A delivery's commit arriving meanwhile runs between two chunks.
                gate = threading.Event()

                def intake(db: Tx, gate: threading.Event = gate) -> None:
                    order.append("intake")
                    gate.set()

                writer.submit(intake, URGENT)
                await scheduler.rescore_chunk()
                order.append("chunk")
                assert gate.is_set()
                passes += 1
            assert passes == REPOS + 1  # one per repository, and one that found the end

        asyncio.run(go())
        assert _scored(writer) == REPOS
        assert order[:4] == ["intake", "chunk", "intake", "chunk"]
        finished = writer.submit(lambda db: sweeps.position(db, RESCORE)).result()
        assert finished is None  # done for today
        # The next day's pass starts a new one.
        clock.advance(timedelta(days=1, seconds=1))
        asyncio.run(scheduler.tick())
        assert writer.submit(lambda db: sweeps.position(db, RESCORE)).result() is not None
    finally:
        writer.close()


def test_a_rescore_cut_short_by_a_restart_resumes_where_it_was(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "w.db")
    clock = FrozenClock()
    try:
        _repositories(writer, REPOS)
        asyncio.run(_scheduler(writer, clock, 0.0).tick())  # one chunk, then "the process dies"
        assert writer.submit(lambda db: sweeps.position(db, RESCORE)).result() == 1

        # A new process, the same day: no new sweep, the old one goes on from repository 2.
        clock.advance(timedelta(hours=1))
        later = _scheduler(writer, clock, 10.0)
        asyncio.run(later.tick())
        assert _scored(writer) == REPOS
        computed = writer.submit(
            lambda db: {r[0] for r in db.execute("SELECT computed_at FROM health")}
        ).result()
        first, rest = iso(clock.now() - timedelta(hours=1)), iso(clock.now())
        assert computed == {first, rest}  # repository 1 was not scored again
    finally:
        writer.close()


def test_a_summary_regeneration_takes_a_writer_turn_only_to_record_changes(
    tmp_path: Path,
) -> None:
    """Reading every item and rendering the files happen beside the writer: a
    regeneration that finds nothing new never takes a writer turn."""
    from pulsehook.alerts.engine import Policy
    from pulsehook.summary.service import Summarizer, Target

    writer = SqliteWriter(tmp_path / "w.db")
    readers = SqliteReaders(tmp_path / "w.db")
    clock = FrozenClock()
    try:
        _repositories(writer, 3)
        summarizer = Summarizer(
            writer,
            RuleSet(),
            clock,
            data_dir=tmp_path,
            target=Target(owner="o", repo="summary", tz="UTC"),
            policy=Policy(timezone="UTC"),
            on_notices=lambda: None,
            readers=readers,
        )
        asyncio.run(summarizer.regenerate())
        turns = list(writer.turns)
        generated = asyncio.run(summarizer.regenerate())
        assert writer.turns == turns  # nothing changed: no writer job at all
        assert (tmp_path / "summary.md").read_text() == generated.md
    finally:
        readers.close()
        writer.close()
