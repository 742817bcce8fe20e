"""A transport that raises has a bug: the notice is parked, the traceback logged once.

The channels are real: a Slack channel whose options the transport cannot encode
(a TOML date where Slack takes a string), against a loopback stand-in for Slack.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pulsehook.alerts.dispatch import Dispatcher
from pulsehook.clock import FrozenClock, iso
from pulsehook.logs import Redactor
from pulsehook.notify import slack
from pulsehook.notify.base import ChannelConfig, Message
from pulsehook.notify.result import secret_values
from pulsehook.rules.load import load_rules
from pulsehook.rules.model import RuleSet
from pulsehook.store import outbox
from pulsehook.store.db import SqliteWriter, Tx, Writer

from .standins import receiver

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOOK = "team-T0SECRETw3bh00k"  # the credential part of the webhook URL
MESSAGE = Message(title="FIRING build_failure", text="CI failed", markdown="*CI failed*")
RULES = """
[channels.team]
kind = "slack"
webhook_url = "${TEAM_HOOK}"
username = 1979-05-27  # a date: Slack's JSON body cannot carry one
"""


def rules(tmp_path: Path, url: str) -> RuleSet:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "channels.toml").write_text(RULES)
    return load_rules(directory, {"TEAM_HOOK": url})


def queue(writer: Writer) -> int:
    def job(db: Tx) -> int:
        return outbox.enqueue(
            db, channel="team", kind="firing", message=MESSAGE, alert_key="k", now=iso(NOW)
        )

    return int(writer.submit(job).result())


def test_a_raising_transport_parks_the_notice_and_logs_the_traceback_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with receiver() as stand_in:
        rule_set = rules(tmp_path, f"{stand_in.url}/hook/{HOOK}")
        channel = rule_set.channels["team"]
        # As the service logs: every channel credential masked, tracebacks included.
        redactor = Redactor()
        redactor.add(secret_values(channel))
        caplog.handler.addFilter(redactor)
        clock = FrozenClock(NOW)
        writer = SqliteWriter(tmp_path / "pulsehook.db")
        try:
            notice = queue(writer)
            dispatcher = Dispatcher(writer, rule_set, clock)
            with caplog.at_level(logging.INFO, logger="pulsehook"):
                assert asyncio.run(dispatcher.run_once()) == 1
                clock.advance(timedelta(hours=1))  # long past any retry's backoff
                assert asyncio.run(dispatcher.run_once()) == 0  # parked: never sent again
            row = writer.submit(lambda db: outbox.notice(db, notice)).result()
        finally:
            writer.close()
        assert stand_in.attempts(HOOK) == 0
    assert row is not None and row["status"] == "parked" and row["attempts"] == 1
    error = "TypeError: Object of type date is not JSON serializable"
    assert row["last_error"] == f"permanent failure: transport raised {error}"
    faults = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(faults) == 1
    [fault] = faults
    assert fault.name == "pulsehook.alerts.dispatch" and fault.exc_info is not None
    assert fault.exc_info[0] is TypeError
    assert getattr(fault, "fields", {})["notice"] == notice
    assert "Traceback" in caplog.text and slack.__file__ in caplog.text  # where it raised
    assert HOOK not in caplog.text


def test_a_url_the_request_cannot_carry_is_permanent_and_scrubbed() -> None:
    # A stray space pasted into the URL: urllib refuses it, quoting the URL's path.
    url = f"http://127.0.0.1:9/hook/{HOOK} x"
    result = slack.send(ChannelConfig("team", "slack", {"webhook_url": url}), MESSAGE)
    assert not result.ok and result.permanent and result.status is None
    assert result.error is not None and "InvalidURL" in result.error
    assert HOOK not in result.error
