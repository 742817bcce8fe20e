"""The scan and recovery wired to the store, against the GitHub REST stand-in on loopback."""

from __future__ import annotations

import copy
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from pulsehook import EcosystemMonitor
from pulsehook.app import create_app
from pulsehook.cli import main
from pulsehook.clock import FrozenClock
from pulsehook.settings import Settings

from . import stores
from .conftest import API_TOKEN, AUTH, SECRET, deliver, drained, live, payload, wait_for
from .github_standin import ORG, TOKEN, standin

SEED_RULES = Path(__file__).parent.parent / "rules"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(SEED_RULES, tmp_path / "rules")
    stores.create(tmp_path / "data" / "pulsehook.db")  # the service ran once
    for name, value in {
        "PULSEHOOK_DATA_DIR": str(tmp_path / "data"),
        "PULSEHOOK_RULES_DIR": str(tmp_path / "rules"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    return tmp_path


@pytest.mark.sqlite_only("EcosystemMonitor reads a pulsehook.db file")
def test_scan_command_fills_the_store(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with standin() as gh:
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        result = CliRunner().invoke(main, ["scan", "--org", ORG, "--api-url", gh.url])
        assert result.exit_code == 0, result.output
        assert "scanned 3 repositories" in result.output
        assert TOKEN not in result.output
        again = CliRunner().invoke(main, ["scan", "--org", ORG, "--api-url", gh.url])
        assert again.exit_code == 0, again.output
    monitor = EcosystemMonitor(org=ORG, db=env / "data" / "pulsehook.db")
    builds = monitor.get_build_statuses()
    assert set(builds) == {"acme/api", "acme/web", "acme/legacy"}
    assert builds["acme/api"].state == "failure" and builds["acme/api"].last_run
    vulns = monitor.scan_vulnerabilities()
    assert any(v.severity == "critical" and v.repo == "acme/api" for v in vulns)
    api = monitor.check_repo("api")
    assert api.score is not None
    assert api.components["coverage"]["score"] == 87.5
    assert "failed" in api.components["build"]["reason"]
    legacy = monitor.check_repo("acme/legacy")
    assert legacy.components["activity"]["reason"] == "archived: not maintained"
    # A second scan of unchanged repositories stores nothing twice.

    with stores.connect(env / "data" / "pulsehook.db") as conn:
        guids = [g for (g,) in conn.execute("SELECT guid FROM deliveries")]
        statuses = {s for (s,) in conn.execute("SELECT DISTINCT status FROM deliveries")}
    assert len(guids) == len(set(guids))
    assert statuses <= {"processed", "ignored"}


def test_rate_limit_without_token_says_what_to_do(env: Path) -> None:
    with standin() as gh:
        gh.limit(5, reset=int(datetime.now(UTC).timestamp()) + 3600)
        result = CliRunner().invoke(main, ["scan", "--org", ORG, "--api-url", gh.url])
    assert result.exit_code == 1
    assert "GitHub API rate limit exceeded — set GITHUB_TOKEN" in result.output


def test_scan_needs_a_target(env: Path) -> None:
    result = CliRunner().invoke(main, ["scan"])
    assert result.exit_code == 2 and "--org" in result.output


def test_service_scans_periodically_and_recovers_missed_deliveries(tmp_path: Path) -> None:
    clock = FrozenClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    with standin() as gh:
        settings = Settings(
            data_dir=tmp_path / "data",
            rules_dir=tmp_path / "none",
            webhook_secret=SecretStr(SECRET),
            api_token=SecretStr(API_TOKEN),
            github_token=SecretStr(TOKEN),
            github_api_url=gh.url,
            scan_org=ORG,
            scan_interval=1,
            recovery_check_seconds=0.2,
        )
        app = create_app(settings, clock=clock)
        with live(app) as srv, httpx.Client(base_url=srv.url, headers=AUTH, timeout=10) as client:
            wait_for(lambda: client.get("/api/v1/repos").json()["count"] == 3, timeout=20)
            # A delivery tells pulsehook which hook it came from, and where it lives.
            run = copy.deepcopy(payload("workflow_run.completed"))
            run["repository"].update(full_name="acme/api", id=70001, name="api")
            response = deliver(
                client,
                "workflow_run",
                run,
                guid="g-known",
                **{
                    "X-GitHub-Hook-ID": "77",
                    "X-GitHub-Hook-Installation-Target-Type": "repository",
                },
            )
            assert response.status_code == 202
            wait_for(lambda: drained(client))
            wait_for(
                lambda: "/repos/acme/api/hooks/77/deliveries/1009/attempts" in gh.redelivered,
                timeout=20,
            )
            repo = client.get("/api/v1/repos/acme/api").json()
            assert repo["health_score"] is not None
            assert repo["metrics"]["build_status"] == "failure"
            health = client.get("/api/v1/health").json()
            assert health["repositories"] == 3 and health["vulnerabilities"]["critical"] >= 1
    # g-known was stored: never asked for again.
    assert not any("1008" in path for path in gh.redelivered)
    assert len(gh.redelivered) == len(set(gh.redelivered))


@pytest.mark.sqlite_only("EcosystemMonitor reads a pulsehook.db file")
def test_monitor_scan_method(tmp_path: Path) -> None:
    with standin() as gh:
        monitor = EcosystemMonitor(org=ORG, db=tmp_path / "monitor.db", create=True)
        report = monitor.scan(token=TOKEN, api_url=gh.url)
    assert sorted(report.repos) == ["acme/api", "acme/legacy", "acme/web"]
    # Stored, not yet processed: the service (or ``pulsehook scan``) processes them.

    with sqlite3.connect(tmp_path / "monitor.db") as conn:
        kinds = {e for (e,) in conn.execute("SELECT DISTINCT event FROM deliveries")}
    assert {"repository", "workflow_run", "dependabot_alert"} <= kinds
    assert json.dumps(report.counts)
