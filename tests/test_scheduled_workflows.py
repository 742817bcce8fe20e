"""Scheduled workflows watched with nothing declared: the service against a GitHub
stand-in serving real workflow files, with a frozen clock.

A scan reads each repository's workflows and the crons of their files; every
scheduled one becomes a summary item that goes MISSING after a missed run, a
workflow GitHub disabled raises an alert (resolved when it is active again), one
GitHub is about to disable is warned of, a push that changes a workflow file is
read again between scans, and an [[expect]] overrides what a file says.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pulsehook.app import create_app
from pulsehook.clock import FrozenClock, iso
from pulsehook.rules.load import RulesInvalid, load_rules
from pulsehook.rules.model import GROUP_WINDOW
from pulsehook.settings import Settings

from .conftest import API_TOKEN, AUTH, SECRET, deliver, drained, live, payload, wait_for
from .github_standin import TOKEN, FakeGitHub, standin, workflow, workflow_file
from .standins import Receiver, receiver

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SHIPPED = Path(__file__).parent.parent / "rules"
NIGHTLY = "acme/api/actions/Nightly backup"
REPORTS = "acme/api/actions/Reports"


def watched(gh: FakeGitHub) -> None:
    """acme/api: a nightly backup, weekday and Sunday reports, a release run by hand,
    CI on pushes, and a file that is not valid YAML. acme/web, public and idle since
    early January: a weekly cleanup GitHub is about to disable, and a stale job it
    has disabled."""
    api, web = gh.sites["acme/api"], gh.sites["acme/web"]
    files = {
        "nightly-backup.yml": "Nightly backup",
        "reports.yml": "Reports",
        "release.yml": "Release",
        "ci.yml": "CI",
        "broken.yml": "Broken",
    }
    for n, (file, name) in enumerate(files.items(), start=1):
        api.workflows.append(workflow(api.repo, 500 + n, name, file))
        api.files[f".github/workflows/{file}"] = workflow_file(file)
    web.repo.update(private=False, pushed_at="2026-01-05T10:00:00Z")
    cleanup = workflow_file("nightly-backup.yml").replace("Nightly backup", "Weekly cleanup")
    stale = workflow_file("reports.yml").replace("Reports", "Stale job")
    web.files[".github/workflows/cleanup.yml"] = cleanup.replace('"0 3 * * *"', '"0 4 * * 1"')
    web.files[".github/workflows/stale.yml"] = stale
    web.workflows += [
        workflow(web.repo, 601, "Weekly cleanup", "cleanup.yml"),
        workflow(web.repo, 602, "Stale job", "stale.yml", state="disabled_inactivity"),
    ]


def settings(tmp_path: Path, gh: FakeGitHub, rules: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        rules_dir=rules,
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        github_token=SecretStr(TOKEN),
        github_api_url=gh.url,
        scan_org="acme",
        scan_interval=1,
        graph_refresh_seconds=0.2,
        recovery_check_seconds=0.2,
    )


def shipped_rules(tmp_path: Path, extra: str = "") -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(SHIPPED, rules)
    if extra:
        (rules / "overrides.toml").write_text(extra)
    return rules


@dataclass
class Running:
    gh: FakeGitHub
    slack: Receiver
    clock: FrozenClock
    client: httpx.Client

    def items(self, **params: Any) -> dict[str, dict[str, Any]]:
        found = self.client.get("/api/v1/summary/items", params=params)
        assert found.status_code == 200, found.text
        return {i["path"]: i for i in found.json()["items"]}

    def alerts(self) -> dict[tuple[str, str], dict[str, Any]]:
        listed = self.client.get("/api/v1/alerts", params={"limit": 200}).json()["alerts"]
        return {(a["rule"], a["subject"]): a for a in listed}

    def said(self, channel: str = "slack") -> str:
        return "\n".join(str(body) for body in self.slack.delivered(channel))

    def nudge(self, guid: str, name: str = "CI", path: str = ".github/workflows/ci.yml") -> None:
        """A finished run of acme/api (a change, so the summary is regenerated now)."""
        data = copy.deepcopy(payload("workflow_run.completed"))
        data["repository"].update(
            full_name="acme/api", id=70001, name="api", default_branch="master"
        )
        data["workflow"].update(name=name, path=path)
        data["workflow_run"].update(
            id=abs(hash(guid)) % 10**9,
            name=name,
            path=path,
            head_branch="master",
            conclusion="success",
            updated_at=iso(self.clock.now()),
        )
        assert deliver(self.client, "workflow_run", data, guid=guid).status_code == 202
        wait_for(lambda: drained(self.client), timeout=20)


@contextmanager
def running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra_rules: str = "", graphql: bool = True
) -> Iterator[Running]:
    clock = FrozenClock(NOW)
    with standin() as gh, receiver() as slack:
        gh.graphql = graphql
        monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{slack.url}/hook/slack")
        monkeypatch.setenv("ONCALL_WEBHOOK_URL", f"{slack.url}/hook/oncall")
        watched(gh)
        app = create_app(settings(tmp_path, gh, shipped_rules(tmp_path, extra_rules)), clock=clock)
        with live(app) as srv, httpx.Client(base_url=srv.url, headers=AUTH, timeout=10) as client:
            yield Running(gh, slack, clock, client)


def test_a_nightly_workflow_goes_missing_after_a_missed_night_with_nothing_declared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(tmp_path, monkeypatch) as svc:
        wait_for(lambda: NIGHTLY in svc.items(implicit="true"), timeout=30)
        items = svc.items(implicit="true")
        nightly = items[NIGHTLY]
        assert nightly["schedule"] == ["0 3 * * *"] and nightly["timezone"] == "UTC"
        assert nightly["source"] == ".github/workflows/nightly-backup.yml"
        assert nightly["grace_seconds"] == 3600 and nightly["declared"] is False
        # Two schedules, the earliest next one holds.
        assert items[REPORTS]["schedule"] == ["30 5 * * 1-5", "0 12 * * 0"]
        # Run by hand or on pushes only, or unreadable: nothing is expected of them.
        assert not {f"acme/api/actions/{n}" for n in ("Release", "CI", "Broken")} & set(items)
        # A disabled workflow is no expectation (it is an alert instead).
        assert "acme/web/actions/Stale job" not in items
        # Known at 12:00, due by the next 03:00 plus the hour's grace.
        assert nightly["due_at"] == "2026-03-03T04:00:00Z"
        mark = "(scheduled 0 3 * * * UTC in .github/workflows/nightly-backup.yml)"
        wait_for(lambda: mark in svc.client.get("/summary.md").text, timeout=20)

        # A minute before the deadline, still OK.
        svc.clock.set(datetime(2026, 3, 3, 3, 59, tzinfo=UTC))
        svc.nudge("g-before")
        wait_for(lambda: svc.items()[NIGHTLY]["status"] == "OK", timeout=20)
        assert "Nightly backup" not in svc.said()
        # The night passed with no run: MISSING, and Slack is told.
        svc.clock.set(datetime(2026, 3, 3, 4, 1, tzinfo=UTC))
        svc.nudge("g-after")
        wait_for(lambda: svc.items(status="MISSING").get(NIGHTLY) is not None, timeout=20)
        wait_for(lambda: "Nightly backup" in svc.said(), timeout=20)
        alert = svc.alerts()[("summary_missing", NIGHTLY)]
        assert alert["state"] == "firing"
        page = svc.client.get("/repos/acme/api")
        assert page.status_code == 200 and "Scheduled and expected" in page.text
        assert "implicit: <code>.github/workflows/nightly-backup.yml</code>" in page.text
        # The late run comes, named by its run (run-name) but matched by its file.
        svc.nudge(
            "g-late", name="Backup of 2026-03-03", path=".github/workflows/nightly-backup.yml"
        )
        wait_for(lambda: svc.items()[NIGHTLY]["status"] == "OK", timeout=20)
        wait_for(lambda: svc.alerts()[("summary_missing", NIGHTLY)]["state"] == "resolved")
        assert "acme/api/actions/Backup of 2026-03-03" not in svc.items()


def test_a_workflow_github_disabled_raises_an_alert_resolved_when_active_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = ("workflow_disabled", "workflow:.github/workflows/stale.yml")
    idle = ("workflow_inactive", "workflow:.github/workflows/cleanup.yml")
    with running(tmp_path, monkeypatch) as svc:
        wait_for(lambda: stale in svc.alerts(), timeout=30)
        wait_for(lambda: idle in svc.alerts(), timeout=20)
        # Past the grouping window of the first notices sent at start.
        svc.clock.advance(GROUP_WINDOW + timedelta(seconds=1))
        wait_for(lambda: "Stale job" in svc.said(), timeout=20)
        assert (
            "GitHub disabled Stale job in acme/web after 60 days without activity"
            " — re-enable it" in svc.said()
        )
        assert svc.alerts()[stale]["state"] == "firing"
        # Idle 56 days, still active: a warning before GitHub disables it.
        assert svc.alerts()[idle]["severity"] == "warning"
        assert "no activity for 56 days" in svc.said()
        # A scheduled workflow of a private repository is never disabled for inactivity;
        # acme/api was pushed to yesterday: neither is warned of.
        subjects = {s for r, s in svc.alerts() if r == "workflow_inactive"}
        assert subjects == {idle[1]}
        # Someone re-enables it, and pushes; the next day's scan sees both.
        web = svc.gh.sites["acme/web"]
        web.workflows[1]["state"] = "active"
        web.repo["pushed_at"] = iso(NOW + timedelta(hours=2))
        svc.clock.advance(timedelta(days=1, minutes=1))
        wait_for(lambda: svc.alerts()[stale]["state"] == "resolved", timeout=30)
        wait_for(lambda: svc.alerts()[idle]["state"] == "resolved", timeout=20)
        # Active again, it is expected at its crons like any other.
        wait_for(lambda: "acme/web/actions/Stale job" in svc.items(implicit="true"), timeout=20)


@pytest.mark.parametrize("graphql", [True, False], ids=["graphql", "rest"])
def test_a_push_that_changes_a_workflow_file_is_read_at_once_and_only_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, graphql: bool
) -> None:
    """Through GraphQL (its own rate limit) or, where it does not answer, REST."""
    with running(tmp_path, monkeypatch, graphql=graphql) as svc:
        wait_for(lambda: "acme/web/actions/Weekly cleanup" in svc.items(), timeout=30)
        wait_for(lambda: NIGHTLY in svc.items(implicit="true"), timeout=30)
        read = svc.gh.files_read()
        assert len(read) == len(set(read)) == 7  # each file once: 5 of acme/api, 2 of acme/web
        rest_files = [p for _, p, _ in svc.gh.calls if "/git/blobs/" in p or "/contents/" in p]
        assert bool(rest_files) is not graphql  # no REST request for a file GraphQL gave
        # A day on, every repository is rescanned; nothing changed: no file is read,
        # the workflow lists answer 304, and the directory is not asked again.
        seen, files_seen = len(svc.gh.calls), len(read)
        svc.clock.advance(timedelta(days=1, minutes=1))
        wait_for(
            lambda: sum("/actions/workflows" in p for _, p, _ in svc.gh.calls[seen:]) >= 2,
            timeout=30,
        )
        wait_for(lambda: "/orgs/acme/repos" in "".join(svc.gh.paths()[seen:]), timeout=30)
        later = svc.gh.calls[seen:]
        assert len(svc.gh.files_read()) == files_seen
        listings = [
            code for _, p, code in later if p.startswith("/repos/acme/api/actions/workflows")
        ]
        assert listings and set(listings) == {304}
        assert not [p for _, p, _ in later if p == "/graphql" or "/contents/" in p]
        # The nightly moves to 02:30, pushed to the default branch: read between scans.
        api = svc.gh.sites["acme/api"]
        moved = workflow_file("nightly-backup.yml").replace('"0 3 * * *"', '"30 2 * * *"')
        api.files[".github/workflows/nightly-backup.yml"] = moved
        push = copy.deepcopy(payload("push"))
        push["repository"].update(full_name="acme/api", id=70001, name="api")
        push["repository"]["default_branch"] = "main"
        push["ref"] = "refs/heads/main"
        push["commits"][0].update(added=[], modified=[".github/workflows/nightly-backup.yml"])
        assert deliver(svc.client, "push", push, guid="g-push").status_code == 202
        wait_for(lambda: svc.items()[NIGHTLY]["schedule"] == ["30 2 * * *"], timeout=20)
        assert svc.gh.files_read()[files_seen:] == [api.blob(moved)]  # the changed file alone


OVERRIDES = """
[channels.oncall]
kind = "slack"
webhook_url = "${ONCALL_WEBHOOK_URL}"

[[expect]]
repo = "acme/api"
workflow = "Nightly backup"
grace = "3h"
channel = "oncall"

[[expect]]
repo = "acme/api"
workflow = "Reports"
ignore = true
"""


def test_an_expect_overrides_an_implicit_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running(tmp_path, monkeypatch, OVERRIDES) as svc:
        wait_for(lambda: NIGHTLY in svc.items(), timeout=30)
        wait_for(lambda: svc.items()[NIGHTLY]["source"] is not None, timeout=20)
        nightly, reports = svc.items()[NIGHTLY], svc.items()[REPORTS]
        # Its schedule still comes from the file; the grace and the channel from the rules.
        assert nightly["schedule"] == ["0 3 * * *"] and nightly["implicit"] is True
        assert nightly["grace_seconds"] == 3 * 3600 and nightly["channels"] == ["oncall"]
        assert nightly["due_at"] == "2026-03-03T06:00:00Z"
        assert reports["ignored"] is True and reports["schedule"] is None
        assert reports["due_at"] is None
        svc.clock.set(datetime(2026, 3, 3, 6, 1, tzinfo=UTC))
        svc.nudge("g-late")
        wait_for(lambda: "Nightly backup" in svc.said("oncall"), timeout=20)
        assert "Nightly backup" not in svc.said("slack")
        assert svc.items()[REPORTS]["status"] == "OK"  # ignored: never MISSING


def rules_with(tmp_path: Path, text: str) -> list[str]:
    """The problems ``load_rules`` finds in a rules directory holding ``text``."""
    rules = tmp_path / "rules-check"
    rules.mkdir(exist_ok=True)
    (rules / "expect.toml").write_text(text)
    try:
        load_rules(rules, {})
    except RulesInvalid as exc:
        return list(exc.problems)
    return []


def test_an_override_is_checked_like_any_expectation(tmp_path: Path) -> None:
    base = '[[expect]]\nrepo = "acme/api"\nworkflow = "Nightly backup"\n'
    assert rules_with(tmp_path, base + 'grace = "3h"\n') == []
    assert rules_with(tmp_path, base + "ignore = true\n") == []
    [unknown] = rules_with(tmp_path, base + 'channel = "pager"\n')
    assert "unknown channel 'pager'" in unknown and "Nightly backup" in unknown
    [ignore] = rules_with(tmp_path, base + 'ignore = "yes"\n')
    assert "ignore must be true or false" in ignore
    [channel] = rules_with(tmp_path, base + "channel = 3\n")
    assert "channel must be a channel name" in channel
    # A heartbeat has no file to take a schedule from.
    [heartbeat] = rules_with(tmp_path, '[[expect]]\nrepo = "acme/api"\npath = "jobs/x.md"\n')
    assert "bad schedule None" in heartbeat
