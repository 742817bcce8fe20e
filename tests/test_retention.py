"""Retention: the store stays bounded, the state stays, and replay still rebuilds it.

The retention tables are migration 12.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import random
import shutil
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import pulsehook.cli.prune  # noqa: F401  (registers ``pulsehook prune`` on the group)
from pulsehook.alerts.engine import Policy
from pulsehook.cli import main
from pulsehook.clock import FrozenClock, iso
from pulsehook.errors import ConfigError
from pulsehook.ingest import Alerting, clear_derived, process_chunk
from pulsehook.rules.model import RuleSet
from pulsehook.schedule.runner import Scheduler
from pulsehook.store import health as health_store
from pulsehook.store import retention
from pulsehook.store import silences as silence_store
from pulsehook.store.db import (
    URGENT,
    Database,
    SqliteWriter,
    Tx,
    Writer,
    open_database,
    transaction,
    wrap,
)
from pulsehook.store.deliveries import Delivery, insert_batch
from pulsehook.store.migrations import DERIVED_TABLES
from pulsehook.store.queries import repos

from .builders import codecov_status
from .conftest import payload

START = datetime(2026, 3, 1, tzinfo=UTC)
# Columns that record when pulsehook processed something, not what was delivered:
# replay writes its own time there (without pruning too).
PROCESSING_TIME = {
    "repositories": {"first_seen_at", "last_seen_at"},
    "hooks": {"last_delivery_at"},  # a ping's delivery is stamped when processed
    "summary_items": {"created_at", "due_at", "status", "status_since"},
}
SURROGATE = {"activity": {"id"}, "coverage": {"id"}}  # row ids replay numbers afresh


def store(path: Path) -> Database:
    db = wrap(open_database(path))
    return db


# --- a stream of deliveries over simulated days, from GitHub's example payloads ---


@dataclass
class Item:
    at: datetime
    event: str
    guid: str
    body: dict[str, Any]
    hook_id: int | None = None


class Stream:
    """Repositories sending what GitHub sends, a few times a day."""

    def __init__(self, rng: random.Random, repos: int = 3) -> None:
        self.rng = rng
        self.items: list[Item] = []
        self.run_id = 7000
        self.names = {1000 + n: f"octo-org/repo-{n}" for n in range(repos)}
        self.open_alerts: dict[int, list[int]] = {r: [] for r in self.names}
        self.open_prs: dict[int, list[int]] = {r: [] for r in self.names}
        self.numbers = 0
        self.coverage = {r: 80.0 for r in self.names}
        self.past: list[tuple[int, dict[str, Any], dict[str, Any]]] = []  # runs: done, started
        self.heads: list[tuple[int, dict[str, Any]]] = []
        self.private = {r: False for r in self.names}
        self.changed: dict[int, datetime] = {}  # a setting changed: the repository's updated_at

    def repo(self, repo_id: int, at: datetime) -> dict[str, Any]:
        data: dict[str, Any] = copy.deepcopy(payload("workflow_run.completed")["repository"])
        owner, name = self.names[repo_id].split("/")
        data.update(
            id=repo_id,
            name=name,
            full_name=f"{owner}/{name}",
            default_branch="main",
            html_url=f"https://github.com/{owner}/{name}",
            # GitHub's repository updated_at moves when its settings change: weekly here.
            updated_at=iso(
                max(
                    START + timedelta(days=(at - START).days // 7 * 7),
                    self.changed.get(repo_id, START),
                )
            ),
            private=self.private[repo_id],
        )
        data["owner"]["login"] = owner
        return data

    def add(
        self,
        at: datetime,
        event: str,
        body: dict[str, Any],
        repo_id: int,
        *,
        scan: bool = False,
        stale: bool = False,
    ) -> None:
        if not stale:  # a late delivery carries the repository as it was when sent
            body["repository"] = self.repo(repo_id, at)
        n = len(self.items)
        guid = f"scan:{event}:{n}" if scan else f"g-{n}"
        self.items.append(Item(at, event, guid, body, None if scan else 5000 + repo_id))

    def run(self, repo_id: int, at: datetime, workflow: str, branch: str, event: str) -> None:
        """A run: requested, then completed (sometimes the other way round), a job,
        and now and then a re-run."""
        self.run_id += 1
        conclusion = self.rng.choice(["success", "success", "failure", "cancelled"])
        sha = f"{self.run_id:040x}"

        def body(status: str, attempt: int, when: datetime) -> dict[str, Any]:
            data = copy.deepcopy(payload("workflow_run.completed"))
            data["workflow"]["name"] = workflow
            data["workflow_run"].update(
                id=self.run_id,
                name=workflow,
                run_attempt=attempt,
                status=status,
                conclusion=conclusion if status == "completed" else None,
                head_branch=branch,
                head_sha=sha,
                event=event,
                created_at=iso(at),
                run_started_at=iso(at),
                updated_at=iso(when),
                html_url=f"https://github.com/x/actions/runs/{self.run_id}/{attempt}",
            )
            return data

        done = at + timedelta(minutes=7)
        order = [("in_progress", at), ("completed", done)]
        if self.rng.random() < 0.2:
            order.reverse()  # GitHub does not promise the order
        for status, when in order:
            self.add(when, "workflow_run", body(status, 1, when), repo_id)
        then = self.repo(repo_id, at)
        self.past.append((repo_id, body("completed", 1, done) | {"repository": then},
                          body("in_progress", 1, at) | {"repository": then}))  # fmt: skip
        job = copy.deepcopy(payload("workflow_job.completed"))
        job["workflow_job"].update(
            id=self.run_id * 10,
            run_id=self.run_id,
            head_branch=branch,
            workflow_name=workflow,
            conclusion=conclusion,
            started_at=iso(at),
            completed_at=iso(done),
        )
        self.add(done, "workflow_job", job, repo_id)
        if self.rng.random() < 0.15:
            later = done + timedelta(hours=1)
            self.add(later, "workflow_run", body("completed", 2, later), repo_id)
        if self.rng.random() < 0.1:
            # A scan lists the run again: the same run under its own guid.
            self.add(
                done + timedelta(hours=3),
                "workflow_run",
                body("completed", 1, done),
                repo_id,
                scan=True,
            )

    def push(self, repo_id: int, at: datetime, *, bot: bool = False, tag: bool = False) -> str:
        data = copy.deepcopy(payload("push"))
        sha = f"{self.rng.getrandbits(160):040x}"
        data.update(after=sha, ref="refs/tags/v1" if tag else "refs/heads/main")
        data["head_commit"].update(id=sha, timestamp=iso(at - timedelta(minutes=5)))
        if bot:
            data["sender"].update(login="dependabot[bot]", type="Bot")
        self.add(at, "push", data, repo_id)
        if not tag:
            self.heads.append((repo_id, data))
        if not tag and self.rng.random() < 0.3:
            # The scan's view of the same head: another guid, fewer details.
            again = copy.deepcopy(data)
            again["commits"] = again["commits"][:1] * 3
            self.add(at + timedelta(hours=2), "push", again, repo_id, scan=True)
        return sha

    def figure(self, repo_id: int, at: datetime, sha: str) -> None:
        self.coverage[repo_id] = round(self.coverage[repo_id] + self.rng.uniform(-3, 3), 2)
        data = codecov_status(
            f"{self.coverage[repo_id]:.2f}% (+0.10%) compared to abc1234", iso(at)
        )
        data.update(sha=sha, id=self.rng.getrandbits(31))
        data["branches"][0].update(name="main")
        data["branches"][0]["commit"]["sha"] = sha
        self.add(at, "status", data, repo_id)
        if self.rng.random() < 0.3:
            self.add(at + timedelta(hours=1), "status", copy.deepcopy(data), repo_id, scan=True)

    def alert(self, repo_id: int, at: datetime) -> None:
        if self.open_alerts[repo_id] and self.rng.random() < 0.5:
            number = self.open_alerts[repo_id].pop(0)
            data = copy.deepcopy(payload("dependabot_alert.created"))
            data["action"] = "fixed"
            data["alert"].update(number=number, state="fixed", fixed_at=iso(at), updated_at=iso(at))
        else:
            self.numbers += 1
            number = self.numbers
            self.open_alerts[repo_id].append(number)
            data = copy.deepcopy(payload("dependabot_alert.created"))
            data["alert"].update(number=number, created_at=iso(at), updated_at=iso(at))
        self.add(at, "dependabot_alert", data, repo_id)

    def pull(self, repo_id: int, at: datetime) -> None:
        data = copy.deepcopy(payload("pull_request.opened"))
        if self.open_prs[repo_id] and self.rng.random() < 0.6:
            number = self.open_prs[repo_id].pop(0)
            data["action"] = "closed"
            data["pull_request"].update(state="closed", merged=True, closed_at=iso(at))
        else:
            self.numbers += 1
            number = self.numbers
            self.open_prs[repo_id].append(number)
            data["pull_request"].update(created_at=iso(at))
        data["number"] = number
        data["pull_request"].update(
            number=number,
            title=f"Bump lib{number} from 1.0.{number} to 1.0.{number + 1}",
            updated_at=iso(at),
        )
        data["pull_request"]["user"].update(login="dependabot[bot]", type="Bot")
        self.add(at, "pull_request", data, repo_id)

    def day(self, repo_id: int, day: int) -> None:
        base = START + timedelta(days=day, hours=8 + 2 * (repo_id % 3))
        rng = self.rng
        if day == 0:
            ping = copy.deepcopy(payload("ping"))
            ping["hook_id"] = ping["hook"]["id"] = 5000 + repo_id
            self.add(base - timedelta(hours=1), "ping", ping, repo_id)
        sha = self.push(repo_id, base, bot=rng.random() < 0.2)
        self.figure(repo_id, base + timedelta(minutes=20), sha)
        self.run(repo_id, base + timedelta(minutes=1), "CI", "main", "push")
        self.run(repo_id, base + timedelta(hours=3), "CI", "feature", "pull_request")
        if day % 2 == 0:
            self.run(repo_id, base + timedelta(hours=5), "Nightly", "main", "schedule")
        if rng.random() < 0.15:
            self.push(repo_id, base + timedelta(hours=6), tag=True)
        if rng.random() < 0.4:
            self.alert(repo_id, base + timedelta(hours=4))
        if rng.random() < 0.4:
            self.pull(repo_id, base + timedelta(hours=4, minutes=30))
        if rng.random() < 0.5:
            comment = copy.deepcopy(payload("issue_comment.created"))
            comment["comment"]["updated_at"] = iso(base + timedelta(hours=2))
            self.add(base + timedelta(hours=2), "issue_comment", comment, repo_id)
        if rng.random() < 0.3:
            report = {
                "workflow": "deploy",
                "status": rng.choice(["success", "failure"]),
                "at": iso(base + timedelta(hours=7)),
                "coverage": round(rng.uniform(50, 90), 1),
                "sha": sha,
                "id": f"deploy-{day}",
            }
            self.add(base + timedelta(hours=7), "pulsehook.report", report, repo_id)
        profile = {
            "readme": True,
            "api_docs": rng.choice([True, False, None]),
            "dependabot": True,
            "checked_at": iso(base + timedelta(hours=9)),
        }
        self.add(base + timedelta(hours=9), "pulsehook.profile", profile, repo_id, scan=True)
        if rng.random() < 0.1:
            self.add(base + timedelta(hours=9), "sponsorship", {"action": "created"}, repo_id)
        self.late(repo_id, base + timedelta(hours=10))

    def late(self, repo_id: int, at: datetime) -> None:
        """What arrives days after the fact: a scan listing an old run or head again
        (its guid long pruned), a lagging event of an old run."""
        runs = [r for r in self.past if r[0] == repo_id]
        heads = [h for h in self.heads if h[0] == repo_id]
        if runs and self.rng.random() < 0.15:
            _, done, _ = self.rng.choice(runs[:-3] or runs)
            self.add(at, "workflow_run", copy.deepcopy(done), repo_id, scan=True, stale=True)
        if runs and self.rng.random() < 0.05:
            _, _, started = self.rng.choice(runs[:-3] or runs)
            self.add(at, "workflow_run", copy.deepcopy(started), repo_id, stale=True)
        if heads and self.rng.random() < 0.1:
            _, push = self.rng.choice(heads)
            again = copy.deepcopy(push)
            again["commits"] = again["commits"][:1] * 2
            self.add(at, "push", again, repo_id, scan=True, stale=True)

    def rename(self, repo_id: int, at: datetime) -> None:
        data = copy.deepcopy(payload("repository.renamed"))
        old = self.names[repo_id]
        self.names[repo_id] = old + "-renamed"
        data["changes"]["repository"]["name"]["from"] = old.split("/")[1]
        self.add(at, "repository", data, repo_id)

    def lifecycle(self, repo_id: int, at: datetime, name: str) -> None:
        if name.endswith(("privatized", "publicized")):
            self.private[repo_id] = name.endswith("privatized")
            self.changed[repo_id] = at
        self.add(at, "repository", copy.deepcopy(payload(name)), repo_id)

    def installed(self, repo_ids: list[int], at: datetime, action: str) -> None:
        data = copy.deepcopy(payload(f"installation_repositories.{action}"))
        listed = [{"id": r, "full_name": self.names[r], "private": False} for r in repo_ids]
        data["repositories_added" if action == "added" else "repositories_removed"] = listed
        self.add(at, "installation_repositories", data, repo_ids[0])

    def days(self, first: int, last: int) -> list[Item]:
        """The deliveries of days [first, last): every repository, the first only
        up to day 3 (a repository that went quiet), in arrival order."""
        start = len(self.items)
        for day in range(first, last):
            for repo_id in self.names:
                if repo_id == 1000 and day > 3:
                    continue
                self.day(repo_id, day)
            if day == 4:
                self.rename(1001, START + timedelta(days=day, hours=12))
            if day == 6:
                self.lifecycle(1002, START + timedelta(days=day, hours=13), "repository.privatized")
            if day == 8:
                self.lifecycle(1002, START + timedelta(days=day, hours=13), "repository.publicized")
            if day == 1:
                self.installed(list(self.names), START + timedelta(days=day, hours=1), "added")
            if day == 2:
                self.lifecycle(1000, START + timedelta(days=day, hours=20), "repository.privatized")
            if day == 5:
                # The quiet repository's last word: a lagging event, with the repository
                # as it was before it went private.
                _, _, started = next(r for r in self.past if r[0] == 1000)
                late = START + timedelta(days=day)
                self.add(late, "workflow_run", copy.deepcopy(started), 1000, stale=True)
            if day == 5:
                self.installed([1002], START + timedelta(days=day, hours=1), "removed")
        fresh = self.items[start:]
        return sorted(fresh, key=lambda i: i.at)


def receive(db: Database, items: list[Item], *, alerting: Alerting | None = None) -> None:
    """Store each delivery when it arrives and process it then, as the service does."""
    for item in items:
        d = Delivery(
            guid=item.guid,
            event=item.event,
            payload=json.dumps(item.body),
            content_type="application/json",
            received_at=iso(item.at),
            hook_id=item.hook_id,
            repo=item.body["repository"]["full_name"],
            hook_target="repository" if item.hook_id else None,
        )
        transaction(db, partial(insert_batch, batch=[d]))
        drain(db, item.at, alerting=alerting)


def drain(db: Database, at: datetime, *, alerting: Alerting | None = None) -> int:
    after, seen = 0, 0
    while True:
        after, count, _ = transaction(
            db,
            partial(
                process_chunk,
                after_id=after,
                now=iso(at),
                statuses=("pending",),
                limit=500,
                alerting=alerting,
                clock_now=at if alerting else None,
            ),
        )
        if not count:
            return seen
        seen += count


def rescore(db: Database, at: datetime) -> None:
    """The daily rescore: every score as of ``at``."""
    after = 0
    while True:
        after, done, _ = transaction(
            db, partial(health_store.recompute_batch, after_id=after, now=at)
        )
        if not done:
            return


def prune(
    db: Database, days: int, at: datetime, *, budget: float = 1.0, **kw: Any
) -> retention.Pruner:
    pruner = retention.Pruner(**kw)
    transaction(db, lambda t: pruner.begin(t, days=days, now=at))
    while transaction(db, lambda t: pruner.step(t, now=at, budget=budget)):
        pass
    return pruner


def replay(db: Database, at: datetime) -> None:
    """What ``pulsehook replay`` does, at a known time."""
    transaction(db, clear_derived)
    drain(db, at)


def derived(db: Database) -> dict[str, list[str]]:
    """Every derived table (and the workflow items of the summary), row by row,
    without the columns replay cannot know."""
    tables = {t: f"SELECT * FROM {t}" for t in DERIVED_TABLES}
    tables["summary_items"] = "SELECT * FROM summary_items WHERE kind = 'workflow'"
    out = {}
    for table, sql in tables.items():
        skip = PROCESSING_TIME.get(table, set()) | SURROGATE.get(table, set())
        rows = [
            json.dumps({k: v for k, v in r.items() if k not in skip}, sort_keys=True, default=str)
            for r in db.query(sql)
        ]
        out[table] = sorted(rows)
    return out


def current(db: Database) -> dict[str, Any]:
    """What the service reads as the current state: every score's inputs, the
    repositories' summaries, and the tables that are current state only."""

    def rows(sql: str) -> list[str]:
        return sorted(str(tuple(r)) for r in db.execute(sql))

    ids = [r[0] for r in db.execute("SELECT id FROM repositories ORDER BY id")]
    full: dict[str, Any] = {
        t: rows(f"SELECT * FROM {t}") for t in ("repositories", "hooks", "workflow_state", "health")
    }
    full["items"] = rows("SELECT * FROM summary_items WHERE kind = 'workflow'")
    full["inputs"] = [str(health_store.inputs(db, i)) for i in ids]
    full["summaries"] = repos(db)
    return full


def counts(db: Database) -> dict[str, int]:
    return {
        t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
        for t in ("deliveries", *DERIVED_TABLES)
    }


# --- the design's promise ----------------------------------------------------------


def _stream_with_daily_prunes(
    tmp_path: Path, seed: int, days: int, keep: int, budget: float
) -> tuple[Database, datetime, Stream]:
    db = store(tmp_path / "p.db")
    stream = Stream(random.Random(seed))
    for day in range(days):
        receive(db, stream.days(day, day + 1))
        at = START + timedelta(days=day + 1)
        rescore(db, at)
        before = current(db)
        prune(db, keep, at, budget=budget)
        assert current(db) == before, f"day {day}: pruning changed the current state"
    return db, START + timedelta(days=days), stream


def test_after_daily_prunes_replay_rebuilds_exactly_the_current_state(tmp_path: Path) -> None:
    db, end, _ = _stream_with_daily_prunes(tmp_path, seed=1, days=12, keep=3, budget=1.0)
    rescore(db, end)
    pruned_state = derived(db)
    again = copy_of(db, tmp_path / "replayed.db")
    replay(again, end)
    replayed = derived(again)
    for table in pruned_state:
        assert replayed[table] == pruned_state[table], table
    # And the store is bounded: old deliveries went, history went with them.
    sizes = counts(db)
    assert sizes["deliveries"] < 0.6 * sum(1 for _ in Stream(random.Random(1)).days(0, 12))


def store_copy(path: Path) -> Database:
    return wrap(open_database(path))


def copy_of(db: Database, path: Path) -> Database:
    """A copy of the store as committed (its write-ahead log included)."""
    target = sqlite3.connect(path)
    db.conn.backup(target)
    target.close()
    return store_copy(path)


def test_without_pruning_replay_gives_the_same_state_too(tmp_path: Path) -> None:
    """The harness's own check: what replay cannot know is the same columns with or
    without pruning, so the comparison above hides nothing pruning does."""
    db = store(tmp_path / "p.db")
    stream = Stream(random.Random(1))
    receive(db, stream.days(0, 6))
    end = START + timedelta(days=6)
    rescore(db, end)
    live = derived(db)
    replay(db, end)
    assert derived(db) == live


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), keep=st.integers(3, 5))
def test_any_stream_and_retention_replays_to_the_pruned_state(
    tmp_path_factory: Any, seed: int, keep: int
) -> None:
    base = tmp_path_factory.mktemp("prop")
    # A zero budget: each turn does one thing, the smallest steps there are.
    db, end, _ = _stream_with_daily_prunes(base, seed=seed, days=keep + 4, keep=keep, budget=0.0)
    rescore(db, end)
    expected = derived(db)
    db.conn.close()
    again = store_copy(base / "p.db")
    replay(again, end)
    assert derived(again) == expected


def test_pruning_keeps_what_the_current_state_is_made_of(tmp_path: Path) -> None:
    db, end, stream = _stream_with_daily_prunes(tmp_path, seed=3, days=10, keep=3, budget=1.0)
    # The quiet repository (nothing since day 3) keeps its state: its workflows'
    # last runs, their summary items, its open alerts and pull requests, its score.
    quiet = db.execute("SELECT * FROM repositories WHERE id = 1000").fetchone()
    assert quiet is not None
    workflows = db.execute("SELECT workflow FROM workflow_state WHERE repo_id = 1000").fetchall()
    assert workflows
    for (workflow,) in workflows:
        path = f"{quiet['full_name']}/actions/{workflow}"
        assert db.execute("SELECT report FROM summary_items WHERE path = ?", (path,)).fetchone()
    opened = db.execute(
        "SELECT count(*) FROM vulnerabilities WHERE repo_id = 1000 AND state = 'open'"
    ).fetchone()[0]
    assert opened == len(stream.open_alerts[1000])
    # No delivery received within the retention went.
    cutoff = iso(end - timedelta(days=3))
    recent = db.execute("SELECT count(*) FROM deliveries WHERE received_at >= ?", (cutoff,))
    assert recent.fetchone()[0] == sum(1 for i in stream.items if iso(i.at) >= cutoff)
    # Builds older than the retention are gone, but for those the state reads.
    old = db.execute("SELECT count(*) FROM builds WHERE updated_at < ?", (cutoff,))
    old_builds = old.fetchone()[0]
    assert 0 < old_builds < sum(1 for i in stream.items if i.event == "workflow_run") / 3


def test_deliveries_pending_in_error_or_recent_are_never_pruned(tmp_path: Path) -> None:
    db = store(tmp_path / "p.db")
    stream = Stream(random.Random(5))
    receive(db, stream.days(0, 2))
    old = START + timedelta(hours=1)
    stored = [
        Delivery(
            guid=g,
            event="sponsorship",
            payload="{}",
            content_type="application/json",
            received_at=iso(old),
        )
        for g in ("stuck", "failed")
    ]
    transaction(db, lambda t: insert_batch(t, stored))
    db.execute("UPDATE deliveries SET status = 'error', error = 'boom' WHERE guid = 'failed'")
    at = START + timedelta(days=30)
    pruner = prune(db, 3, at)
    left = {r[0]: r[1] for r in db.execute("SELECT guid, status FROM deliveries")}
    assert left.get("stuck") == "pending" and left.get("failed") == "error"
    assert pruner.counts.deliveries > 0
    # A redelivery (same guid) of one received within the last 3 days is still known.
    receive(db, stream.days(2, 3))
    newest = "SELECT guid, received_at FROM deliveries ORDER BY id DESC LIMIT 1"
    latest = db.execute(newest).fetchone()
    prune(db, 3, datetime.fromisoformat(latest[1].replace("Z", "+00:00")) + timedelta(days=3))
    again = Delivery(
        guid=latest[0],
        event="push",
        payload="{}",
        content_type="application/json",
        received_at=latest[1],
    )
    assert transaction(db, lambda t: insert_batch(t, [again])) == [False]


def test_coverage_changes_are_measured_against_what_is_left(tmp_path: Path) -> None:
    db, end, _ = _stream_with_daily_prunes(tmp_path, seed=8, days=9, keep=3, budget=1.0)
    # The newest figure on each branch keeps its change; replay measures the rest alike.
    newest = {
        (r[0], r[1]): r[2]
        for r in db.execute(
            "SELECT repo_id, branch, delta FROM coverage c WHERE id = (SELECT id FROM coverage"
            " WHERE repo_id = c.repo_id AND branch IS c.branch ORDER BY at DESC, id DESC LIMIT 1)"
        )
    }
    assert any(v is not None for v in newest.values())
    expected = derived(db)["coverage"]
    db.conn.close()
    again = store_copy(tmp_path / "p.db")
    replay(again, end)
    assert derived(again)["coverage"] == expected


def _stored(db: Database, at: datetime, event: str, guid: str, body: dict[str, Any]) -> None:
    d = Delivery(guid, event, json.dumps(body), "application/json", iso(at))
    transaction(db, lambda t: insert_batch(t, [d]))


def _replayed_equals_pruned(db: Database, path: Path, at: datetime) -> None:
    prune(db, 3, at)
    rescore(db, at)
    expected = derived(db)
    again = copy_of(db, path)
    replay(again, at)
    assert derived(again) == expected


def test_a_delivery_in_error_keeps_its_rows_reproducible(tmp_path: Path) -> None:
    """Replay processes a delivery in error again: what it touches stays, with the
    delivery that decides it, even when that one came later."""
    db = store(tmp_path / "e.db")
    run = copy.deepcopy(payload("workflow_run.completed"))
    run["workflow_run"].update(head_branch="feature", updated_at=iso(START + timedelta(minutes=9)))
    started = copy.deepcopy(run)
    started["workflow_run"].update(
        status="in_progress", conclusion=None, updated_at=iso(START + timedelta(minutes=1))
    )
    _stored(db, START, "workflow_run", "started", started)
    # It failed when processed (a bug, since fixed): it never applied.
    db.execute("UPDATE deliveries SET status = 'error', error = 'boom' WHERE guid = 'started'")
    _stored(db, START + timedelta(minutes=9), "workflow_run", "done", run)
    push = copy.deepcopy(payload("push"))
    # The repository's newest word (a newer snapshot of it, too): the run's is not.
    push["repository"] = run["repository"] | {"updated_at": iso(START + timedelta(hours=1))}
    _stored(db, START + timedelta(hours=1), "push", "push", push)
    drain(db, START + timedelta(hours=1))
    (status,) = db.execute("SELECT status FROM builds").fetchone()
    assert status == "success"
    _replayed_equals_pruned(db, tmp_path / "r.db", START + timedelta(days=10))
    assert {r[0] for r in db.execute("SELECT guid FROM deliveries")} >= {"started", "done"}


def test_a_stale_snapshot_does_not_decide_the_repository_flags(tmp_path: Path) -> None:
    """Each payload carries the repository; the newest (by its updated_at) sets the
    flags, and the index follows which one did, not which came last."""
    db = store(tmp_path / "f.db")
    at = "2026-02-01T00:00:00Z"
    for n, (updated, private) in enumerate(
        [(at, False), (at, True), ("2026-01-01T00:00:00Z", False)]
    ):
        body = copy.deepcopy(payload("push"))
        body["repository"].update(updated_at=updated, private=private)
        body["head_commit"]["timestamp"] = iso(START + timedelta(minutes=n))
        body["after"] = f"{n:040x}"
        _stored(db, START + timedelta(minutes=n), "push", f"p{n}", body)
    drain(db, START + timedelta(hours=1))
    (private,) = db.execute("SELECT private FROM repositories").fetchone()
    assert private == 1  # the last payload's repository is older: it does not count
    _replayed_equals_pruned(db, tmp_path / "r.db", START + timedelta(days=10))


def _run(run_id: int, workflow: str, attempt: int, conclusion: str, at: datetime) -> dict[str, Any]:
    data = copy.deepcopy(payload("workflow_run.completed"))
    data["repository"]["default_branch"] = "main"
    data["workflow"]["name"] = workflow
    data["workflow_run"].update(
        id=run_id,
        name=workflow,
        head_branch="main",
        run_attempt=attempt,
        conclusion=conclusion,
        updated_at=iso(at),
        html_url=f"https://github.com/x/actions/runs/{run_id}/attempts/{attempt}",
    )
    return data


@pytest.mark.parametrize("renamed", [False, True])
def test_a_cancelled_rerun_of_a_workflows_last_run_stays_with_it(
    tmp_path: Path, renamed: bool
) -> None:
    """A re-run that was cancelled wins its run's row (a higher attempt) but not its
    workflow's state, nor its summary item: both still show the first attempt.
    Pruned newest first, the re-run comes first: it must stay with its run."""
    db = store(tmp_path / "c.db")
    # Before it: the repository's first word (so that the run decides nothing else).
    _stored(db, START - timedelta(hours=1), "workflow_run", "ci",
            _run(4999, "CI", 1, "success", START - timedelta(hours=1)))  # fmt: skip
    first = _run(5000, "Nightly", 1, "success", START)
    _stored(db, START, "workflow_run", "first", first)
    _stored(db, START + timedelta(hours=1), "workflow_run", "rerun",
            _run(5000, "Nightly", 2, "cancelled", START + timedelta(hours=1)))  # fmt: skip
    if renamed:
        # The repository is renamed and the workflow runs again: its item of the old
        # name still shows the first run, the workflow's state the new one.
        rename = copy.deepcopy(payload("repository.renamed"))
        rename["repository"] = first["repository"] | {"full_name": "octo-org/new-name"}
        _stored(db, START + timedelta(hours=2), "repository", "rename", rename)
        again = _run(5001, "Nightly", 1, "failure", START + timedelta(hours=3))
        again["repository"] = rename["repository"]
        _stored(db, START + timedelta(hours=3), "workflow_run", "again", again)
    for n in range(12):  # newer runs of another workflow: the score reads those
        at = START + timedelta(hours=4 + n)
        body = _run(6000 + n, "CI", 1, "success", at)
        if renamed:
            body["repository"] = rename["repository"]
        _stored(db, at, "workflow_run", f"ci{n}", body)
    drain(db, START + timedelta(days=1))
    (attempt,) = db.execute("SELECT attempt FROM builds WHERE run_id = 5000").fetchone()
    assert attempt == 2
    _replayed_equals_pruned(db, tmp_path / "r.db", START + timedelta(days=10))


def test_a_row_held_by_a_later_delivery_keeps_its_first_writer(tmp_path: Path) -> None:
    """Codecov's status stores a figure; a CI report of the same figure, later, only
    touches it (one measurement) and stays as its workflow's last run. The status,
    judged first, must stay too: without it, replay would store the report's."""
    db = store(tmp_path / "h.db")
    sha = "ab" * 20

    def status(n: int, value: float) -> dict[str, Any]:
        data = codecov_status(
            f"{value:.2f}% (+0.10%) compared to abc1234", iso(START + timedelta(hours=n))
        )
        data.update(sha=sha if n == 0 else f"{n:040x}")
        data["branches"][0].update(name="main")
        data["branches"][0]["commit"]["sha"] = data["sha"]
        data["repository"].update(default_branch="main", updated_at=iso(START + timedelta(hours=n)))
        return data

    first = status(0, 80.0)
    _stored(db, START, "status", "s0", first)
    report = {
        "repository": first["repository"] | {"updated_at": iso(START + timedelta(hours=1))},
        "workflow": "deploy",
        "status": "success",
        "at": iso(START),
        "coverage": 80.0,
        "sha": sha,
        "id": "r1",
    }
    _stored(db, START + timedelta(hours=1), "pulsehook.report", "r1", report)
    for n in (2, 3):  # newer figures: the first is neither the newest nor the one before
        _stored(db, START + timedelta(hours=n), "status", f"s{n}", status(n, 80.0 + n))
    drain(db, START + timedelta(hours=4))
    sources = {r[0] for r in db.execute("SELECT source FROM coverage WHERE sha = ?", (sha,))}
    assert sources == {"status"}  # one measurement, as Codecov's status stored it
    _replayed_equals_pruned(db, tmp_path / "r.db", START + timedelta(days=10))


def test_a_late_event_of_an_old_run_keeps_the_run_whole(tmp_path: Path) -> None:
    """A recent delivery touching an old run (a late event, a scan listing it again)
    is replayed: the run's row stays, and so does the delivery that decides it."""
    db = store(tmp_path / "l.db")
    done = _run(7100, "CI", 1, "success", START)
    done["workflow_run"]["head_branch"] = "feature"
    late = copy.deepcopy(done)
    late["workflow_run"].update(status="in_progress", conclusion=None,
                                updated_at=iso(START - timedelta(minutes=5)))  # fmt: skip
    _stored(db, START, "workflow_run", "done", done)
    push = copy.deepcopy(payload("push"))
    push["repository"] = done["repository"] | {"updated_at": iso(START + timedelta(hours=1))}
    _stored(db, START + timedelta(hours=1), "push", "push", push)
    at = START + timedelta(days=10)
    _stored(db, at - timedelta(days=1), "workflow_run", "late", late)
    drain(db, at - timedelta(days=1))
    _replayed_equals_pruned(db, tmp_path / "r.db", at)
    assert {r[0] for r in db.execute("SELECT guid FROM deliveries")} == {"done", "push", "late"}


def test_open_alerts_and_pull_requests_stay_whatever_their_age(tmp_path: Path) -> None:
    """Closed alerts and pull requests are history; open ones are the current state
    (a score counts them): they stay with the deliveries that say so."""
    db = store(tmp_path / "v.db")
    repo = copy.deepcopy(payload("dependabot_alert.created")["repository"])
    for n in range(3):
        at = START + timedelta(hours=n)
        alert = copy.deepcopy(payload("dependabot_alert.created"))
        alert["alert"].update(number=n + 1, created_at=iso(at), updated_at=iso(at))
        alert["repository"] = repo | {"updated_at": iso(at)}
        _stored(db, at, "dependabot_alert", f"a{n}", alert)
        pr = copy.deepcopy(payload("pull_request.opened"))
        pr["number"] = 10 + n
        pr["pull_request"].update(number=10 + n, title=f"Bump x{n} from 1 to 2", updated_at=iso(at))
        pr["pull_request"]["user"].update(login="dependabot[bot]", type="Bot")
        pr["repository"] = alert["repository"]
        _stored(db, at, "pull_request", f"p{n}", pr)
    push = copy.deepcopy(payload("push"))
    push["repository"] = repo | {"updated_at": iso(START + timedelta(hours=5))}
    _stored(db, START + timedelta(hours=5), "push", "push", push)  # the repository's newest
    drain(db, START + timedelta(hours=5))
    _replayed_equals_pruned(db, tmp_path / "r.db", START + timedelta(days=10))
    states = db.execute("SELECT state, count(*) FROM vulnerabilities GROUP BY state").fetchall()
    assert [tuple(r) for r in states] == [("open", 3)]
    assert db.execute("SELECT count(*) FROM dependency_prs WHERE state = 'open'").fetchone()[0] == 3


def test_a_delivery_processed_during_a_run_finds_what_went_gone(tmp_path: Path) -> None:
    """A run's rows go with the delivery that decided them, in one turn: a late event
    of a pruned run, processed during the run, finds nothing, as it will in replay."""
    db = store(tmp_path / "d.db")
    done = _run(7000, "CI", 1, "success", START)
    done["workflow_run"]["head_branch"] = "feature"  # history: no score reads it
    started = copy.deepcopy(done)
    started["workflow_run"].update(status="in_progress", conclusion=None,
                                   updated_at=iso(START - timedelta(minutes=5)))  # fmt: skip
    _stored(db, START, "workflow_run", "done", done)
    push = copy.deepcopy(payload("push"))
    push["repository"] = done["repository"] | {"updated_at": iso(START + timedelta(hours=1))}
    _stored(db, START + timedelta(hours=1), "push", "push", push)
    drain(db, START + timedelta(hours=1))
    at = START + timedelta(days=10)
    pruner = retention.Pruner()
    transaction(db, lambda t: pruner.begin(t, days=3, now=at))
    while pruner.phase(db) != "rows":
        assert transaction(db, lambda t: pruner.step(t, now=at, budget=0.0))
    assert db.execute("SELECT count(*) FROM builds WHERE run_id = 7000").fetchone()[0] == 0
    _stored(db, at, "workflow_run", "late", started)  # GitHub's late word on that run
    drain(db, at)
    while transaction(db, lambda t: pruner.step(t, now=at, budget=0.0)):
        pass
    rescore(db, at)
    expected = derived(db)
    again = copy_of(db, tmp_path / "r.db")
    replay(again, at)
    assert derived(again) == expected


# --- alert history -------------------------------------------------------------------


RULES = """
[[rule]]
name = "build_failure"
condition = "build.status == 'failure' and build.branch == 'main'"
channels = ["slack", "discord"]

[[rule]]
name = "bot_pushes"
condition = "push.author == 'dependabot[bot]' or push.commits > 0"
channels = ["slack"]
frequency = "daily_digest"

[channels.slack]
webhook_url = "${SLACK_WEBHOOK_URL}"
"""


def alerting(tmp_path: Path) -> Alerting:
    from pulsehook.rules.load import load_rules

    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "rules.toml").write_text(RULES)
    rules = load_rules(tmp_path / "rules", {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/hook"})
    return Alerting(rules=rules, policy=Policy())


def test_alert_history_goes_by_age_except_what_is_still_needed(tmp_path: Path) -> None:
    from pulsehook.alerts import digest

    db = store(tmp_path / "a.db")
    alerts = alerting(tmp_path)
    stream = Stream(random.Random(2))
    for day in range(10):
        receive(db, stream.days(day, day + 1), alerting=alerts)
        at = START + timedelta(days=day + 1)
        if day < 9:  # the last day's entries wait for tomorrow's digest
            transaction(db, partial(digest.run_due, rules=alerts.rules, now=at, tz="UTC"))

        # The dispatcher sends Slack's notices (Discord is not configured: parked).
        def sent(t: Database, at: datetime = at) -> None:
            t.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ? WHERE status = 'pending'"
                " AND channel = 'slack' AND id % 5 != 0",
                (iso(at),),
            )

        transaction(db, sent)
        rescore(db, at)
    end = START + timedelta(days=10)
    cutoff = iso(end - timedelta(days=3))
    ended = silence_store.create(
        db, rule=None, repo=None, starts_at=START, ends_at=START + timedelta(days=1),
        cron=None, duration=None, comment="ended", now=START,
    )  # fmt: skip
    active = silence_store.create(
        db, rule="x", repo=None, starts_at=START, ends_at=None,
        cron=None, duration=None, comment="open-ended", now=START,
    )  # fmt: skip
    recurring = silence_store.create(
        db, rule="y", repo=None, starts_at=START, ends_at=None, cron="0 2 * * *",
        duration=timedelta(hours=1), comment="nightly", now=START,
    )  # fmt: skip

    def rows(sql: str) -> list[Any]:
        return db.execute(sql).fetchall()

    firing = rows("SELECT key FROM alerts WHERE state = 'firing' AND rule = 'build_failure'")
    waiting = rows("SELECT id FROM outbox WHERE status IN ('pending', 'parked')")
    needed = rows(
        "SELECT key FROM alerts WHERE key IN (SELECT alert_key FROM outbox"
        " WHERE status IN ('pending', 'parked')) OR key IN (SELECT alert_key FROM digest_entries"
        " WHERE digest_id IS NULL) OR key IN (SELECT m.alert_key FROM notice_members m"
        " JOIN outbox o ON o.id = m.outbox_id WHERE o.status IN ('pending', 'parked'))"
    )
    waiting_members = rows(
        "SELECT m.id FROM notice_members m JOIN outbox o ON o.id = m.outbox_id"
        " WHERE o.status IN ('pending', 'parked')"
    )
    old_members = rows(
        "SELECT m.id FROM notice_members m JOIN outbox o ON o.id = m.outbox_id"
        f" WHERE o.status = 'sent' AND o.created_at < '{cutoff}'"
    )
    pending_entries = rows("SELECT id FROM digest_entries WHERE digest_id IS NULL")
    old = {
        "outbox": rows(f"SELECT id FROM outbox WHERE status = 'sent' AND created_at < '{cutoff}'"),
        "digest_entries": rows(
            f"SELECT id FROM digest_entries WHERE digest_id IS NOT NULL AND at < '{cutoff}'"
        ),
        "alert_events": rows(f"SELECT id FROM alert_events WHERE at < '{cutoff}'"),
        "alerts": rows(
            f"SELECT key FROM alerts WHERE last_seen_at < '{cutoff}'"
            " AND (state = 'resolved' OR rule = 'bot_pushes')"
        ),
        "health_history": rows(f"SELECT id FROM health_history WHERE at < '{cutoff}'"),
    }
    assert firing and waiting and pending_entries and all(old.values()), old
    assert waiting_members and old_members  # grouped notices name their alerts
    assert rows("SELECT count(*) FROM outbox WHERE status = 'parked'")[0][0]

    pruner = prune(db, 3, end, event_rules=frozenset({"bot_pushes"}))

    # What is still needed stays: open alerts (with the record of their start),
    # notices not sent yet or parked, pending digest entries and their alerts,
    # silences that have not ended.
    assert set(firing) <= set(rows("SELECT key FROM alerts"))
    assert set(waiting) <= set(rows("SELECT id FROM outbox"))
    assert set(needed) <= set(rows("SELECT key FROM alerts"))
    assert set(pending_entries) <= set(rows("SELECT id FROM digest_entries"))
    for (key,) in firing:
        assert rows(f"SELECT 1 FROM alert_events WHERE alert_key = '{key}' AND event = 'fired'")
    assert {r[0] for r in rows("SELECT id FROM silences")} == {active, recurring}
    assert ended not in {r[0] for r in rows("SELECT id FROM silences")}
    # The rest of the history older than the retention is gone.
    assert not rows(f"SELECT id FROM outbox WHERE status = 'sent' AND created_at < '{cutoff}'")
    assert not rows(
        f"SELECT id FROM digest_entries WHERE digest_id IS NOT NULL AND at < '{cutoff}'"
    )
    assert not rows(f"SELECT id FROM digests WHERE created_at < '{cutoff}'")
    left_alerts = {r[0] for r in rows("SELECT key FROM alerts")}
    assert not {k for (k,) in old["alerts"]} - {k for (k,) in needed} & left_alerts
    # Each repository keeps the record of its last score.
    assert rows("SELECT count(DISTINCT repo_id) FROM health_history") == rows(
        "SELECT count(DISTINCT repo_id) FROM health"
    )
    assert all(pruner.counts.rows.get(t) for t in old), pruner.counts.rows
    # The alerts a notice named go with it, and stay while it waits.
    left_members = set(rows("SELECT id FROM notice_members"))
    assert set(waiting_members) <= left_members
    assert not set(old_members) & left_members
    assert not rows(
        "SELECT 1 FROM notice_members m WHERE NOT EXISTS"
        " (SELECT 1 FROM outbox o WHERE o.id = m.outbox_id)"
    )


# --- in the service: a daily sweep of short writer turns ------------------------------


def _filled(path: Path, days: int) -> Stream:
    db = store(path)
    stream = Stream(random.Random(4))
    receive(db, stream.days(0, days))
    db.conn.close()
    return stream


def _scheduler(writer: Writer, clock: FrozenClock, sweep: float, days: int = 3) -> Scheduler:
    return Scheduler(
        writer,
        RuleSet(),
        clock,
        timezone="UTC",
        on_notices=lambda: None,
        sweep_seconds=sweep,
        retention_days=days,
    )


def _phase(writer: Writer) -> str | None:
    return writer.submit(lambda db: retention.Pruner().phase(db)).result(timeout=10)


def test_the_sweep_runs_in_turns_with_intake_between_and_logs_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _filled(tmp_path / "w.db", 8)
    writer = SqliteWriter(tmp_path / "w.db")
    clock = FrozenClock(START + timedelta(days=8))
    try:
        scheduler = _scheduler(writer, clock, 0.0)
        order: list[str] = []

        async def go() -> int:
            await scheduler.tick()  # the first pass after the start begins the day's run
            assert _phase(writer) is not None
            turns = 1
            while _phase(writer) is not None:
                assert await scheduler.seconds_to_next() == 0.0  # the next turn comes at once
                gate = threading.Event()

                def intake(db: Tx, gate: threading.Event = gate) -> None:
                    order.append("intake")
                    gate.set()

                writer.submit(intake, URGENT)
                await scheduler.retention_chunk()
                order.append("turn")
                assert gate.is_set()  # a delivery's commit waited one turn at most
                turns += 1
            return turns

        with caplog.at_level(logging.INFO, logger="pulsehook.schedule.runner"):
            turns = asyncio.run(go())
        assert turns > 50  # a zero budget: one delivery, row or batch per turn
        assert order[:4] == ["intake", "turn", "intake", "turn"]
        assert _phase(writer) is None
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention")]
        assert len(lines) == 1 and " deliveries (" in lines[0] and "builds" in lines[0], lines
        # Done for today; the next day's pass runs again.
        asyncio.run(scheduler.tick())
        assert _phase(writer) is None
        clock.advance(timedelta(days=1, seconds=1))
        asyncio.run(scheduler.tick())
        assert _phase(writer) is not None
    finally:
        writer.close()


def test_a_run_cut_short_by_a_restart_goes_on_where_it_was(tmp_path: Path) -> None:
    _filled(tmp_path / "w.db", 8)
    shutil.copy(tmp_path / "w.db", tmp_path / "whole.db")
    at = START + timedelta(days=8)
    writer = SqliteWriter(tmp_path / "w.db")
    try:
        first = _scheduler(writer, FrozenClock(at), 0.0)

        async def some() -> None:
            await first.tick()
            for _ in range(300):  # then "the process dies"
                await first.retention_chunk()

        asyncio.run(some())
        assert _phase(writer) in ("judge", "settle", "delete", "rows")
        later = _scheduler(writer, FrozenClock(at + timedelta(hours=1)), 10.0)

        async def rest() -> int:
            await later.tick()  # the same day: no new run, the old one goes on
            turns = 1
            while _phase(writer) is not None:
                await later.retention_chunk()
                turns += 1
            return turns

        assert asyncio.run(rest()) <= len(retention.PHASES)  # long turns: a phase each
        resumed = derived(wrap(writer.db.conn))
    finally:
        writer.close()
    # The same as one run from start to end (but for the scores: the scheduler's own
    # daily rescore ran too).
    whole = store_copy(tmp_path / "whole.db")
    prune(whole, 3, at)
    assert {**derived(whole), "health": []} == {**resumed, "health": []}


def test_a_retention_under_three_days_is_refused(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "w.db")
    try:
        with pytest.raises(ConfigError, match="at least 3 days"):
            _scheduler(writer, FrozenClock(), 0.0, days=2)
        _scheduler(writer, FrozenClock(), 0.0, days=0)  # 0 keeps everything
    finally:
        writer.close()
    result = CliRunner().invoke(main, ["prune", "--data-dir", str(tmp_path), "--days", "1"])
    assert result.exit_code == 2 and "at least 3 days" in result.output


# --- pulsehook prune -----------------------------------------------------------------


@pytest.mark.sqlite_only("it fills and copies SQLite files")
def test_prune_command_prints_what_it_pruned_and_replay_still_works(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # Stored long ago: everything but what the state is made of is past 90 days.
    _filled(data / "pulsehook.db", 6)
    runner = CliRunner()
    dry = runner.invoke(main, ["prune", "--data-dir", str(data), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would prune" in dry.output
    before = counts(store_copy(data / "pulsehook.db"))
    result = runner.invoke(main, ["prune", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    after = counts(store_copy(data / "pulsehook.db"))
    assert after["deliveries"] < before["deliveries"] and after["builds"] < before["builds"]
    pruned = before["deliveries"] - after["deliveries"]
    assert _counted(result.output)["deliveries"] == pruned, result.output
    assert "bytes freed" in result.output and "builds" in result.output
    # The dry run counted what went, table by table, and changed nothing.
    real = _counted(result.output)
    real.pop("coverage changes")  # re-based after the deletions: a dry run deletes nothing
    assert _counted(dry.output) == real
    again = runner.invoke(main, ["replay", "--data-dir", str(data)])
    assert again.exit_code == 0, again.output


def _counted(output: str) -> dict[str, int]:
    """The command's counts: ``  name  N ...`` lines."""
    found = {}
    for line in output.splitlines():
        if line.startswith("  ") and (parts := line.split("  ")):
            words = [w for w in parts if w.strip()]
            found[words[0].strip()] = int(words[1].split()[0])
    return found


def test_prune_with_retention_off_prunes_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["prune", "--data-dir", str(tmp_path), "--days", "0"])
    assert result.exit_code == 0 and "retention is off" in result.output
