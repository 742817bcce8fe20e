"""Notices are leased when their send starts, and a dead sender's leases are taken
back by the next process at once — not after the lease runs out."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pulsehook.alerts.dispatch import Dispatcher
from pulsehook.clock import FrozenClock, iso
from pulsehook.instance import Instance
from pulsehook.notify.base import Message
from pulsehook.rules.model import RuleSet
from pulsehook.store import outbox
from pulsehook.store.db import SqliteWriter, Writer

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)

# A sender in its own process: it claims what a dispatcher with four send slots
# claims, says so, then hangs in the middle of "sending" until it is killed.
SENDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pulsehook.store import outbox
    from pulsehook.instance import Instance
    from pulsehook.store.db import SqliteWriter, Writer

    data = Path(sys.argv[1])
    instance = Instance(data)
    writer = SqliteWriter(data / "pulsehook.db")
    rows = writer.submit(
        lambda db: outbox.claim(db, sys.argv[2], sys.argv[3], 4, owner=instance.id)
    ).result()
    print(len(rows.taken), flush=True)
    sys.stdin.read()
    """
)


def _queue(writer: Writer, count: int) -> None:
    def job(db: object) -> None:
        for n in range(count):
            outbox.enqueue(
                db,  # type: ignore[arg-type]
                channel="slack",
                kind="firing",
                message=Message(title=f"n{n}", text="t", markdown="m", url=None),
                alert_key=f"k{n}",
                now=iso(NOW),
            )

    writer.submit(job).result()


@contextmanager
def sender(data: Path) -> Iterator[subprocess.Popen[str]]:
    lease = iso(NOW + timedelta(minutes=2))
    proc = subprocess.Popen(
        [sys.executable, "-c", SENDER, str(data), iso(NOW), lease],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "4"  # four slots: four leases, no more
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _due(writer: Writer) -> int:
    claimed = writer.submit(lambda db: outbox.claim(db, iso(NOW), iso(NOW), 100, owner="probe"))
    return len(claimed.result().taken)


def test_a_killed_senders_leases_are_taken_back_at_the_next_start(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "pulsehook.db")
    _queue(writer, 6)
    with sender(tmp_path) as proc:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    instance = Instance(tmp_path)
    try:
        dispatcher = Dispatcher(writer, RuleSet(), FrozenClock(NOW), instance=instance)
        assert asyncio.run(dispatcher.recover()) == 4
        assert _due(writer) == 6  # the four it held are due now, with the two it left
    finally:
        instance.close()
        writer.close()


def test_a_live_senders_leases_are_left_alone(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "pulsehook.db")
    _queue(writer, 6)
    instance = Instance(tmp_path)
    try:
        with sender(tmp_path):
            dispatcher = Dispatcher(writer, RuleSet(), FrozenClock(NOW), instance=instance)
            assert asyncio.run(dispatcher.recover()) == 0
            assert _due(writer) == 2  # only what nobody holds
    finally:
        instance.close()
        writer.close()


def test_an_instance_is_alive_while_its_process_holds_the_lock(tmp_path: Path) -> None:
    one, two = Instance(tmp_path), Instance(tmp_path)
    assert one.alive(two.id) and two.alive(one.id) and one.alive(one.id)
    two.close()
    assert not one.alive(two.id)
    assert not one.alive("../../etc/passwd")  # a lease names no path
    one.close()
