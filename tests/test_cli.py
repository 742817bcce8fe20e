"""The command line, run in-process with click's runner against a real SQLite file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest import MonkeyPatch

from pulsehook.cli import main
from pulsehook.facts import Build
from pulsehook.github.normalize import normalize
from pulsehook.ingest import process_chunk
from pulsehook.rules.model import Expectation
from pulsehook.store.db import open_database, transaction, wrap
from pulsehook.store.deliveries import Delivery, insert_batch
from pulsehook.summary.items import sync_expectations

from . import stores
from .conftest import payload

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_replay_rebuilds_derived_state(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db = stores.Handle(data / "pulsehook.db")
    items = [
        Delivery(
            guid=f"g{i}",
            event=e,
            payload=json.dumps(payload(p)),
            content_type="application/json",
            received_at="2026-01-01T00:00:00Z",
        )
        for i, (e, p) in enumerate(
            [("push", "push"), ("workflow_run", "workflow_run.completed"), ("sponsorship", "ping")]
        )
    ]
    db.transact(lambda d: insert_batch(d, items))
    db.close()
    result = CliRunner().invoke(main, ["replay", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "replayed 3 of 3 deliveries" in result.output
    assert "processed 2" in result.output and "ignored 1" in result.output
    with stores.connect(data / "pulsehook.db") as conn:
        assert conn.execute("SELECT count(*) FROM builds").fetchone()[0] == 1
        # Replaying again gives the same state, not duplicates.
    again = CliRunner().invoke(main, ["replay", "--data-dir", str(data)])
    assert again.exit_code == 0
    with stores.connect(data / "pulsehook.db") as conn:
        assert conn.execute("SELECT count(*) FROM activity").fetchone()[0] == 1


@pytest.mark.sqlite_only("a PostgreSQL store is the server's: there is no file to look for")
def test_replay_without_database_fails_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["replay", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert f"no pulsehook database at {tmp_path / 'none' / 'pulsehook.db'}" in result.output
    assert not (tmp_path / "none").exists()


def test_serve_refuses_bad_settings(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path), "--log-level", "loud"])
    assert result.exit_code == 2
    assert "loud" in result.output


@pytest.mark.sqlite_only("it makes two stores and moves one into place as a file")
def test_replay_keeps_the_configured_timezone(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    """A declared item's next due time is cron maths in the service's timezone: replay
    rebuilds it in that timezone, as processing did, not in UTC."""
    data = tmp_path / "data"
    run = payload("workflow_run.completed")
    [build] = [f for f in normalize("workflow_run", run) if isinstance(f, Build)]
    owner, _, repo = build.repo.partition("/")
    nightly = Expectation(
        owner=owner, repo=repo, workflow=build.workflow, path=None, schedule="0 9 * * *"
    )
    when = "2026-01-01T00:00:00Z"

    def due_at(tz: str) -> str:
        """What processing the run leaves as the item's due time, in ``tz``."""
        db = wrap(open_database(tmp_path / f"{tz.replace('/', '-')}.db"))
        transaction(db, partial(sync_expectations, expectations=(nightly,), now=NOW, tz=tz))
        stored = Delivery("r", "workflow_run", json.dumps(run), "json", when)
        transaction(db, partial(insert_batch, batch=[stored]))
        transaction(db, partial(process_chunk, after_id=0, now=when, statuses=("pending",), tz=tz))
        [row] = db.execute("SELECT due_at FROM summary_items WHERE declared = 1").fetchall()
        db.conn.close()
        return str(row[0])

    tokyo, utc = due_at("Asia/Tokyo"), due_at("UTC")
    assert tokyo != utc  # the timezone matters to this item
    data.mkdir()
    (tmp_path / "Asia-Tokyo.db").rename(data / "pulsehook.db")
    monkeypatch.setenv("PULSEHOOK_TIMEZONE", "Asia/Tokyo")
    result = CliRunner().invoke(main, ["replay", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    with stores.connect(data / "pulsehook.db") as conn:
        [(replayed,)] = conn.execute("SELECT due_at FROM summary_items WHERE declared = 1")
    assert replayed == tokyo
