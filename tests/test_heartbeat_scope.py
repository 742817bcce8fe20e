"""Heartbeat and report tokens scoped to repositories, webhook items kept from
heartbeats, bounded notes and report fields, and the summary's bounded caches —
against the app served on loopback."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pulseox.client import PulseOxClient  # type: ignore[import-untyped]
from pydantic import SecretStr
from starlette.applications import Starlette

from pulsehook.app import create_app
from pulsehook.errors import ConfigError
from pulsehook.settings import Settings

from .builders import workflow_run
from .conftest import API_TOKEN, AUTH, SECRET, deliver, drained, live, wait_for

EVERYWHERE = "open-token-0001"
SCOPED = "scoped-token-0002"  # octo/status and anything of team/
CI = "ci-token-0003"  # octo-org/*
TOKENS = f"{EVERYWHERE}, {SCOPED}@octo/status;Team/*, {CI}@octo-org/*"
WORKFLOW = "octo-org/octo-repo/actions/test"
EXPECT = '[[expect]]\nrepo = "octo/status"\npath = "jobs/backup.md"\nschedule = "1h"\n'


@dataclass
class Env:
    client: httpx.Client
    app: Starlette
    url: str

    def beat(self, repo: str, path: str, token: str, **body: Any) -> httpx.Response:
        return self.client.post(
            f"/api/v1/heartbeats/{repo}/{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )

    def report(self, token: str, **body: Any) -> httpx.Response:
        return self.client.post(
            "/api/v1/report", json=body, headers={"Authorization": f"Bearer {token}"}
        )

    def put(self, repo: str, path: str, token: str, note: str = "fine") -> httpx.Response:
        content = f"body\n\n# Metadata\n- report: GOOD\n- note: {note}\n".encode()
        return self.client.put(
            f"/pulseox/repos/{repo}/contents/{path}",
            json={"message": "m", "content": base64.b64encode(content).decode()},
            headers={"Authorization": f"token {token}"},
        )

    def summary(self) -> str:
        response = self.client.get("/summary.md")
        return response.text if response.status_code == 200 else ""

    def statuses(self) -> dict[str, str]:
        response = self.client.get("/summary.md.json")
        if response.status_code != 200:
            return {}
        groups = response.json()["summary"]["status"]
        return {path: name for name, group in groups.items() for path in group}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "expect.toml").write_text(EXPECT)
    settings = Settings(
        data_dir=tmp_path / "data",
        rules_dir=rules,
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        heartbeat_tokens=SecretStr(TOKENS),
        summary_debounce_seconds=0.02,
    )
    app = create_app(settings)
    with live(app) as server, httpx.Client(base_url=server.url, headers=AUTH) as client:
        # A failing default-branch run: the webhook-kept item, and a known repository.
        assert deliver(client, "workflow_run", workflow_run(1, "failure")).status_code == 202
        wait_for(lambda: drained(client))
        env = Env(client, app, server.url)
        wait_for(lambda: env.statuses().get(WORKFLOW) == "ERROR")
        yield env


def refused(response: httpx.Response, status: int, code: str) -> str:
    """The refusal's message, after checking it names no token."""
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    for token in (EVERYWHERE, SCOPED, CI):
        assert token not in response.text
    message: str = response.json()["error"]["message"]
    return message


def test_scoped_token_heartbeats_only_for_its_repositories(env: Env) -> None:
    assert env.beat("octo", "status/jobs/a.md", SCOPED, note="mine").status_code == 202
    # Case-insensitive, like GitHub's names; "Team/*" covers every team repository.
    assert env.beat("Octo", "Status/jobs/b.md", SCOPED).status_code == 202
    assert env.beat("team", "anything/jobs/c.md", SCOPED).status_code == 202
    for repo in ("octo/other", "octopus/status", "other/status"):
        message = refused(env.beat(repo, "jobs/x.md", SCOPED, note="forged"), 403, "forbidden")
        assert message == f"this token may not report for {repo}"
    # Unknown or missing tokens stay 401, whatever the repository.
    refused(env.beat("octo/status", "jobs/a.md", "nope"), 401, "unauthorized")
    refused(env.beat("octo/status", "jobs/a.md", f"{SCOPED}@*"), 401, "unauthorized")
    assert env.client.post("/api/v1/heartbeats/octo/status/jobs/a.md").status_code == 401
    # The unscoped token reports anywhere, as before.
    assert env.beat("other", "status/jobs/x.md", EVERYWHERE, note="open").status_code == 202
    wait_for(lambda: "other/status/jobs/x.md" in env.statuses())
    paths = env.statuses()
    assert "octo/status/jobs/a.md" in paths and "team/anything/jobs/c.md" in paths
    assert not any(p.startswith(("octo/other/", "octopus/")) for p in paths)
    assert "forged" not in env.summary()


def test_scoped_token_reports_only_for_its_repositories(env: Env) -> None:
    build = {"repo": "octo-org/octo-repo", "status": "success", "workflow": "External"}
    refused(env.report(SCOPED, **build), 403, "forbidden")
    # Refused before the lookup: an out-of-scope token cannot tell known from unknown.
    unknown = env.report(SCOPED, **build | {"repo": "nobody/nothing"})
    assert "nobody/nothing" in refused(unknown, 403, "forbidden")
    assert env.report(CI, **build | {"id": "r1"}).status_code == 202
    assert env.report(CI, **build | {"repo": "Octo-Org/octo-repo"}).status_code != 403
    assert env.report(EVERYWHERE, **build | {"id": "r2"}).status_code == 202
    refused(env.report("nope", **build), 401, "unauthorized")
    wait_for(lambda: env.statuses().get("octo-org/octo-repo/actions/External") == "OK")


def test_scoped_token_writes_pulseox_files_only_for_its_repositories(env: Env) -> None:
    assert env.put("octo/status", "jobs/p.md", SCOPED).status_code == 201
    denied = env.put("octo-org/octo-repo", "jobs/p.md", SCOPED)
    assert denied.status_code == 403
    assert denied.json()["message"] == "this token may not report for octo-org/octo-repo"
    assert SCOPED not in denied.text
    # Nothing was stored for the refused write; the unscoped token may read it back.
    got = env.client.get(
        "/pulseox/repos/octo-org/octo-repo/contents/jobs/p.md",
        headers={"Authorization": f"token {EVERYWHERE}"},
    )
    assert got.status_code == 404
    # Reads of other repositories' files are scoped too; the summary is every token's.
    other = env.client.get(
        "/pulseox/repos/octo-org/octo-repo/contents/actions/test",
        headers={"Authorization": f"token {SCOPED}"},
    )
    assert other.status_code == 403
    summary = env.client.get(
        "/pulseox/repos/pulsehook/summary/contents/summary.md.json",
        headers={"Authorization": f"token {SCOPED}"},
    )
    assert summary.status_code == 200
    assert env.put("anyone/anything", "jobs/p.md", EVERYWHERE).status_code == 201
    refused(env.put("octo/status", "jobs/q.md", "nope"), 401, "unauthorized")


def test_pulseox_client_with_a_scoped_token(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEFAULT_PULSEOX_URL", f"{env.url}/pulseox")
    client = PulseOxClient(token=SCOPED, show_tz="UTC")
    assert client.post("octo", "status", "jobs/r.md", "x", note="ok").status_code == 201
    assert client.post("octo", "status", "jobs/r.md", "y", note="ok").status_code == 200
    assert client.post("elsewhere", "status", "jobs/r.md", "x").status_code == 403


def test_heartbeat_never_overrides_a_webhook_item(env: Env) -> None:
    for token in (EVERYWHERE, CI):
        forged = env.beat("octo-org", "octo-repo/actions/test", token, note="forged")
        assert "is kept by webhooks" in refused(forged, 409, "conflict")
    pulseox = env.put("octo-org/octo-repo", "actions/test", EVERYWHERE, note="forged")
    assert pulseox.status_code == 409 and pulseox.json()["error"]["code"] == "conflict"
    # The workflow items' namespace: no claiming a path before its first build, and
    # no look-alike next to an existing one.
    for path in ("actions/deploy", "Actions/test"):
        forged = env.beat("octo-org", f"octo-repo/{path}", EVERYWHERE, note="forged")
        refused(forged, 409, "conflict")
    # Heartbeats still report for a declared item and for their own.
    assert env.beat("octo", "status/jobs/backup.md", SCOPED, note="declared").status_code == 202
    assert env.beat("octo", "status/jobs/own.md", SCOPED, report="BAD").status_code == 202
    assert env.beat("octo", "status/jobs/own.md", SCOPED, note="later").status_code == 202
    wait_for(lambda: env.statuses().get("octo/status/jobs/own.md") == "OK")
    statuses = env.statuses()
    assert statuses[WORKFLOW] == "ERROR"
    assert statuses["octo/status/jobs/backup.md"] == "OK"
    assert not any("deploy" in p or "/Actions/" in p for p in statuses)
    body = env.summary()
    assert "forged" not in body
    assert "failure (repository_dispatch)" in body
    # A later build still changes the item: webhooks keep it, heartbeats do not.
    deliver(env.client, "workflow_run", workflow_run(2, "success", "2026-01-01T11:00:00Z"))
    wait_for(lambda: env.statuses().get(WORKFLOW) == "OK")


def test_notes_and_fields_are_bounded(env: Env) -> None:
    path = "status/jobs/long.md"
    assert env.beat("octo", path, SCOPED, note="n" * 1024).status_code == 202
    # Trimmed first: surrounding spaces do not count.
    assert env.beat("octo", path, SCOPED, note=f"  {'t' * 1024}\n").status_code == 202
    message = refused(env.beat("octo", path, SCOPED, note="x" * 1025), 422, "too_long")
    assert "note" in message and "1024" in message
    # Bytes, not characters: 513 two-byte characters are 1,026 bytes.
    refused(env.beat("octo", path, SCOPED, note="é" * 513), 422, "too_long")
    refused(env.beat("octo", path, SCOPED, note={"a": 1}), 400, "bad_request")
    long = env.client.post(
        f"/api/v1/heartbeats/octo/{path}",
        params={"note": "q" * 1025},
        headers={"Authorization": f"Bearer {SCOPED}"},
    )
    refused(long, 422, "too_long")
    huge = env.client.post(
        f"/api/v1/heartbeats/octo/{path}",
        content=b'{"note": "' + b"z" * 100_000 + b'"}',
        headers={"Authorization": f"Bearer {SCOPED}", "Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    refused(env.beat("octo", "status/" + "p" * 600, SCOPED), 422, "invalid")
    refused(env.beat("octo", "status/jobs/a%01b.md", SCOPED), 422, "invalid")
    assert env.put("octo/status", "jobs/long.md", SCOPED, note="y" * 1025).status_code == 422

    build = {"repo": "octo-org/octo-repo", "status": "success"}
    for field, value, code in [
        ("workflow", "w" * 257, "too_long"),
        ("job", "j" * 257, "too_long"),
        ("branch", "b" * 257, "too_long"),
        ("id", "i" * 129, "too_long"),
        ("url", "https://example.com/" + "u" * 2048, "too_long"),
        ("url", "javascript:alert(1)", "invalid"),
        ("url", "ftp://example.com/x", "invalid"),
        ("sha", "not-a-sha", "invalid"),
        ("sha", "a" * 65, "invalid"),
        ("workflow", ["a", "list"], "invalid"),
        ("workflow", "two\nlines", "invalid"),
        ("run_id", "9" * 5000, "invalid"),
        ("attempt", -1, "invalid"),
    ]:
        message = refused(env.report(CI, **build | {field: value}), 422, code)
        assert field in message
    fine = {
        "workflow": "w" * 256,
        "id": "i" * 128,
        "url": "https://ci.example.com/runs/7",
        "sha": "a" * 40,
        "run_id": "123",
    }
    assert env.report(CI, **build | fine).status_code == 202
    wait_for(lambda: env.statuses().get("octo/status/jobs/long.md") == "OK")
    body = env.summary()
    assert "t" * 1024 in body and "x" * 1025 not in body and "q" * 1025 not in body


def test_summary_caches_stay_bounded(env: Env) -> None:
    summarizer = env.app.state.runtime.summarizer
    paths, versions = 20, 40
    for version in range(versions):
        for i in range(paths):
            beat = env.beat("octo", f"status/jobs/c{i}.md", SCOPED, note=f"v{version} {i}")
            assert beat.status_code == 202
    last = f"v{versions - 1} {paths - 1}"
    wait_for(lambda: last in env.summary())
    limit = summarizer.cache_limit()
    # Every version parsed was an entry; the bound keeps far fewer than were made.
    assert paths * versions > limit
    entries = summarizer.cache_entries()
    assert all(0 <= n <= limit for n in entries.values()), (entries, limit)
    assert summarizer.caches_emptied >= 1
    # Only the current summary is kept, and it lists every item once.
    assert summarizer.latest.items == len(env.statuses())


def test_malformed_scopes_are_refused_without_echoing_them() -> None:
    for raw in ("hunter2@zz9", "hunter2@", "hunter2@zz9/", "@zz9/x", "hunter2@zz9/x;"):
        with pytest.raises(ConfigError) as raised:
            Settings(heartbeat_tokens=SecretStr(f"fine, {raw}")).heartbeat_scopes()
        assert "entry 2" in str(raised.value)
        assert "hunter2" not in str(raised.value) and "zz9" not in str(raised.value)
    scoped = Settings(heartbeat_tokens=SecretStr("a@b@*, c@Octo/*;x/y")).heartbeat_scopes()
    assert scoped == [(b"a@b", ("*",)), (b"c", ("octo/*", "x/y"))]
    assert Settings(heartbeat_tokens=SecretStr("a@b@*, c")).heartbeat_token_list() == [
        b"a@b",
        b"c",
    ]
