"""Alert storms: when a shared workflow breaks everywhere at once, each channel gets
its first notice at once, then one grouped notice per window, at a pace its provider
accepts — against stand-ins that refuse (429) what comes faster, on a frozen clock."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pulsehook.alerts import engine
from pulsehook.alerts.dispatch import Dispatcher
from pulsehook.alerts.grouping import Count, Member, Tally, alerts_link, group_key, render_group
from pulsehook.app import create_app
from pulsehook.clock import FrozenClock
from pulsehook.facts import Build
from pulsehook.notify.pace import Pacer, parse_rate
from pulsehook.rules.evaluate import Evaluator
from pulsehook.rules.load import RulesInvalid, load_rules
from pulsehook.rules.model import RuleSet
from pulsehook.settings import Settings
from pulsehook.store import outbox
from pulsehook.store.db import SqliteWriter

from .builders import workflow_run
from .conftest import API_TOKEN, AUTH, SECRET, deliver, live, wait_for
from .standins import PacedReceiver, paced_receiver

START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
ROUTING_KEY = "r" * 32

RULES = """
[channels.slack]
webhook_url = "${SLACK_URL}"

[channels.oncall]
kind = "pagerduty"
routing_key = "ROUTING_KEY"
events_url = "${PD_URL}"

[[rule]]
name = "build_failure"
condition = "build.status == 'failure' and build.default_branch"
channels = ["slack", "oncall"]
EXTRA
""".replace("ROUTING_KEY", ROUTING_KEY)


def build(n: int, status: str = "failure", *, workflow: str = "CI") -> Build:
    return Build(
        repo=f"org/svc{n}",
        repo_id=1000 + n,
        workflow=workflow,
        branch="main",
        default_branch=True,
        status=status,
        event="push",
        run_id=50_000 + n,
        attempt=1,
        url=f"https://github.com/org/svc{n}/actions/runs/{50_000 + n}",
        started_at=None,
        completed_at=None,
        actor="me",
        head_sha="abc",
        source="workflow_run",
        updated_at=None,
    )


def ruleset(tmp_path: Path, env: dict[str, str], extra: str = "") -> RuleSet:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "storm.toml").write_text(RULES.replace("EXTRA", extra))
    return load_rules(rules, env)


class Storm:
    """The engine and the dispatcher on one store, the clock in the test's hands."""

    def __init__(
        self,
        tmp_path: Path,
        clock: FrozenClock,
        slack: PacedReceiver,
        pd: PacedReceiver,
        extra: str,
    ) -> None:
        env = {"SLACK_URL": f"{slack.url}/hook/slack", "PD_URL": f"{pd.url}/hook/pd"}
        self.rules = ruleset(tmp_path, env, extra)
        self.clock = clock
        self.writer = SqliteWriter(tmp_path / "pulsehook.db")
        self.dispatcher = Dispatcher(
            self.writer, self.rules, clock, public_url="https://pulse.example.com"
        )
        self.evaluator = Evaluator()
        self.policy = engine.Policy(flap=timedelta(minutes=5))

    def feed(self, *facts: Build) -> None:
        now = self.clock.now()
        self.writer.submit(
            lambda db: engine.evaluate(
                db,
                self.rules,
                list(facts),
                now=now,
                evaluator=self.evaluator,
                policy=self.policy,
            )
        ).result()
        self.pump()

    def pump(self) -> None:
        """What the dispatcher's loop does at this moment: send all it may."""

        async def go() -> None:
            while await self.dispatcher.run_once():
                pass

        asyncio.run(go())

    def run_for(self, seconds: float, step: float = 0.5) -> None:
        for _ in range(int(seconds / step)):
            self.clock.advance(timedelta(seconds=step))
            self.pump()

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return self.writer.submit(lambda db: list(db.query(sql, params))).result()


@pytest.fixture
def storm(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Storm, Any, Any]]:
    clock = FrozenClock(START)
    extra = getattr(request, "param", "")

    def seconds() -> float:  # the stand-ins keep the test's time too
        return clock.now().timestamp()

    with paced_receiver(1.0, seconds) as slack, paced_receiver(2.0, seconds) as pd:
        harness = Storm(tmp_path, clock, slack, pd, extra)
        try:
            yield harness, slack, pd
        finally:
            harness.writer.close()


def named(bodies: list[dict[str, Any]], repos: range) -> set[str]:
    """The repositories the Slack messages name (in their text, not only in links)."""
    text = "\n".join(b["text"] for b in bodies)
    return {
        f"org/svc{n}" for n in re.findall(r"\|org/svc(\d+)>|\*org/svc(\d+)\*", text) for n in n if n
    }


def test_three_hundred_failures_make_two_messages_per_channel_and_no_429(
    storm: tuple[Storm, PacedReceiver, PacedReceiver],
) -> None:
    h, slack, pd = storm
    for n in range(300):  # 300 repositories fail within 10 s
        h.feed(build(n))
        h.clock.advance(timedelta(seconds=10 / 300))
    h.run_for(50)

    assert slack.refused == 0 and pd.refused == 0
    assert slack.accepted[0][0] == START.timestamp()  # the first at once
    assert len(slack.accepted) == 2  # the first, then the window's 299 in one
    first, grouped = slack.bodies()
    assert "org/svc0" in first["text"]
    assert "build_failure in 299 repositories" in grouped["text"]
    assert named(slack.bodies(), range(300)) == {f"org/svc{n}" for n in range(300)}
    assert "more" not in grouped["text"]  # Slack takes all 299 names

    # PagerDuty: one incident for the group, its members in the custom details.
    events = pd.bodies()
    assert len(events) == 2
    assert {e["dedup_key"] for e in events} == {"group|build_failure"}
    assert [e["event_action"] for e in events] == ["trigger", "trigger"]
    details = events[-1]["payload"]["custom_details"]
    assert details["firing_count"] == 300 and len(details["firing"]) == 300

    # Nothing lost: every alert is its own, and each names a notice that was sent.
    alerts = h.query("SELECT key FROM alerts WHERE state = 'firing'")
    assert len(alerts) == 300
    sends = h.writer.submit(lambda db: outbox.for_alerts(db, [a["key"] for a in alerts])).result()
    for alert in alerts:
        assert {n["status"] for n in sends[alert["key"]]} == {"sent"}

    # They recover, the same way; PagerDuty resolves with the last of them.
    h.clock.advance(timedelta(minutes=2))
    for n in range(300):
        h.feed(build(n, "success"))
        h.clock.advance(timedelta(seconds=10 / 300))
    h.run_for(50)
    assert slack.refused == 0 and pd.refused == 0
    resolved = slack.bodies()[2:]
    assert len(resolved) == 2
    assert "RESOLVED" in resolved[0]["text"]
    assert "build_failure in 299 repositories" in resolved[1]["text"]
    events = pd.bodies()[2:]
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert {e["dedup_key"] for e in events} == {"group|build_failure"}
    assert events[0]["payload"]["custom_details"]["firing_count"] == 299


def test_a_lone_failure_and_its_recovery_go_out_at_once(
    storm: tuple[Storm, PacedReceiver, PacedReceiver],
) -> None:
    h, slack, pd = storm
    h.feed(build(1))
    assert [at for at, _ in slack.accepted] == [START.timestamp()]
    section, context = slack.bodies()[0]["blocks"]  # the notice's line, then its context
    assert "*FIRING*" in section["text"]["text"]
    assert "rule `build_failure`" in context["elements"][0]["text"]
    assert pd.bodies()[0]["event_action"] == "trigger"
    h.clock.advance(timedelta(seconds=5))  # inside the window: its own news still goes
    h.feed(build(1, "success"))
    assert len(slack.accepted) == 2 and "RESOLVED" in slack.bodies()[1]["text"]
    assert [e["event_action"] for e in pd.bodies()] == ["trigger", "resolve"]
    assert {e["dedup_key"] for e in pd.bodies()} == {"group|build_failure"}


@pytest.mark.parametrize("storm", ['group_by = ["repo"]'], indirect=True)
def test_many_groups_at_once_are_merged_at_the_channels_pace(
    storm: tuple[Storm, PacedReceiver, PacedReceiver],
) -> None:
    h, slack, pd = storm
    for n in range(60):  # one group per repository: each first notice is due at once
        h.feed(build(n))
        h.clock.advance(timedelta(seconds=0.1))
    h.run_for(10)
    assert slack.refused == 0 and pd.refused == 0
    # Slack is paced at one a second: what waited went out merged.
    assert len(slack.accepted) <= 8
    assert named(slack.bodies(), range(60)) == {f"org/svc{n}" for n in range(60)}
    merged = h.query("SELECT count(*) AS n FROM outbox WHERE status = 'merged'")[0]["n"]
    assert merged > 40
    # PagerDuty keeps one incident per group: nothing merged across them, each at
    # its pace (two a second).
    h.run_for(30)
    assert pd.refused == 0
    assert len({e["dedup_key"] for e in pd.bodies()}) == 60


@pytest.mark.parametrize("storm", ["group = false"], indirect=True)
def test_an_ungrouped_rule_sends_each_alert_at_the_channels_pace(
    storm: tuple[Storm, PacedReceiver, PacedReceiver],
) -> None:
    h, slack, _ = storm
    for n in range(5):
        h.feed(build(n))
    h.run_for(6)
    assert slack.refused == 0
    assert len(slack.accepted) == 5
    times = [at for at, _ in slack.accepted]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))
    assert [named([b], range(5)) for b in slack.bodies()] == [{f"org/svc{n}"} for n in range(5)]


def test_a_window_that_passes_quietly_lets_the_next_alert_go_at_once(
    storm: tuple[Storm, PacedReceiver, PacedReceiver],
) -> None:
    h, slack, _ = storm
    h.feed(build(1))
    h.clock.advance(timedelta(seconds=31))
    h.feed(build(2))
    assert len(slack.accepted) == 2 and "org/svc2" in slack.bodies()[1]["text"]
    h.clock.advance(timedelta(seconds=3))
    h.feed(build(3))  # inside svc2's window: gathered
    assert len(slack.accepted) == 2
    row = h.query("SELECT next_attempt_at FROM outbox WHERE kind = 'group'")[0]
    assert row["next_attempt_at"] == "2026-06-01T09:01:01Z"  # the window's end
    h.run_for(30)
    assert len(slack.accepted) == 3 and "org/svc3" in slack.bodies()[2]["text"]


# Pure parts.


def member(n: int, what: str = "\ufdd0CI\ufdd1 on \ufdd0main\ufdd1: \ufdd0failure\ufdd1") -> Member:
    return Member(
        rule="build_failure",
        repo=f"org/svc{n}",
        state="firing",
        severity="error",
        what=what,
        url=f"https://github.com/org/svc{n}/actions/runs/{n}",
    )


def test_a_grouped_notice_names_what_the_channel_takes_then_counts_the_rest() -> None:
    members = tuple(member(n) for n in range(300))
    tally = Tally(members, {("build_failure", "firing"): Count(300, 300)})
    link = alerts_link("https://pulse.example.com/", ["build_failure"])
    message = render_group(tally, kind="discord", key="build_failure", alerts_url=link)
    assert message.title == "[FIRING] build_failure in 300 repositories: CI on main: failure"
    assert len(message.discord) <= 2000
    assert "](<https://github.com" not in message.discord  # bare names: more of them fit
    assert all(f"org/svc{n}," in message.discord for n in range(80))
    assert "more — [all alerts](<https://pulse.example.com/alerts?rule=build_failure>)" in (
        message.discord
    )
    slack = render_group(tally, kind="slack", key="build_failure", alerts_url=link)
    assert all(f"|org/svc{n}>" in slack.markdown for n in range(300))
    assert "more" not in slack.markdown
    assert slack.details["firing_count"] == 300


def test_a_grouped_notice_escapes_what_payloads_say() -> None:
    hostile = "\ufdd0<!channel> @everyone [x](http://evil)\ufdd1"
    tally = Tally((member(1, hostile), member(2, "\ufdd0other\ufdd1")))
    message = render_group(tally, kind="slack", key="k")
    assert "<!channel>" not in message.markdown and "&lt;!channel&gt;" in message.markdown
    assert "@everyone" not in message.discord
    assert "\n" not in message.title


def test_mixed_notices_say_each_rule_and_state() -> None:
    resolved = Member("build_failure", "org/a", "resolved", "info", "\ufdd0ok\ufdd1")
    tally = Tally((member(1), member(2), resolved))
    message = render_group(tally, kind="slack", key="k")
    assert message.title == (
        "[FIRING] build_failure in 2 repositories, [RESOLVED] build_failure — org/a"
    )
    assert message.state == "firing"
    assert render_group(tally, kind="pagerduty", key="k", firing_now=()).state == "resolved"


def test_group_keys_follow_group_by() -> None:
    fact = {"repo": "org/a", "workflow": "CI", "branch": "main"}
    assert group_key("build_failure", (), fact) == "build_failure"
    assert group_key("build_failure", ("workflow",), fact) == "build_failure|workflow=CI"


def test_rates_and_the_pacer() -> None:
    assert parse_rate("1/s") == 1.0
    assert parse_rate("30/min") == 0.5
    assert parse_rate("3600/h") == 1.0
    assert parse_rate("off") is None
    for bad in ("fast", "0/s", "-1/s", 5):
        with pytest.raises(ValueError):
            parse_rate(bad)
    pacer = Pacer()
    assert pacer.ready("slack", START)
    pacer.started("slack")
    assert not pacer.ready("slack", START) and pacer.ready_at("slack") is None
    pacer.finished("slack", START, 1.0)
    assert not pacer.ready("slack", START + timedelta(seconds=0.5))
    assert pacer.ready("slack", START + timedelta(seconds=1))
    pacer.started("slack")
    pacer.finished("slack", START, 1.0, retry_after=30)  # a 429 pauses the channel
    assert pacer.ready_at("slack") == START + timedelta(seconds=30)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('group_by = ["nope"]', "build facts have no field 'nope'"),
        ("group_by = 3", "group_by must be a list of fact fields"),
        ('group_window = "soon"', "group_window: not a duration"),
        ('group_window = "2d"', "group_window must be between 0 and 24 hours"),
        ('group = "yes"', "group must be true or false"),
    ],
)
def test_grouping_options_are_checked(tmp_path: Path, extra: str, problem: str) -> None:
    env = {"SLACK_URL": "http://127.0.0.1:9/hook", "PD_URL": "http://127.0.0.1:9/pd"}
    with pytest.raises(RulesInvalid) as error:
        ruleset(tmp_path, env, extra)
    assert any(problem in p for p in error.value.problems), error.value.problems


def test_a_channel_rate_is_checked_and_defaults_to_the_providers(tmp_path: Path) -> None:
    env = {"SLACK_URL": "http://127.0.0.1:9/hook", "PD_URL": "http://127.0.0.1:9/pd"}
    rules = ruleset(tmp_path, env)
    assert rules.channels["slack"].rate == 1.0
    assert rules.channels["oncall"].rate == 2.0
    assert "rate" not in rules.channels["slack"].options
    (tmp_path / "rules" / "zz.toml").write_text('[channels.slack]\nrate = "often"\n')
    with pytest.raises(RulesInvalid) as error:
        load_rules(tmp_path / "rules", env)
    assert any("rate 'often'" in p for p in error.value.problems)


def test_the_running_service_groups_a_storm_and_keeps_to_slacks_pace(tmp_path: Path) -> None:
    """The same end to end: signed deliveries into the served app, a Slack stand-in
    that refuses what comes sooner than a second after the last, real time."""
    with paced_receiver(1.0, time.monotonic) as slack:
        rules = tmp_path / "rules"
        rules.mkdir()
        (rules / "storm.toml").write_text(
            '[channels.slack]\nwebhook_url = "${SLACK_URL}"\n\n'
            '[[rule]]\nname = "build_failure"\n'
            "condition = \"build.status == 'failure' and build.default_branch\"\n"
            'channels = ["slack"]\ngroup_window = "3s"\n'
        )
        settings = Settings(
            data_dir=tmp_path / "data",
            rules_dir=rules,
            webhook_secret=SecretStr(SECRET),
            api_token=SecretStr(API_TOKEN),
            public_url="https://pulse.example.com",
        )
        loaded = load_rules(rules, {"SLACK_URL": f"{slack.url}/hook/slack"})
        with (
            live(create_app(settings, rules=loaded)) as server,
            httpx.Client(base_url=server.url, headers=AUTH) as client,
        ):
            started = time.monotonic()
            for n in range(20):
                red = workflow_run(3000 + n)
                red["repository"].update(id=800 + n, full_name=f"org/svc{n}", name=f"svc{n}")
                assert deliver(client, "workflow_run", red).status_code == 202
            wait_for(lambda: len(slack.accepted) >= 1)
            first = slack.accepted[0][0] - started
            wait_for(lambda: named(slack.bodies(), range(20)) == {f"org/svc{n}" for n in range(20)})
            notices = client.get("/api/v1/outbox").json()["notices"]
            alerts = client.get("/api/v1/alerts", params={"rule": "build_failure"}).json()
            grouped = next(n for n in notices if n["members"] > 1)
            detail = client.get(f"/api/v1/outbox/{grouped['id']}").json()
            page = client.get("/alerts", params={"rule": "build_failure"})
            missing = client.get("/api/v1/outbox/999999")
    assert first < 2  # the first notice at once, the storm's deliveries still coming
    assert slack.refused == 0
    assert len(slack.accepted) <= 3  # the first, the window's, at most one straggler
    assert alerts["count"] == 20
    assert all(a["deliveries"] for a in alerts["alerts"])
    assert detail["member_count"] == grouped["members"] and detail["status"] == "sent"
    assert {m["repo"] for m in detail["members"]} <= {f"org/svc{n}" for n in range(20)}
    assert page.status_code == 200 and "Latest notices" in page.text
    assert missing.status_code == 404


def test_a_zero_group_window_is_kept_and_the_default_is_thirty_seconds(tmp_path: Path) -> None:
    env = {"SLACK_URL": "http://127.0.0.1:9/hook", "PD_URL": "http://127.0.0.1:9/pd"}
    assert ruleset(tmp_path, env, 'group_window = "0s"').rules[0].group_window == timedelta(0)
    assert ruleset(tmp_path, env).rules[0].group_window == timedelta(seconds=30)
