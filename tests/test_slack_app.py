"""Slack app mode: with a bot token a channel posts through the Web API, keeps the
firing message's ts per alert, and the resolved notice replies in its thread and
edits it — against a loopback stand-in of Slack's Web API, through the engine and
the dispatcher on a real store."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pulsehook.alerts import engine
from pulsehook.alerts.dispatch import Dispatcher
from pulsehook.clock import FrozenClock
from pulsehook.facts import Build
from pulsehook.notify import slack
from pulsehook.notify.base import ChannelConfig, Message
from pulsehook.rules.evaluate import Evaluator
from pulsehook.rules.load import load_rules
from pulsehook.store import threads
from pulsehook.store.db import SqliteWriter

from .conftest import live

TOKEN = "xoxb-s3cr3t-b0t-t0ken"
NOW = datetime(2026, 1, 31, 8, tzinfo=UTC)


class SlackApi:
    """chat.postMessage and chat.update, as Slack answers them; every call recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.ts = itertools.count(1)
        self.fail: set[str] = set()
        self.limited = 0  # the next calls answer Slack's rate limit (429, Retry-After)

    async def handle(self, request: Request) -> Response:
        method = request.path_params["method"]
        body = await request.json()
        self.calls.append((method, body, request.headers.get("authorization", "")))
        if self.limited:
            self.limited -= 1
            limited = {"ok": False, "error": "ratelimited"}
            return JSONResponse(limited, status_code=429, headers={"Retry-After": "7"})
        if method in self.fail:
            return JSONResponse({"ok": False, "error": "channel_not_found"})
        ts = body.get("ts") or f"1769846400.{next(self.ts):06d}"
        return JSONResponse({"ok": True, "channel": "C0ALERTS", "ts": ts})


@pytest.fixture
def api() -> Iterator[tuple[SlackApi, str]]:
    stand_in = SlackApi()
    app = Starlette(routes=[Route("/api/{method}", stand_in.handle, methods=["POST"])])
    with live(app) as server:
        yield stand_in, f"{server.url}/api/"


def build(status: str) -> Build:
    return Build(
        repo="org/svc",
        repo_id=1,
        workflow="ci",
        branch="main",
        default_branch=True,
        status=status,
        event="push",
        run_id=7 if status == "failure" else 8,
        attempt=1,
        url="https://github.com/org/svc/actions/runs/7",
        started_at=None,
        completed_at="2026-01-31T08:00:00Z",
        actor="me",
        head_sha="abc",
        source="workflow_run",
        updated_at=None,
    )


def test_the_resolved_notice_replies_in_the_thread_and_edits_the_original(
    tmp_path: Path, api: tuple[SlackApi, str]
) -> None:
    stand_in, base_url = api
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "rules.toml").write_text(f"""
[[rule]]
name = "build_failure"
condition = "build.status == 'failure'"
channels = ["slack"]

[channels.slack]
bot_token = "${{SLACK_BOT_TOKEN}}"
channel = "${{PULSEHOOK_SLACK_CHANNEL}}"
base_url = "{base_url}"
""")
    # The bot token and channel from the environment, as a user sets them.
    env = {"SLACK_BOT_TOKEN": TOKEN, "PULSEHOOK_SLACK_CHANNEL": "#alerts"}
    rules = load_rules(rules_dir, env)
    assert rules.channels["slack"].options["bot_token"] == TOKEN
    clock = FrozenClock(NOW)
    writer = SqliteWriter(tmp_path / "pulsehook.db")
    dispatcher = Dispatcher(writer, rules, clock)

    def feed(fact: Build) -> None:
        now = clock.now()
        writer.submit(
            lambda db: engine.evaluate(
                db, rules, [fact], now=now, evaluator=Evaluator(), policy=engine.Policy()
            )
        ).result()

        async def pump() -> None:
            while await dispatcher.run_once():
                pass

        asyncio.run(pump())

    try:
        feed(build("failure"))
        ((method, first, auth),) = stand_in.calls
        assert method == "chat.postMessage" and auth == f"Bearer {TOKEN}"
        assert first["channel"] == "#alerts" and "thread_ts" not in first
        assert "*FIRING*" in first["blocks"][0]["text"]["text"]
        posted = writer.submit(
            lambda db: threads.find(db, "slack", "build_failure|org/svc|ci@main")
        )
        assert posted.result() == "C0ALERTS 1769846400.000001"

        clock.advance(timedelta(minutes=10))
        feed(build("success"))
        reply, edit = stand_in.calls[1:]
        assert reply[0] == "chat.postMessage"
        assert reply[1]["channel"] == "C0ALERTS" and reply[1]["thread_ts"] == "1769846400.000001"
        assert "*RESOLVED*" in reply[1]["blocks"][0]["text"]["text"]
        assert edit[0] == "chat.update"
        assert edit[1]["channel"] == "C0ALERTS" and edit[1]["ts"] == "1769846400.000001"
        assert "*RESOLVED*" in edit[1]["blocks"][0]["text"]["text"]
        # Told: nothing more follows the thread up.
        gone = writer.submit(lambda db: threads.find(db, "slack", "build_failure|org/svc|ci@main"))
        assert gone.result() is None
        rows = writer.submit(
            lambda db: list(db.query("SELECT status, response FROM outbox ORDER BY id"))
        ).result()
        assert [r["status"] for r in rows] == ["sent", "sent"]
        assert rows[1]["response"] == "replied, original edited"
        assert all(TOKEN not in str(r) for r in rows)
    finally:
        writer.close()


def test_an_api_refusal_is_permanent_and_scrubbed(api: tuple[SlackApi, str]) -> None:
    stand_in, base_url = api
    stand_in.fail.add("chat.postMessage")
    channel = ChannelConfig(
        "slack",
        "slack",
        {"bot_token": TOKEN, "channel": "#nowhere", "base_url": base_url},
        secret_keys=frozenset({"bot_token"}),
    )
    result = slack.send(channel, Message(title="t", text="t", markdown="m"))
    assert not result.ok and result.permanent
    assert result.error == "Slack API: channel_not_found" and result.posted is None


def test_a_failed_edit_keeps_the_reply_sent(api: tuple[SlackApi, str]) -> None:
    stand_in, base_url = api
    stand_in.fail.add("chat.update")
    channel = ChannelConfig(
        "slack", "slack", {"bot_token": TOKEN, "channel": "#alerts", "base_url": base_url}
    )
    resolved = Message(
        title="t", text="t", markdown="ok", state="resolved", thread="C0ALERTS 1769846400.000009"
    )
    result = slack.send(channel, resolved)
    # Retrying would post the reply again: it is sent, the edit's failure said.
    assert result.ok and result.response == "replied; edit: Slack API: channel_not_found"
    assert [m for m, _, _ in stand_in.calls] == ["chat.postMessage", "chat.update"]


def test_without_a_bot_token_a_channel_needs_its_webhook(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "r.toml").write_text('[channels.team]\nkind = "slack"\nchannel = "#a"\n')
    with pytest.raises(Exception, match="needs webhook_url"):
        load_rules(rules_dir, {})


def test_slacks_rate_limit_is_retried_after_what_it_said(api: tuple[SlackApi, str]) -> None:
    stand_in, base_url = api
    stand_in.limited = 1
    channel = ChannelConfig(
        "slack", "slack", {"bot_token": TOKEN, "channel": "#alerts", "base_url": base_url}
    )
    message = Message(title="t", text="t", markdown="m")
    first = slack.send(channel, message)
    assert not first.ok and not first.permanent
    assert first.status == 429 and first.retry_after == 7.0
    again = slack.send(channel, message)  # what the dispatcher does after the wait
    assert again.ok and again.posted == "C0ALERTS 1769846400.000001"
    assert [m for m, _, _ in stand_in.calls] == ["chat.postMessage", "chat.postMessage"]
