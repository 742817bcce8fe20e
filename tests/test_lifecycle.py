"""Alert lifecycle with an injected clock: fire, repeat, resolve, flapping, silences, digests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pulsehook.alerts import digest, engine, lifecycle, silences
from pulsehook.clock import FrozenClock
from pulsehook.facts import Build, Fact, Vulnerability
from pulsehook.rules.evaluate import Evaluator
from pulsehook.rules.load import load_rules
from pulsehook.rules.model import RuleSet
from pulsehook.store import silences as silence_store
from pulsehook.store.db import Database, open_database, transaction, wrap

START = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
ENV = {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/hook"}


def ruleset(tmp_path: Path, extra: str = "", timezone: str = "UTC") -> RuleSet:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "rules.toml").write_text(f"""
[[rule]]
name = "build_failure"
condition = "build.status == 'failure' and build.branch == 'main'"
channels = ["slack"]
repeat_interval = "4h"

[[rule]]
name = "critical_vulnerability"
condition = "vulnerability.severity == 'critical'"
channels = ["slack"]

[[rule]]
name = "coverage_drop"
condition = "coverage.delta < -5"
channels = ["slack"]
frequency = "daily_digest"

[channels.slack]
webhook_url = "${{SLACK_WEBHOOK_URL}}"
{extra}
""")
    return load_rules(rules, ENV)


def build(
    status: str, *, branch: str = "main", source: str = "workflow_run", run_id: int = 1
) -> Build:
    return Build(
        repo="octo/repo",
        repo_id=1,
        workflow="CI",
        branch=branch,
        default_branch=True,
        status=status,
        event="push",
        run_id=run_id,
        attempt=1,
        url=f"https://github.com/octo/repo/actions/runs/{run_id}",
        started_at=None,
        completed_at=None,
        actor="me",
        head_sha="abc",
        source=source,
        updated_at=None,
    )


class Harness:
    def __init__(self, tmp_path: Path, rules: RuleSet, flap: timedelta) -> None:
        self.db: Database = wrap(open_database(tmp_path / "db.sqlite"))
        self.rules = rules
        self.clock = FrozenClock(START)
        self.policy = engine.Policy(flap=flap)
        self.evaluator = Evaluator()

    def feed(self, *facts: Fact) -> engine.Outcome:
        return transaction(
            self.db,
            lambda db: engine.evaluate(
                db,
                self.rules,
                list(facts),
                now=self.clock.now(),
                evaluator=self.evaluator,
                policy=self.policy,
            ),
        )

    def release(self) -> int:
        return transaction(
            self.db, lambda db: engine.release_held(db, self.rules, now=self.clock.now())
        )

    def tick(self) -> int:
        """What the scheduler does at a deadline, without the flap releases."""
        now = self.clock.now()
        return transaction(
            self.db,
            lambda db: (
                engine.release_unsilenced(db, self.rules, now=now, policy=self.policy)
                + engine.release_repeats(db, self.rules, now=now)
            ),
        )

    def next_due(self) -> datetime | None:
        return transaction(
            self.db,
            lambda db: engine.next_due(db, self.rules, now=self.clock.now(), timezone="UTC"),
        )

    def notices(self) -> list[tuple[str, str]]:
        return [
            (r["kind"], json.loads(r["message"])["title"])
            for r in self.db.query("SELECT kind, message FROM outbox ORDER BY id")
        ]

    def kinds(self) -> list[str]:
        return [k for k, _ in self.notices()]


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path, ruleset(tmp_path), flap=timedelta(minutes=5))


def test_fire_repeat_only_after_interval_then_resolve(h: Harness) -> None:
    h.feed(build("failure"))
    assert h.kinds() == ["firing"]
    h.clock.advance(timedelta(hours=1))
    h.feed(build("failure", run_id=2))  # still red, inside repeat_interval
    assert h.kinds() == ["firing"]
    h.clock.advance(timedelta(hours=3, minutes=1))
    h.feed(build("failure", run_id=3))
    assert h.kinds() == ["firing", "repeat"]
    h.clock.advance(timedelta(minutes=10))
    h.feed(build("in_progress", run_id=4))  # not a recovery
    h.feed(build("cancelled", run_id=4))  # nor is a cancelled run
    assert h.kinds() == ["firing", "repeat"]
    h.feed(build("success", run_id=5))
    assert h.kinds() == ["firing", "repeat", "resolved"]
    title = h.notices()[-1][1]
    assert title.startswith("[RESOLVED] build_failure — octo/repo")


def test_other_branches_and_passing_jobs_do_not_touch_the_alert(h: Harness) -> None:
    h.feed(build("failure", branch="feature"))
    assert h.kinds() == []
    h.feed(build("failure", source="workflow_job"))  # a failing job fires at once
    h.feed(build("failure"))  # its run: same alert, no second notice
    assert h.kinds() == ["firing"]
    h.clock.advance(timedelta(minutes=10))
    h.feed(build("success", source="workflow_job"))  # one job passing is not recovery
    assert h.kinds() == ["firing"]


def test_one_failure_and_one_recovery_are_told_at_once(h: Harness) -> None:
    fired = h.feed(build("failure"))
    assert (fired.queued, fired.held, [c.kind for c in fired.changes]) == (1, 0, ["firing"])
    h.clock.advance(timedelta(seconds=30))  # well inside the flap interval
    resolved = h.feed(build("success", run_id=2))
    assert (resolved.queued, resolved.held) == (1, 0)
    assert [(c.rule, c.kind, c.repo) for c in resolved.changes] == [
        ("build_failure", "resolved", "octo/repo")
    ]
    assert h.kinds() == ["firing", "resolved"]
    assert h.next_due() is None  # nothing held back


def test_flapping_is_damped_and_counted(h: Harness) -> None:
    h.feed(build("failure"))
    h.clock.advance(timedelta(seconds=30))
    h.feed(build("success", run_id=2))  # two changes: not flapping yet
    assert h.kinds() == ["firing", "resolved"]
    told = h.clock.now()
    for run in range(3, 7):  # red, green, red, green: the third change on is held
        h.clock.advance(timedelta(seconds=30))
        outcome = h.feed(build("failure" if run % 2 else "success", run_id=run))
        assert outcome.queued == 0
    h.clock.advance(timedelta(seconds=30))
    assert h.feed(build("failure", run_id=7)) == engine.Outcome(held=1, changes=())
    assert h.kinds() == ["firing", "resolved"]
    assert h.next_due() == told + timedelta(minutes=5)  # the scheduler is told when
    h.clock.advance(timedelta(minutes=1))
    assert h.release() == 0  # interval not over yet
    h.clock.set(told + timedelta(minutes=5))
    assert h.release() == 1
    assert h.kinds() == ["firing", "resolved", "firing"]
    assert (
        "flapped 5 times"
        in json.loads(next(h.db.query("SELECT message FROM outbox ORDER BY id DESC"))["message"])[
            "markdown"
        ]
    )


def test_changes_older_than_the_flap_interval_are_not_flapping(h: Harness) -> None:
    for run in range(1, 7):  # a change every ten minutes: never three inside five
        h.feed(build("failure" if run % 2 else "success", run_id=run))
        h.clock.advance(timedelta(minutes=10))
    assert h.kinds() == ["firing", "resolved"] * 3


def test_a_reminder_goes_out_at_its_time_without_a_new_fact(h: Harness) -> None:
    h.feed(build("failure"))
    assert h.next_due() == START + timedelta(hours=4)  # repeat_interval
    h.clock.advance(timedelta(hours=3, minutes=59))
    assert h.tick() == 0
    h.clock.set(START + timedelta(hours=4))
    assert h.tick() == 1
    assert h.kinds() == ["firing", "repeat"]
    assert h.next_due() == START + timedelta(hours=8)
    h.feed(build("success", run_id=2))
    assert h.next_due() is None  # resolved: nothing more to remind of


def test_the_end_of_a_silence_tells_what_it_held_at_its_end(h: Harness) -> None:
    until = START + timedelta(minutes=20)
    transaction(
        h.db,
        lambda db: silence_store.create(
            db,
            rule="build_failure",
            repo=None,
            starts_at=START,
            ends_at=until,
            cron=None,
            duration=None,
            comment=None,
            now=START,
        ),
    )
    assert h.feed(build("failure")) == engine.Outcome(held=1, changes=())
    assert h.kinds() == []
    assert h.next_due() == until
    h.clock.set(until - timedelta(seconds=1))
    assert h.tick() == 0
    h.clock.set(until)
    assert h.tick() == 1
    assert h.kinds() == ["firing"]
    (alert,) = h.db.query("SELECT silenced FROM alerts")
    assert alert == {"silenced": 0}
    assert h.tick() == 0  # told once


def test_silence_holds_and_releases(h: Harness) -> None:
    transaction(
        h.db,
        lambda db: silence_store.create(
            db,
            rule="build_*",
            repo="octo/*",
            starts_at=START,
            ends_at=START + timedelta(hours=1),
            cron=None,
            duration=None,
            comment="maintenance",
            now=START,
        ),
    )
    h.feed(build("failure"))
    assert h.kinds() == []
    (alert,) = h.db.query("SELECT state, silenced FROM alerts")
    assert alert == {"state": "firing", "silenced": 1}  # recorded all the same
    h.clock.advance(timedelta(minutes=30))
    h.feed(build("success", run_id=2))
    assert h.kinds() == []  # no resolved notice for a firing notice never sent
    h.feed(build("failure", run_id=3))
    h.clock.set(START + timedelta(hours=1, minutes=1))
    h.feed(build("failure", run_id=4))  # the silence is over: now it is said
    assert h.kinds() == ["firing"]


def test_recurring_silence(tmp_path: Path) -> None:
    rows = [
        {
            "rule": None,
            "repo": "octo/*",
            "starts_at": "2026-01-01T00:00:00Z",
            "ends_at": None,
            "cron": "0 22 * * *",
            "duration_s": 8 * 3600,
        }
    ]
    at = datetime(2026, 3, 27, 23, 0, tzinfo=UTC)
    assert silences.silenced(rows, "build_failure", "octo/repo", at)
    assert not silences.silenced(rows, "build_failure", "octo/repo", at + timedelta(hours=8))
    assert not silences.silenced(rows, "build_failure", "other/repo", at)


def test_vulnerability_resolves_when_fixed(h: Harness) -> None:
    def vuln(state: str) -> Vulnerability:
        return Vulnerability(
            repo="octo/repo",
            repo_id=1,
            number=7,
            action="created",
            state=state,
            severity="critical",
            package="lodash",
            ecosystem="npm",
            manifest="package.json",
            ghsa_id="GHSA-x",
            cve_id=None,
            summary="Prototype pollution",
            description=None,
            url="https://github.com/octo/repo/security/dependabot/7",
            created_at=None,
            updated_at=None,
            fixed_at=None,
            dismissed_at=None,
        )

    h.feed(vuln("open"))
    h.clock.advance(timedelta(days=1))
    h.feed(vuln("open"))  # still critical and open: no new notice
    h.feed(vuln("fixed"))  # still "critical", but fixed: resolves
    assert h.kinds() == ["firing", "resolved"]


def test_rule_erroring_on_a_fact_is_recorded_and_others_go_on(tmp_path: Path) -> None:
    rules = ruleset(
        tmp_path,
        extra="""
[[rule]]
name = "broken"
condition = "len(build.status) > 'x'"
channels = ["slack"]
""",
    )
    h = Harness(tmp_path, rules, flap=timedelta(0))
    h.feed(build("failure"))
    assert h.kinds() == ["firing"]  # build_failure still fired
    (stats,) = h.db.query("SELECT * FROM rule_stats WHERE rule = 'broken'")
    assert stats["errors"] == 1 and "TypeError" in stats["last_error"]


def test_digest_at_cron_time_in_local_zone_across_dst(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, timezone="Europe/Berlin")
    h = Harness(tmp_path, rules, flap=timedelta(0))
    tz = "Europe/Berlin"
    # Saturday 28 March 2026, 12:00 UTC; clocks go forward on Sunday 29 March.
    h.clock.set(datetime(2026, 3, 28, 12, 0, tzinfo=UTC))

    def run() -> int:
        return transaction(h.db, lambda db: digest.run_due(db, rules, now=h.clock.now(), tz=tz))

    assert run() == 0  # first sight: the schedule's mark is set
    from pulsehook.facts import Coverage

    drop = Coverage(
        repo="octo/repo",
        repo_id=1,
        branch="main",
        sha="abc",
        value=80.0,
        delta=-7.5,
        url="https://codecov.io/x",
        at=None,
        source="status",
    )
    h.feed(drop)
    assert h.kinds() == []  # no immediate notice for a digest rule
    h.clock.set(datetime(2026, 3, 29, 5, 59, tzinfo=UTC))  # 07:59 CEST
    assert run() == 0
    h.clock.set(datetime(2026, 3, 29, 6, 0, tzinfo=UTC))  # 08:00 CEST (= 06:00 UTC)
    assert run() == 1
    assert h.kinds() == ["digest"]
    (body,) = [
        json.loads(r["message"])
        for r in h.db.query("SELECT message FROM outbox WHERE kind = 'digest'")
    ]
    assert "octo/repo" in body["text"] and "coverage_drop (1)" in body["text"]
    assert "<h3>octo/repo</h3>" in body["html"]
    # Nothing new: the next 08:00 sends no empty digest.
    h.clock.set(datetime(2026, 3, 30, 6, 0, tzinfo=UTC))
    assert run() == 0


def test_missed_digests_are_sent_once(tmp_path: Path) -> None:
    rules = ruleset(tmp_path)
    h = Harness(tmp_path, rules, flap=timedelta(0))

    def run() -> int:
        return transaction(h.db, lambda db: digest.run_due(db, rules, now=h.clock.now(), tz="UTC"))

    run()
    from pulsehook.facts import Coverage

    h.feed(
        Coverage(
            repo="octo/repo",
            repo_id=1,
            branch="main",
            sha="a",
            value=1.0,
            delta=-9.0,
            url=None,
            at=None,
            source="status",
        )
    )
    h.clock.advance(timedelta(days=3))  # down for three 08:00s
    assert run() == 1
    assert run() == 0


def test_subjects_and_keys() -> None:
    data: dict[str, Any] = {"workflow": "CI", "branch": "main"}
    assert lifecycle.subject("build", data) == "CI@main"
    assert lifecycle.alert_key("r", "o/x", "CI@main") == "r|o/x|CI@main"
