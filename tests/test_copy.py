"""``pulsehook copy --to postgresql://…``: a SQLite store moved into PostgreSQL, whole."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from pulsehook.app import create_app
from pulsehook.cli import main
from pulsehook.settings import Settings

from .builders import critical_alert, workflow_run
from .conftest import AUTH, deliver, drained, live, payload, wait_for
from .test_alerting import SEED_RULES


def _sqlite_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}


def _pg_counts(url: str, tables: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        for t in tables:
            row = conn.execute(f"SELECT count(*) FROM {t}").fetchone()
            counts[t] = int(row[0]) if row else 0
    return counts


def test_copy_moves_the_whole_store_and_the_service_goes_on_from_it(
    settings: Settings, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULSEHOOK_DATABASE_URL", raising=False)  # this store: SQLite
    settings = settings.model_copy(update={"database_url": None})
    shutil.copytree(SEED_RULES, settings.rules_dir)
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        assert deliver(c, "workflow_run", workflow_run(), guid="run-1").status_code == 202
        assert deliver(c, "dependabot_alert", critical_alert(), guid="alert-1").status_code == 202
        assert deliver(c, "push", payload("push"), guid="push-1").status_code == 202
        wait_for(lambda: drained(c))
        silence = {"rule": "build_*", "ends_at": "2999-01-01T00:00:00Z", "comment": "moving"}
        assert c.post("/api/v1/silences", json=silence).status_code == 201
        alerts_before = c.get("/api/v1/alerts").json()["alerts"]
    assert alerts_before
    before = _sqlite_counts(settings.db_path)

    result = CliRunner().invoke(
        main, ["copy", "--to", postgres_url, "--data-dir", str(settings.data_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "deliveries" in result.output and "now set DATABASE_URL" in result.output
    assert _pg_counts(postgres_url, list(before)) == before

    # The service on the copy: the same alerts and silence; new rows get new ids.
    monkeypatch.setenv("PULSEHOOK_DATABASE_URL", postgres_url)
    moved = Settings(**{**settings.model_dump(), "database_url": postgres_url})
    with live(create_app(moved)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        assert c.get("/api/v1/alerts").json()["alerts"] == alerts_before
        assert [s["comment"] for s in c.get("/api/v1/silences").json()["silences"]] == ["moving"]
        # A redelivery of what was copied is known; a new delivery is stored after it.
        assert deliver(c, "push", payload("push"), guid="push-1").json()["status"] == "duplicate"
        assert deliver(c, "push", payload("push"), guid="push-2").status_code == 202
        wait_for(lambda: drained(c))
    with psycopg.connect(postgres_url) as conn:
        ids: dict[str, int] = dict(conn.execute("SELECT guid, id FROM deliveries").fetchall())
    assert ids["push-2"] > max(v for k, v in ids.items() if k != "push-2")


def test_copy_refuses_a_database_that_holds_a_store_and_writes_nothing(
    settings: Settings, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULSEHOOK_DATABASE_URL", raising=False)
    settings = settings.model_copy(update={"database_url": None})
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        assert deliver(c, "push", payload("push"), guid="push-1").status_code == 202
        wait_for(lambda: drained(c))
    args = ["copy", "--to", postgres_url, "--data-dir", str(settings.data_dir)]
    assert CliRunner().invoke(main, args).exit_code == 0
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2
    assert "already holds 1 row(s) in deliveries" in again.output
    assert _pg_counts(postgres_url, ["deliveries"]) == {"deliveries": 1}
    gone = CliRunner().invoke(
        main,
        [
            "copy",
            "--to",
            "postgresql://u:hunter2@127.0.0.1:1/x",
            "--data-dir",
            str(settings.data_dir),
        ],
    )
    assert gone.exit_code == 1 and "nothing copied" in gone.output
    assert "hunter2" not in gone.output  # the password is never shown
    wrong = CliRunner().invoke(main, ["copy", "--to", "mysql://x/y"])
    assert wrong.exit_code == 2 and "postgresql://" in wrong.output
