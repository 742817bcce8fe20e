"""The summary end to end over loopback, with the real, unmodified pulseox package:
its client reports to pulsehook's GitHub-contents-compatible API, its dashboard
reads pulsehook's summary; heartbeats and workflow runs show in the summary too."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from pulseox.client import PulseOxClient  # type: ignore[import-untyped]
from pulseox.dashboard import PulseOxDashboard  # type: ignore[import-untyped]
from pydantic import SecretStr

from pulsehook.app import create_app
from pulsehook.settings import Settings

from .conftest import API_TOKEN, AUTH, deliver, live, payload, wait_for

TOKEN = "tok"
EXPECT = """\
[[expect]]
owner = "octo"
repo = "status"
path = "jobs/backup.md"
schedule = "10m"
"""
BACKUP = "octo/status/jobs/backup.md"
RESTORE = "octo/status/jobs/restore.md"
CRON = "octo/status/jobs/cron.md"
WORKFLOW = "octo-org/octo-repo/actions/test"


def make_settings(tmp_path: Path, **extra: Any) -> Settings:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "expect.toml").write_text(EXPECT)
    options: dict[str, Any] = {
        "heartbeat_tokens": SecretStr(TOKEN),
        "summary_debounce_seconds": 0.05,
    } | extra
    return Settings(
        data_dir=tmp_path / "data",
        rules_dir=rules,
        webhook_secret=SecretStr("s"),
        api_token=SecretStr(API_TOKEN),
        **options,
    )


@dataclass
class Env:
    url: str
    client: httpx.Client
    settings: Settings

    def statuses(self) -> dict[str, str]:
        """path -> status, from the latest /summary.md.json ({} before the first)."""
        response = self.client.get("/summary.md.json")
        if response.status_code == 503:
            return {}
        status = response.json()["summary"]["status"]
        return {path: name for name, group in status.items() for path in group}

    def wait_status(self, path: str, expected: str) -> None:
        wait_for(lambda: self.statuses().get(path) == expected, timeout=5)

    def contents(self, path: str, token: str = TOKEN) -> httpx.Response:
        return self.client.get(
            f"/pulseox/repos/octo/status/contents/{path}",
            headers={"Authorization": f"token {token}"},
        )

    def put(self, path: str, body: dict[str, Any], token: str = TOKEN) -> httpx.Response:
        return self.client.put(
            f"/pulseox/repos/octo/status/contents/{path}",
            json=body,
            headers={"Authorization": f"token {token}"},
        )


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    settings = make_settings(tmp_path)
    with (
        live(create_app(settings)) as server,
        httpx.Client(base_url=server.url, headers=AUTH) as client,
    ):
        monkeypatch.setenv("DEFAULT_PULSEOX_URL", f"{server.url}/pulseox")
        yield Env(server.url, client, settings)


def md_sections(body: str) -> dict[str, str]:
    """path -> the section it is listed under in summary.md (Changes aside)."""
    found: dict[str, str] = {}
    section = ""
    for line in body.split("\n"):
        if line.startswith("# "):
            section = line[2:]
        elif (match := re.match(r"^- \[([^\]]+)\]\(", line)) and section != "Changes":
            found[match.group(1)] = section
    return found


def git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def test_pulseox_client_reports_and_dashboard_reads_the_summary(env: Env) -> None:
    client = PulseOxClient(token=TOKEN, show_tz="UTC")
    created = client.post("octo", "status", "jobs/backup.md", "content", report="GOOD", note="fine")
    assert created.status_code == 201, created.text
    updated = client.post("octo", "status", "jobs/backup.md", "again", report="GOOD", note="fine")
    assert updated.status_code == 200, updated.text
    bad = client.post("octo", "status", "jobs/restore.md", "log", report="BAD", note="disk full")
    assert bad.status_code == 201, bad.text
    env.wait_status(BACKUP, "OK")
    env.wait_status(RESTORE, "ERROR")

    dashboard = PulseOxDashboard(token=TOKEN, owner="pulsehook", repo="summary").get_remote_data()
    seen = {path: name for name, group in dashboard.summary.status.items() for path in group}
    assert seen[BACKUP] == "OK" and seen[RESTORE] == "ERROR"
    assert seen == env.statuses()
    assert md_sections(env.client.get("/summary.md").text) == seen
    assert dashboard.summary.status["ERROR"][RESTORE].note == "disk full"
    assert dashboard.summary.status["ERROR"][RESTORE].report == "BAD"
    assert dashboard.summary.status["OK"][BACKUP].note == "fine"
    assert len(dashboard.spec_list) == len(seen)
    assert dashboard.summary.text == env.client.get("/summary.md").text
    assert dashboard.previous_summary is not None  # the summary before the latest

    # The summary files in the data directory are what HTTP serves.
    def files_match() -> bool:
        return all(
            (env.settings.data_dir / name).is_file()
            and (env.settings.data_dir / name).read_text() == env.client.get(f"/{name}").text
            for name in ("summary.md", "summary.org", "summary.md.json")
        )

    wait_for(files_match, timeout=5)
    org = env.client.get("/summary.org")
    assert org.text.startswith("* ") and "* ERROR\n\n- [[" in org.text
    assert env.client.get("/summary.md").headers["content-type"].startswith("text/markdown")
    assert json.loads((env.settings.data_dir / "summary.md.json").read_text())["owner"] == (
        "pulsehook"
    )


def test_wrong_token_is_refused(env: Env) -> None:
    response = PulseOxClient(token="wrong", show_tz="UTC").post(
        "octo", "status", "jobs/backup.md", "content", report="GOOD"
    )
    # pulseox does not raise: it hands back the PUT's response.
    assert response.status_code == 401
    assert response.json()["message"] == "Bad credentials"
    assert env.contents("jobs/backup.md").status_code == 200  # declared: synthesized
    assert (
        "report: NOT_REPORTED"
        in base64.b64decode(env.contents("jobs/backup.md").json()["content"]).decode()
    )
    with pytest.raises(requests.HTTPError) as raised:
        PulseOxDashboard(token="wrong", owner="pulsehook", repo="summary").get_remote_data()
    assert raised.value.response is not None
    assert raised.value.response.status_code == 401


def test_workflow_runs_appear_in_the_summary(env: Env) -> None:
    run: dict[str, Any] = copy.deepcopy(payload("workflow_run.completed"))
    run["workflow_run"].update(id=1, conclusion="success", updated_at="2026-03-10T12:00:00Z")
    assert deliver(env.client, "workflow_run", run, secret="s").status_code == 202
    env.wait_status(WORKFLOW, "OK")
    failed = copy.deepcopy(run)
    failed["workflow_run"].update(id=2, conclusion="failure", updated_at="2026-03-10T13:00:00Z")
    assert deliver(env.client, "workflow_run", failed, secret="s").status_code == 202
    env.wait_status(WORKFLOW, "ERROR")
    body = env.client.get("/summary.md").text
    assert md_sections(body)[WORKFLOW] == "ERROR"
    assert f"- [{WORKFLOW}](https://github.com/octo-org/octo-repo/actions/runs/" in body
    assert "failure (repository_dispatch)" in body
    # Seen through the contents API too, as a pulseox report file.
    synthesized = env.client.get(
        "/pulseox/repos/octo-org/octo-repo/contents/actions/test",
        headers={"Authorization": f"token {TOKEN}"},
    )
    assert synthesized.status_code == 200
    assert "- report: BAD" in base64.b64decode(synthesized.json()["content"]).decode()


def test_plain_heartbeats(env: Env) -> None:
    url = "/api/v1/heartbeats/octo/status/jobs/cron.md"
    report = {"report": "BAD", "note": "exit 1"}
    accepted = env.client.post(url, json=report, headers={"Authorization": f"Bearer {TOKEN}"})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"path": CRON, "report": "BAD", "note": "exit 1", "run_seconds": None}
    env.wait_status(CRON, "ERROR")
    assert f"- [{CRON}]({CRON}) exit 1 " in env.client.get("/summary.md").text
    assert env.client.post(url, json=report).status_code == 401
    wrong = env.client.post(url, json=report, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "unauthorized"
    invalid = env.client.post(
        url, json={"report": "MEH"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert invalid.status_code == 400
    good = env.client.post(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert good.status_code == 202 and good.json()["report"] == "GOOD"
    env.wait_status(CRON, "OK")


def test_heartbeats_without_configured_tokens_are_disabled(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, heartbeat_tokens=None)
    with (
        live(create_app(settings)) as server,
        httpx.Client(base_url=server.url, headers=AUTH) as client,
    ):
        response = client.post(
            "/api/v1/heartbeats/octo/status/jobs/cron.md",
            json={"report": "GOOD"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "heartbeats_disabled"


def test_contents_api_behaves_like_github(env: Env) -> None:
    PulseOxClient(token=TOKEN, show_tz="UTC").post(
        "octo", "status", "jobs/backup.md", "hello", report="GOOD", note="fine"
    )
    got = env.contents("jobs/backup.md")
    assert got.status_code == 200
    data = got.json()
    content = base64.b64decode(data["content"])
    assert content.decode().startswith("hello\n\n# Metadata\n- report: GOOD\n- updated: ")
    assert content.decode().endswith(" UTC\n- note: fine")
    assert data["sha"] == git_blob_sha(content)
    assert (data["type"], data["encoding"], data["path"], data["name"]) == (
        "file",
        "base64",
        "jobs/backup.md",
        "backup.md",
    )
    assert data["size"] == len(content)

    new = base64.b64encode(b"x\n\n# Metadata\n- report: GOOD\n").decode()
    stale = env.put("jobs/backup.md", {"message": "m", "content": new, "sha": "0" * 40})
    assert stale.status_code == 409
    missing_sha = env.put("jobs/backup.md", {"message": "m", "content": new})
    assert missing_sha.status_code == 422
    assert base64.b64decode(env.contents("jobs/backup.md").json()["content"]) == content
    fresh = env.put("jobs/backup.md", {"message": "m", "content": new, "sha": data["sha"]})
    assert fresh.status_code == 200
    assert fresh.json()["content"]["sha"] == git_blob_sha(b"x\n\n# Metadata\n- report: GOOD\n")
    assert env.contents("jobs/backup.md").json()["sha"] == fresh.json()["content"]["sha"]

    assert env.contents("jobs/nothing-here.md").status_code == 404
    assert env.contents("jobs/backup.md", token="wrong").status_code == 401
    unauthenticated = env.client.get("/pulseox/repos/octo/status/contents/jobs/backup.md")
    assert unauthenticated.status_code == 401


def test_published_specs_address_their_report_files(env: Env) -> None:
    """A spec pulseox loads from the summary can be re-checked by pulseox itself."""
    client = PulseOxClient(token=TOKEN, show_tz="UTC")
    assert client.post("octo", "status", "jobs/backup.md", "x", note="fine").status_code == 201
    run: dict[str, Any] = copy.deepcopy(payload("workflow_run.completed"))
    run["workflow_run"].update(conclusion="failure")
    deliver(env.client, "workflow_run", run, secret="s")
    env.wait_status(BACKUP, "OK")
    env.wait_status(WORKFLOW, "ERROR")
    dashboard = PulseOxDashboard(token=TOKEN, owner="pulsehook", repo="summary").get_remote_data()
    published = {(s.owner, s.repo, s.path): (s.report, s.note) for s in dashboard.spec_list}
    for spec in dashboard.spec_list:
        spec.update(token=TOKEN, base_url=f"{env.url}/pulseox")
    rechecked = {(s.owner, s.repo, s.path): (s.report, s.note) for s in dashboard.spec_list}
    assert rechecked == published


def test_item_turns_missing_at_its_deadline_without_other_activity(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    (settings.rules_dir / "fast.toml").write_text(
        '[[expect]]\nrepo = "octo/status"\npath = "jobs/fast.md"\nschedule = "2s"\n'
    )
    fast = "octo/status/jobs/fast.md"
    with (
        live(create_app(settings)) as server,
        httpx.Client(base_url=server.url, headers=AUTH) as client,
    ):
        env = Env(server.url, client, settings)
        beat = client.post(
            "/api/v1/heartbeats/octo/status/jobs/fast.md",
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert beat.status_code == 202
        env.wait_status(fast, "OK")
        # Nothing else happens: the summarizer wakes up at the deadline by itself.
        env.wait_status(fast, "MISSING")
        assert f"- [{fast}]({fast}) OK --> MISSING " in client.get("/summary.md").text


def test_restart_carries_the_previous_summary(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    url = "/api/v1/heartbeats/octo/status/jobs/cron.md"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with (
        live(create_app(settings)) as server,
        httpx.Client(base_url=server.url, headers=AUTH) as client,
    ):
        env = Env(server.url, client, settings)
        assert client.post(url, json={"report": "BAD"}, headers=auth).status_code == 202
        env.wait_status(CRON, "ERROR")
        wait_for(
            lambda: (
                (settings.data_dir / "summary.md.json").read_text()
                == client.get("/summary.md.json").text
            )
        )
        last = client.get("/summary.md.json").json()["summary"]
    with (
        live(create_app(settings)) as server,
        httpx.Client(base_url=server.url, headers=AUTH) as client,
    ):
        env = Env(server.url, client, settings)
        wait_for(lambda: bool(env.statuses()))
        document = client.get("/summary.md.json").json()
        assert document["previous_summary"] == last
        assert env.statuses()[CRON] == "ERROR"
        # Nothing changed across the restart: no Changes section.
        assert "# Changes" not in document["summary"]["text"]
