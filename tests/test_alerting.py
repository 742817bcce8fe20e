"""Alerting end to end: signed GitHub payloads in, Slack/email stand-ins out, over loopback."""

from __future__ import annotations

import email
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pulsehook.app import create_app
from pulsehook.clock import SystemClock
from pulsehook.rules.load import load_rules
from pulsehook.settings import Settings

from . import stores
from .builders import codecov_status as coverage
from .builders import critical_alert
from .builders import workflow_run as failed_run
from .conftest import API_TOKEN, AUTH, SECRET, deliver, drained, free_port, live, payload, wait_for
from .standins import Mailbox, Receiver, receiver, smtp_server

SEED_RULES = Path(__file__).parent.parent / "rules"


@dataclass
class Env:
    client: httpx.Client
    slack: Receiver
    mailbox: Mailbox
    settings: Settings

    def settle(self) -> None:
        """Wait (bounded) until every delivery is processed and no notice is pending."""
        wait_for(lambda: drained(self.client))
        wait_for(
            lambda: (
                not self.client.get("/api/v1/outbox", params={"status": "pending"}).json()[
                    "notices"
                ]
            )
        )


class OffsetClock:
    """The system clock moved on: a restart some time later."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return SystemClock().now() + self.offset


def make_settings(tmp_path: Path, **extra: Any) -> Settings:
    rules = tmp_path / "rules"
    if not rules.exists():
        shutil.copytree(SEED_RULES, rules)
    options: dict[str, Any] = {"flap_interval": "0s", "retry_base_seconds": 0.05} | extra
    return Settings(
        data_dir=tmp_path / "data",
        rules_dir=rules,
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        **options,
    )


def rule_env(slack: Receiver, smtp_port: int, hook: str = "main") -> dict[str, str]:
    return {
        "SLACK_WEBHOOK_URL": f"{slack.url}/hook/{hook}",
        "PULSEHOOK_SMTP_HOST": "127.0.0.1",
        "PULSEHOOK_SMTP_PORT": str(smtp_port),
        "PULSEHOOK_SMTP_FROM": "pulsehook@example.org",
        "PULSEHOOK_SMTP_TO": "sre@example.org, security@example.org",
    }


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with receiver() as slack, smtp_server() as (mailbox, port):
        settings = make_settings(tmp_path)
        rules = load_rules(settings.rules_dir, rule_env(slack, port))
        with (
            live(create_app(settings, rules=rules)) as srv,
            httpx.Client(base_url=srv.url, headers=AUTH, timeout=10) as client,
        ):
            yield Env(client, slack, mailbox, settings)


def test_seed_rules_fire_on_exactly_the_right_payloads(env: Env) -> None:
    # Quiet payloads first: a green run, a moderate alert, a small coverage change.
    deliver(env.client, "workflow_run", failed_run(900, "success", "2026-01-01T09:00:00Z"))
    deliver(env.client, "dependabot_alert", payload("dependabot_alert.created"))
    deliver(env.client, "status", coverage("90.00% (target 80.00%)", "2026-01-01T09:00:00Z"))
    deliver(env.client, "status", coverage("89.00% (-1.00%) compared to a", "2026-01-01T09:10:00Z"))
    env.settle()
    assert env.slack.delivered("main") == []

    deliver(env.client, "workflow_run", failed_run(), guid="red-1")
    env.settle()
    (red,) = env.slack.delivered("main")
    assert "FIRING" in red["text"] and "build_failure" in red["text"]
    assert "actions/runs" in red["text"]  # a link to the run

    # A redelivery of the same webhook never notifies twice.
    assert deliver(env.client, "workflow_run", failed_run(), guid="red-1").status_code == 200
    # Another red run on main while firing: no repeat configured, no second notice.
    deliver(env.client, "workflow_run", failed_run(1002, updated="2026-01-01T10:05:00Z"))
    env.settle()
    assert len(env.slack.delivered("main")) == 1

    deliver(env.client, "workflow_run", failed_run(1003, "success", "2026-01-01T11:00:00Z"))
    env.settle()
    resolved = env.slack.delivered("main")[-1]
    assert len(env.slack.delivered("main")) == 2
    assert "RESOLVED" in resolved["text"]

    deliver(env.client, "dependabot_alert", critical_alert())
    env.settle()
    vuln = env.slack.delivered("main")[-1]
    assert "critical_vulnerability" in vuln["text"]
    wait_for(lambda: len(env.mailbox.messages) == 1)
    (envelope,) = env.mailbox.messages
    assert sorted(envelope.rcpt_tos) == ["security@example.org", "sre@example.org"]
    mail = email.message_from_bytes(envelope.content)  # type: ignore[arg-type]
    assert "critical_vulnerability" in mail["Subject"]
    assert "FIRING" in mail["Subject"]

    # A coverage drop of more than 5 points goes to the daily digest, not at once.
    deliver(env.client, "status", coverage("82.00% (-7.00%) compared to b", "2026-01-01T12:00:00Z"))
    env.settle()
    assert len(env.slack.delivered("main")) == 3
    with stores.connect(env.settings.db_path) as conn:
        entries = conn.execute("SELECT rule, state FROM digest_entries").fetchall()
    assert entries == [("coverage_drop", "firing")]

    alerts = env.client.get("/api/v1/alerts").json()["alerts"]
    by_rule = {a["rule"]: a for a in alerts if a["state"] == "firing"}
    assert set(by_rule) == {"critical_vulnerability", "coverage_drop"}
    sends = by_rule["critical_vulnerability"]["deliveries"]
    assert {(s["channel"], s["status"]) for s in sends} == {("slack", "sent"), ("email", "sent")}
    rules = env.client.get("/api/v1/rules").json()
    assert {r["name"]: r["fired"] for r in rules["rules"]}["build_failure"] == 1
    assert "hook/main" not in str(rules)  # the webhook URL is a secret


def test_retries_until_delivered_once(env: Env) -> None:
    env.slack.script("main", 500, 500, 500)
    deliver(env.client, "workflow_run", failed_run())
    env.settle()
    assert env.slack.attempts("main") == 4
    assert len(env.slack.delivered("main")) == 1
    (notice,) = env.client.get("/api/v1/outbox").json()["notices"]
    assert notice["status"] == "sent" and notice["attempts"] == 4


def test_rate_limited_then_delivered(env: Env) -> None:
    env.slack.script("main", 429)
    deliver(env.client, "workflow_run", failed_run())
    env.settle()
    assert env.slack.attempts("main") == 2 and len(env.slack.delivered("main")) == 1


def test_dead_webhook_is_parked_with_the_error(tmp_path: Path) -> None:
    with receiver() as slack, smtp_server() as (_, port):
        slack.script("gone", 404)
        settings = make_settings(tmp_path)
        rules = load_rules(settings.rules_dir, rule_env(slack, port, hook="gone"))
        with (
            live(create_app(settings, rules=rules)) as srv,
            httpx.Client(base_url=srv.url, headers=AUTH) as client,
        ):
            deliver(client, "workflow_run", failed_run())
            wait_for(
                lambda: bool(
                    client.get("/api/v1/outbox", params={"status": "parked"}).json()["notices"]
                )
            )
            (parked,) = client.get("/api/v1/outbox", params={"status": "parked"}).json()["notices"]
            assert parked["last_status"] == 404
            assert "permanent" in parked["last_error"]
            assert "hook/gone" not in parked["last_error"]
            assert slack.attempts("gone") == 1


def test_unconfigured_channel_parks_with_the_reason(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with (
        live(create_app(settings, rules=load_rules(settings.rules_dir, {}))) as srv,
        httpx.Client(base_url=srv.url, headers=AUTH) as client,
    ):
        deliver(client, "workflow_run", failed_run())
        wait_for(lambda: drained(client))
        (parked,) = client.get("/api/v1/outbox", params={"status": "parked"}).json()["notices"]
        assert "SLACK_WEBHOOK_URL" in parked["last_error"]


def test_pending_retry_survives_a_restart_and_is_sent_once(tmp_path: Path) -> None:
    with receiver() as slack, smtp_server() as (_, port):
        slack.script("main", 500)
        settings = make_settings(tmp_path, retry_base_seconds=60.0)
        rules = load_rules(settings.rules_dir, rule_env(slack, port))
        with (
            live(create_app(settings, rules=rules)) as srv,
            httpx.Client(base_url=srv.url, headers=AUTH) as client,
        ):
            deliver(client, "workflow_run", failed_run())
            wait_for(lambda: slack.attempts("main") == 1)
            wait_for(lambda: client.get("/api/v1/outbox").json()["notices"][0]["attempts"] == 1)
        assert slack.delivered("main") == []
        # Started again five minutes later: the retry is due and goes out, once.
        later = OffsetClock(timedelta(minutes=5))
        with (
            live(create_app(settings, rules=rules, clock=later)) as srv,
            httpx.Client(base_url=srv.url, headers=AUTH) as client,
        ):
            wait_for(lambda: len(slack.delivered("main")) == 1)
            wait_for(lambda: client.get("/api/v1/outbox").json()["notices"][0]["status"] == "sent")
        assert slack.attempts("main") == 2


def test_invalid_rules_refuse_to_start(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    (settings.rules_dir / "bad.toml").write_text(
        '[[rule]]\nname = "x"\ncondition = "build.colour == 1"\nchannels = ["slack"]\n'
    )
    from pulsehook.rules.load import RulesInvalid

    with pytest.raises(RulesInvalid, match=r"unknown field build\.colour"):
        create_app(settings)


def test_silences_through_the_api(env: Env) -> None:
    created = env.client.post(
        "/api/v1/silences", json={"rule": "build_failure", "duration": "1h", "comment": "deploy"}
    )
    assert created.status_code == 201
    deliver(env.client, "workflow_run", failed_run())
    env.settle()
    assert env.slack.delivered("main") == []
    (alert,) = env.client.get("/api/v1/alerts").json()["alerts"]
    assert alert["silenced"] is True and alert["state"] == "firing"
    listed = env.client.get("/api/v1/silences").json()["silences"]
    assert listed[0]["active"] is True and listed[0]["comment"] == "deploy"
    silence_id = created.json()["id"]
    assert env.client.delete(f"/api/v1/silences/{silence_id}").status_code == 200
    assert env.client.delete(f"/api/v1/silences/{silence_id}").status_code == 404
    bad = env.client.post("/api/v1/silences", json={"duration": "1h"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid"


def test_the_shipped_rules_alert_on_a_red_master(env: Env) -> None:
    """GitHub's own example runs on ``master``: its failure is told at once."""
    red = payload("workflow_run.completed")
    assert red["workflow_run"]["head_branch"] == red["repository"]["default_branch"] == "master"
    red["workflow_run"]["conclusion"] = "failure"
    deliver(env.client, "workflow_run", red)
    wait_for(lambda: len(env.slack.delivered("main")) == 1)
    assert "build_failure" in env.slack.delivered("main")[0]["text"]


def test_a_silence_that_ends_early_tells_what_it_held_at_once(env: Env) -> None:
    created = env.client.post("/api/v1/silences", json={"rule": "build_failure", "duration": "1h"})
    deliver(env.client, "workflow_run", failed_run())
    env.settle()
    assert env.slack.delivered("main") == []
    env.client.delete(f"/api/v1/silences/{created.json()['id']}")
    # Not at the next matching delivery, nor a scheduler's nap later: now.
    wait_for(lambda: len(env.slack.delivered("main")) == 1, timeout=5)
    assert "FIRING" in env.slack.delivered("main")[0]["text"]


UNGROUPED_UNPACED = """
[channels.slack]
webhook_url = "${SLACK_WEBHOOK_URL}"
rate = "off"

[[rule]]
name = "build_failure"
condition = "build.status == 'failure' and build.default_branch"
channels = ["slack"]
group = false
"""


def test_notices_a_killed_process_was_sending_go_out_at_the_next_start(tmp_path: Path) -> None:
    """Killed while its sends hang: the next process sends them within seconds,
    not after the two-minute lease."""
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(64)  # accepts connections, never answers
    port = free_port()
    # One notice per alert, four sends at once (a paced channel sends one at a time).
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "one_each.toml").write_text(UNGROUPED_UNPACED)
    settings = make_settings(tmp_path)
    env = {
        **os.environ,
        "PULSEHOOK_WEBHOOK_SECRET": SECRET,
        "PULSEHOOK_DATA_DIR": str(settings.data_dir),
        "PULSEHOOK_RULES_DIR": str(settings.rules_dir),
        "PULSEHOOK_PORT": str(port),
        "PULSEHOOK_LOG_LEVEL": "warning",
        "SLACK_WEBHOOK_URL": f"http://127.0.0.1:{hanging.getsockname()[1]}/hook/main",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulsehook", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=5) as client:
            wait_for(lambda: up(client), timeout=20)
            for n in range(6):  # six red repositories: six notices, four send slots
                red = failed_run(2000 + n)
                red["repository"].update(id=700 + n, full_name=f"octo-org/r{n}", name=f"r{n}")
                deliver(client, "workflow_run", red)
            wait_for(lambda: leased(settings) == 4)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        hanging.close()
    with receiver() as slack, smtp_server() as (_, smtp_port):
        rules = load_rules(settings.rules_dir, rule_env(slack, smtp_port))
        with live(create_app(settings, rules=rules)):
            wait_for(lambda: len(slack.delivered("main")) == 6, timeout=10)
    with stores.connect(settings.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM outbox WHERE status = 'sent'").fetchone() == (6,)


def up(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def leased(settings: Settings) -> int:
    with stores.connect(settings.db_path) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM outbox WHERE leased_by IS NOT NULL AND status = 'pending'"
        ).fetchone()
    return int(count)


def test_a_held_notice_goes_out_at_the_end_of_its_hold(tmp_path: Path) -> None:
    """A hold earlier than the scheduler's next wake-up re-arms it: the notice
    goes out when the flap interval ends, not at the scheduler's next nap."""
    with receiver() as slack, smtp_server() as (_, port):
        # Long enough for Slack's pace (one a second) between the first two notices.
        settings = make_settings(tmp_path, flap_interval="4s")
        rules = load_rules(settings.rules_dir, rule_env(slack, port))
        with (
            live(create_app(settings, rules=rules)) as srv,
            httpx.Client(base_url=srv.url, headers=AUTH) as client,
        ):
            deliver(client, "workflow_run", failed_run(1, "failure", "2026-01-01T10:00:00Z"))
            deliver(client, "workflow_run", failed_run(2, "success", "2026-01-01T10:01:00Z"))
            wait_for(lambda: len(slack.delivered("main")) == 2)  # red, green: both at once
            deliver(client, "workflow_run", failed_run(3, "failure", "2026-01-01T10:02:00Z"))
            wait_for(lambda: drained(client))
            (alert,) = client.get("/api/v1/alerts").json()["alerts"]
            assert alert["held_until"] is not None  # a third change: flapping, held
            wait_for(lambda: len(slack.delivered("main")) == 3, timeout=12)
            assert "FIRING" in slack.delivered("main")[-1]["text"]
