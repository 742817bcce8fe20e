"""Alerting commands: silences, digests sent now, notify test — against real stand-ins."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pulsehook.cli import main
from pulsehook.notify.base import Message
from pulsehook.store.outbox import enqueue

from . import stores
from .standins import receiver

SEED_RULES = Path(__file__).parent.parent / "rules"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(SEED_RULES, tmp_path / "rules")
    stores.create(tmp_path / "data" / "pulsehook.db")  # as the service leaves it
    monkeypatch.setenv("PULSEHOOK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PULSEHOOK_RULES_DIR", str(tmp_path / "rules"))
    return tmp_path


def test_silence_add_list_delete(workdir: Path) -> None:
    runner = CliRunner()
    added = runner.invoke(
        main, ["silence", "add", "--rule", "build_*", "--for", "2h", "--comment", "deploy"]
    )
    assert added.exit_code == 0, added.output
    assert "silence 1 added" in added.output
    recurring = runner.invoke(
        main, ["silence", "add", "--repo", "o/*", "--cron", "0 22 * * *", "--for", "8h"]
    )
    assert recurring.exit_code == 0, recurring.output
    listed = runner.invoke(main, ["silence", "list"])
    assert "rule=build_* repo=*" in listed.output and "[active]" in listed.output
    assert "cron=0 22 * * *" in listed.output
    assert runner.invoke(main, ["silence", "delete", "1"]).exit_code == 0
    missing = runner.invoke(main, ["silence", "delete", "1"])
    assert missing.exit_code == 1 and "no silence 1" in missing.output
    assert runner.invoke(main, ["silence", "add", "--for", "1h"]).exit_code == 2


def test_digest_send_now_sends_pending_entries(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with receiver() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{slack.url}/hook/main")
        db = stores.Handle(workdir / "data" / "pulsehook.db")
        db.transact(
            lambda d: d.execute(
                "INSERT INTO digest_entries (schedule, channel, rule, repo, alert_key,"
                " state, title, url, at) VALUES ('0 8 * * *', 'slack', 'coverage_drop',"
                " 'octo/repo', 'k', 'firing', 'coverage on main: 82.00% (-7.00)',"
                " 'https://codecov.io/x', '2026-01-01T00:00:00Z')"
            ),
        )
        db.close()
        result = CliRunner().invoke(main, ["digest", "send", "--now"])
        assert result.exit_code == 0, result.output
        assert "1 digest(s) queued" in result.output and ": sent" in result.output
        (body,) = slack.delivered("main")
        assert "`coverage_drop` (1)" in body["text"] and "*octo/repo*" in body["text"]
        assert "<https://codecov.io/x|coverage on main" in body["text"]
        again = CliRunner().invoke(main, ["digest", "send", "--now"])
        assert "0 digest(s) queued" in again.output  # nothing pending: nothing sent


def test_notify_test_reports_the_answer(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with receiver() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{slack.url}/hook/main")
        ok = CliRunner().invoke(main, ["notify", "test", "slack"])
        assert ok.exit_code == 0, ok.output
        assert "slack (slack): ok" in ok.output
        assert "pulsehook can reach channel" in slack.delivered("main")[0]["text"]
        monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{slack.url}/hook/gone")
        slack.script("gone", 404)
        failed = CliRunner().invoke(main, ["notify", "test", "slack"])
        assert failed.exit_code == 1
        assert "FAILED, HTTP 404" in failed.output
        assert "hook/gone" not in failed.output
    unconfigured = CliRunner().invoke(main, ["notify", "test", "email"])
    assert unconfigured.exit_code == 1 and "PULSEHOOK_SMTP_HOST" in unconfigured.output


def test_digest_entry_without_configured_channel_is_parked(workdir: Path) -> None:
    db = stores.Handle(workdir / "data" / "pulsehook.db")
    db.transact(
        lambda d: enqueue(
            d,
            channel="slack",
            kind="digest",
            message=Message(title="t", text="t", markdown="t"),
            alert_key=None,
            now="2026-01-01T00:00:00Z",
            parked_reason="channel 'slack' is not configured",
        ),
    )
    db.close()
    with stores.connect(workdir / "data" / "pulsehook.db") as conn:
        status, error, message = conn.execute(
            "SELECT status, last_error, message FROM outbox"
        ).fetchone()
    assert status == "parked" and "not configured" in error
    assert json.loads(message)["title"] == "t"
