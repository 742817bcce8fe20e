"""The metrics API in the seed's shape, CI reports, the API token and the OpenAPI document."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.routing import Mount, Route

from pulsehook.app import create_app
from pulsehook.settings import Settings
from pulsehook.web.openapi import document

from .conftest import API_TOKEN, AUTH, SECRET, deliver, drained, live, payload, wait_for

TOKEN = "ci-token"


def run(run_id: int, conclusion: str, updated: str) -> dict[str, Any]:
    data = copy.deepcopy(payload("workflow_run.completed"))
    data["workflow_run"].update(id=run_id, conclusion=conclusion, updated_at=updated)
    return data


def critical() -> dict[str, Any]:
    data = copy.deepcopy(payload("dependabot_alert.created"))
    data["alert"]["security_advisory"]["severity"] = "critical"
    data["repository"] = copy.deepcopy(payload("workflow_run.completed")["repository"])
    return data


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    settings = Settings(
        data_dir=tmp_path / "data",
        rules_dir=tmp_path / "none",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        heartbeat_tokens=SecretStr(TOKEN),
    )
    with (
        live(create_app(settings)) as srv,
        httpx.Client(base_url=srv.url, headers=AUTH, timeout=10) as c,
    ):
        for i, outcome in enumerate(["success", "failure", "success", "cancelled"]):
            deliver(c, "workflow_run", run(1000 + i, outcome, f"2020-10-05T1{i}:00:00Z"))
        deliver(c, "dependabot_alert", critical())
        wait_for(lambda: drained(c))
        yield c


def test_repo_in_the_seed_shape(client: httpx.Client) -> None:
    body = client.get("/api/v1/repos/octo-org/octo-repo").json()
    assert body["name"] == "octo-org/octo-repo"
    assert isinstance(body["health_score"], float)
    metrics = body["metrics"]
    assert set(metrics) == {"build_status", "coverage", "dependencies", "last_commit"}
    # The guide's three figures, and whether a dependency graph backs the total.
    assert set(metrics["dependencies"]) == {"total", "outdated", "vulnerable", "graph"}
    assert metrics["dependencies"]["vulnerable"] == 1
    # No graph read (no scan): the total is unknown, never a count of alerts.
    assert metrics["dependencies"]["total"] is None
    assert metrics["dependencies"]["graph"] == "unknown"
    assert metrics["build_status"] == "success"  # the latest counted run; cancelled says nothing
    assert "No coverage data for octo-org/octo-repo" in body["warnings"]
    assert body["stale"] is False  # pulsehook heard of it just now
    # The bare name works when it is unique.
    assert client.get("/api/v1/repos/octo-repo").json()["name"] == "octo-org/octo-repo"
    listed = client.get("/api/v1/repos").json()
    assert listed["count"] == 1 and listed["repos"][0]["name"] == "octo-org/octo-repo"


def test_metrics_components_and_history(client: httpx.Client) -> None:
    body = client.get("/api/v1/repos/octo-org/octo-repo/metrics").json()
    build = body["components"]["build"]
    assert build["reason"] == "1 of 3 builds failed"
    assert body["components"]["security"]["score"] == 0  # the critical cap
    assert body["components"]["coverage"]["score"] is None
    assert body["history"] and body["formula_version"] == 1


def test_issue_activity_feeds_the_activity_score_and_bots_do_not(
    client: httpx.Client,
) -> None:
    octo = copy.deepcopy(payload("workflow_run.completed")["repository"])
    opened = copy.deepcopy(payload("issues.opened")) | {"repository": octo}
    deliver(client, "issues", opened)
    # Later, a bot's comment: recorded, but not a sign of life.
    comment = copy.deepcopy(payload("issue_comment.created")) | {"repository": octo}
    comment["comment"] |= {"updated_at": "2019-06-01T00:00:00Z"}
    comment["sender"] = comment["comment"]["user"] = {"login": "stale[bot]", "type": "Bot"}
    deliver(client, "issue_comment", comment)
    wait_for(lambda: drained(client))
    activity = client.get("/api/v1/repos/octo-org/octo-repo/metrics").json()["components"][
        "activity"
    ]
    assert activity["inputs"]["last_issue_activity_at"] == "2019-05-15T15:20:18Z"
    assert activity["reason"].startswith("last issue activity ")
    listed = client.get("/api/v1/deliveries", params={"event": "issues"}).json()
    assert [d["status"] for d in listed["deliveries"]] == ["processed"]


def test_unknown_repository_is_404(client: httpx.Client) -> None:
    for path in (
        "/api/v1/repos/nobody/nothing",
        "/api/v1/repos/nothing",
        "/api/v1/repos/nobody/nothing/metrics",
    ):
        answer = client.get(path)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"


def test_overview_vulnerabilities_and_builds(client: httpx.Client) -> None:
    overview = client.get("/api/v1/health").json()
    assert overview["repositories"] == 1 and overview["vulnerabilities"]["critical"] == 1
    vulns = client.get("/api/v1/vulnerabilities", params={"severity": "critical"}).json()
    assert [v["repo"] for v in vulns["vulnerabilities"]] == ["octo-org/octo-repo"]
    assert client.get("/api/v1/vulnerabilities", params={"severity": "low"}).json()["count"] == 0
    assert client.get("/api/v1/vulnerabilities", params={"severity": "nope"}).status_code == 422
    failed = client.get("/api/v1/builds", params={"status": "failure"}).json()
    assert [b["run_id"] for b in failed["builds"]] == [1001]


def test_ci_report_feeds_build_and_coverage(client: httpx.Client) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    report = {
        "repo": "octo-org/octo-repo",
        "workflow": "External CI",
        "status": "failure",
        "coverage": 91.5,
        "id": "job-7",
        "branch": "master",
    }
    assert client.post("/api/v1/report", json=report, headers=auth).status_code == 202
    assert client.post("/api/v1/report", json=report, headers=auth).status_code == 200
    wait_for(lambda: drained(client))
    body = client.get("/api/v1/repos/octo-org/octo-repo").json()
    assert body["metrics"]["coverage"] == 91.5
    assert body["metrics"]["build_status"] == "failure"
    assert client.post("/api/v1/report", json=report).status_code == 401
    unknown = client.post("/api/v1/report", json=report | {"repo": "x/y"}, headers=auth)
    assert unknown.status_code == 404 and "pulsehook scan" in unknown.json()["error"]["message"]
    bad = client.post(
        "/api/v1/report", json={"repo": "octo-org/octo-repo", "coverage": 140}, headers=auth
    )
    assert bad.status_code == 400


def test_api_token_protects_the_api(tmp_path: Path) -> None:
    token = "s3-token-0123456789"
    settings = Settings(
        data_dir=tmp_path / "data",
        rules_dir=tmp_path / "none",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(token),
    )
    right = {"Authorization": f"Bearer {token}"}
    silence = {"rule": "build_failure", "duration": "1h"}
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        denied = c.get("/api/v1/health")
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
        assert denied.headers["www-authenticate"].startswith("Bearer")
        assert c.get("/api/v1/health", headers=right).status_code == 200
        assert c.get("/api/v1/health", headers={"Authorization": "Bearer"}).status_code == 401
        assert c.get("/healthz").status_code == 200  # liveness stays open
        assert c.get("/api/v1/openapi.json").status_code == 200
        # A cross-site form or text/plain POST is refused before any credential.
        forged = c.post(
            "/api/v1/silences",
            content=b'{"rule": "build_failure", "duration": "8760h"}',
            headers={"Content-Type": "text/plain"} | right,
        )
        assert forged.status_code == 415
        assert c.post("/api/v1/silences", json=silence).status_code == 401
        assert c.post("/api/v1/silences", json=silence, headers=right).status_code == 201


def test_open_reads_open_reads_only(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        rules_dir=tmp_path / "none",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        open_reads=True,
    )
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.get("/api/v1/health").status_code == 200
        silence = {"rule": "build_failure", "duration": "1h"}
        assert c.post("/api/v1/silences", json=silence).status_code == 401
        assert c.post("/api/v1/silences", json=silence, headers=AUTH).status_code == 201


def test_without_a_token_nothing_of_the_api_is_open(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", webhook_secret=SecretStr(SECRET))
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.get("/api/v1/health").status_code == 401
        assert c.get("/").status_code == 401
        assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize("token", ["", "   ", "short"])
def test_an_empty_or_short_api_token_is_refused(token: str) -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings(api_token=SecretStr(token))


def _paths(routes: list[Any], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for route in routes:
        if isinstance(route, Mount):
            continue  # the pulseox compatibility prefix is GitHub's API, not ours
        if isinstance(route, Route):
            found.add(prefix + re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))
    return found


def test_openapi_describes_every_api_route(tmp_path: Path) -> None:
    app = create_app(
        Settings(
            data_dir=tmp_path, webhook_secret=SecretStr(SECRET), api_token=SecretStr(API_TOKEN)
        )
    )
    routes = {
        p
        for p in _paths(app.routes)
        if p.startswith(("/api/", "/webhooks/", "/healthz", "/readyz", "/summary.", "/metrics"))
    }
    described = set(document()["paths"])
    assert routes == described
