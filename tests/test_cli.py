"""The command line, run in-process with click's runner against a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from pulsehook.cli import main
from pulsehook.store.db import open_database, transaction, wrap
from pulsehook.store.deliveries import Delivery, insert_batch

from .conftest import payload


def test_replay_rebuilds_derived_state(tmp_path: Path) -> None:
    data = tmp_path / "data"
    db = wrap(open_database(data / "pulsehook.db"))
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
    transaction(db, lambda d: insert_batch(d, items))
    db.conn.close()
    result = CliRunner().invoke(main, ["replay", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "replayed 3 of 3 deliveries" in result.output
    assert "processed 2" in result.output and "ignored 1" in result.output
    with sqlite3.connect(data / "pulsehook.db") as conn:
        assert conn.execute("SELECT count(*) FROM builds").fetchone()[0] == 1
        # Replaying again gives the same state, not duplicates.
    again = CliRunner().invoke(main, ["replay", "--data-dir", str(data)])
    assert again.exit_code == 0
    with sqlite3.connect(data / "pulsehook.db") as conn:
        assert conn.execute("SELECT count(*) FROM activity").fetchone()[0] == 1


def test_replay_without_database_fails_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["replay", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert f"no pulsehook database at {tmp_path / 'none' / 'pulsehook.db'}" in result.output
    assert not (tmp_path / "none").exists()


def test_serve_refuses_bad_settings(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path), "--log-level", "loud"])
    assert result.exit_code == 2
    assert "loud" in result.output
