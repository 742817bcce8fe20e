"""The monitoring guide's own configuration and commands, as it writes them: ``ALERTS``
in ``pulse/config.py``, ``EcosystemMonitor(org=...)`` on a fresh machine, and the
``pulse`` command."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from pulsehook import EcosystemMonitor
from pulsehook.cli import main
from pulsehook.errors import DatabaseMissing
from pulsehook.rules.load import RulesInvalid, load_rules

from . import stores
from .conftest import free_port, wait_for
from .github_standin import ORG, TOKEN, standin

ROOT = Path(__file__).resolve().parent.parent
GUIDE_CONFIG = (
    'ALERTS = {"critical_vulnerability": ["slack", "discord"], "build_failure": ["slack"]}\n'
)
ENV = {
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
    "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/x",
}


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The shipped rules beside the guide's ``config.py``."""
    directory = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", directory)
    (directory / "config.py").write_text(GUIDE_CONFIG)
    return directory


def test_alerts_maps_rules_to_channels(rules_dir: Path) -> None:
    rules = {r.name: r.channels for r in load_rules(rules_dir, ENV).rules}
    assert rules["critical_vulnerability"] == ("slack", "discord")  # was slack and email
    assert rules["build_failure"] == ("slack",)
    assert rules["coverage_drop"] == ("slack",)  # not named: its own channels


def test_alerts_in_toml_and_its_mistakes(rules_dir: Path) -> None:
    (rules_dir / "config.py").unlink()
    (rules_dir / "routes.toml").write_text('[alerts]\ncoverage_drop = "discord"\n')
    rules = {r.name: r.channels for r in load_rules(rules_dir, ENV).rules}
    assert rules["coverage_drop"] == ("discord",)
    (rules_dir / "more.py").write_text(
        "ALERTS = {"
        '"build_failur": ["slack"], "build_failure": [],'
        ' "critical_vulnerability": ["pager"], "coverage_drop": ["slack"]}\n'
    )
    with pytest.raises(RulesInvalid) as caught:
        load_rules(rules_dir, ENV)
    problems = "\n".join(caught.value.problems)
    assert "ALERTS['build_failur']: no rule of that name" in problems
    assert "ALERTS['build_failure'] must be a non-empty list of channel names" in problems
    assert "ALERTS['coverage_drop']: rule routed twice" in problems  # routes.toml and more.py
    assert "unknown channel 'pager'" in problems  # ALERTS' channels are checked like any


def test_rules_check_shows_the_channels_alerts_gave(
    rules_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, ["rules", "check", str(rules_dir)])
    assert result.exit_code == 0, result.output
    assert "critical_vulnerability: vulnerability -> slack, discord (immediate)" in result.output


def _guide_env(tmp_path: Path, api_url: str) -> dict[str, str]:
    return {
        "PULSEHOOK_DATA_DIR": str(tmp_path / "data"),
        "PULSEHOOK_RULES_DIR": str(tmp_path / "none"),
        "PULSEHOOK_GITHUB_API_URL": api_url,
    }


@pytest.mark.sqlite_only("EcosystemMonitor reads a pulsehook.db file")
def test_the_guides_three_lines_on_a_fresh_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with standin() as gh:
        for name, value in _guide_env(tmp_path, gh.url).items():
            monkeypatch.setenv(name, value)
        shutil.copytree(ROOT / "rules", tmp_path / "rules")
        monkeypatch.setenv("PULSEHOOK_RULES_DIR", str(tmp_path / "rules"))
        monkeypatch.setenv("SLACK_WEBHOOK_URL", ENV["SLACK_WEBHOOK_URL"])
        # No token, no data: nothing to read, and it says so.
        monkeypatch.delenv("GITHUB_TOKEN", raising=False)
        with pytest.raises(DatabaseMissing):
            EcosystemMonitor(org=ORG)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        monitor = EcosystemMonitor(org=ORG)
        assert monitor.path == tmp_path / "data" / "pulsehook.db"  # the configured data dir
        report = monitor.check_repo("api")
        assert report.name == "acme/api" and report.score is not None
        assert "failed" in report.components["build"]["reason"]  # its scanned runs
        # Only that repository was read, not the organisation's listing.
        assert not any(p.startswith(f"/orgs/{ORG}") for p in gh.paths())
        asked = len(gh.calls)
        assert monitor.check_repo("acme/api").score == report.score  # known now: no scan
        assert len(gh.calls) == asked
        # What the scan stored is processed, every delivery, as the service's worker
        # would: the rules ran, and their notices wait in the outbox for the service.
        with stores.connect(monitor.path) as conn:
            statuses = {s for (s,) in conn.execute("SELECT DISTINCT status FROM deliveries")}
            queued = [k for (k,) in conn.execute("SELECT alert_key FROM outbox")]
        assert statuses <= {"processed", "ignored"}
        assert any(key.startswith("build_failure|") for key in queued)  # api's main is red


def _pulse() -> str:
    found = Path(sys.executable).parent / "pulse"
    assert found.is_file(), "the pulse console script is installed with the package"
    return str(found)


def test_pulse_is_pulsehook(tmp_path: Path) -> None:
    with standin() as gh:
        env = {
            "PATH": os.environ.get("PATH", ""),
            **_guide_env(tmp_path, gh.url),
            "GITHUB_TOKEN": TOKEN,
            "PULSEHOOK_SCAN_ORG": ORG,
            **({"DATABASE_URL": url} if (url := stores.url()) else {}),
        }
        stores.create(tmp_path / "data" / "pulsehook.db")  # the service ran once
        # The guide's command: a bare repository name of the configured organisation.
        scanned = subprocess.run(
            [_pulse(), "--debug", "scan", "--repo", "api"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert scanned.returncode == 0, scanned.stderr
        assert "scanned 1 repositories" in scanned.stdout
        assert "/repos/acme/api" in scanned.stderr  # --debug logs each GitHub request
        assert TOKEN not in scanned.stdout + scanned.stderr
        assert not any(p.startswith(f"/orgs/{ORG}") for p in gh.paths())
        bare = subprocess.run(
            [_pulse(), "scan", "--repo", "api"],
            env={k: v for k, v in env.items() if k != "PULSEHOOK_SCAN_ORG"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert bare.returncode == 2 and "names no owner" in bare.stderr


def test_pulse_dashboard_serves_on_the_port_given(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PULSEHOOK_DATA_DIR": str(tmp_path / "data"),
        "PULSEHOOK_RULES_DIR": str(tmp_path / "none"),
        **({"DATABASE_URL": url} if (url := stores.url()) else {}),
    }
    proc = subprocess.Popen(
        [_pulse(), "dashboard", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                return False

        wait_for(up, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
