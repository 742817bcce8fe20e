"""The running service publishes its summary to a GitHub stand-in; the CLI does it on demand."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from pulsehook.app import create_app
from pulsehook.cli import main
from pulsehook.errors import ConfigError
from pulsehook.settings import Settings

from .conftest import API_TOKEN, AUTH, SECRET, live, wait_for
from .test_publish import BRANCH, DIRECTORY, OWNER, REPO, TOKEN, FakeGitHub, github

__all__ = ["github"]  # the fixture, re-used


def publishing(tmp_path: Path, gh: FakeGitHub) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        rules_dir=tmp_path / "rules",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        heartbeat_tokens=SecretStr("hb"),
        publish_repo=f"{OWNER}/{REPO}",
        publish_directory=DIRECTORY,
        publish_branch=BRANCH,
        github_api_url=gh.url,
        github_token=SecretStr(TOKEN),
        publish_interval_seconds=0.0,
        summary_debounce_seconds=0.05,
    )


def test_service_publishes_the_summary_after_a_change(tmp_path: Path, github: FakeGitHub) -> None:
    settings = publishing(tmp_path, github)
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as client:
        answer = client.post(
            "/api/v1/heartbeats/octo/status/jobs/backup.md",
            json={"report": "BAD", "note": "disk full"},
            headers={"Authorization": "Bearer hb"},
        )
        assert answer.status_code == 202
        wait_for(lambda: "disk full" in github.files.get(f"{DIRECTORY}/summary.md", b"").decode())
    document = json.loads(github.text("summary.md.json"))
    assert list(document["summary"]["status"]["ERROR"]) == ["octo/status/jobs/backup.md"]
    assert "# ERROR" in github.text("summary.md")


def test_publish_command(
    tmp_path: Path, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = publishing(tmp_path, github)
    with (
        live(create_app(settings.model_copy(update={"publish_repo": None}))) as srv,
        httpx.Client(base_url=srv.url, headers=AUTH) as client,
    ):
        wait_for(lambda: client.get("/summary.md").status_code == 200)
    assert github.puts() == []  # not configured to publish: nothing was sent
    for name, value in {
        "PULSEHOOK_DATA_DIR": str(settings.data_dir),
        "GITHUB_TOKEN": TOKEN,
        "PULSEHOOK_PUBLISH_REPO": f"{OWNER}/{REPO}",
        "PULSEHOOK_PUBLISH_DIRECTORY": DIRECTORY,
        "PULSEHOOK_GITHUB_API_URL": github.url,
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["summary", "publish"])
    assert result.exit_code == 0, result.output
    assert "published to acme/status: summary.md, summary.md.json" in result.output
    again = CliRunner().invoke(main, ["summary", "publish"])
    assert "already up to date" in again.output
    assert TOKEN not in result.output + again.output


def test_publishing_without_a_token_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="GITHUB_TOKEN"):
        create_app(
            Settings(
                data_dir=tmp_path,
                webhook_secret=SecretStr(SECRET),
                api_token=SecretStr(API_TOKEN),
                publish_repo="acme/status",
            )
        )
