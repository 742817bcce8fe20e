"""Heartbeats the way healthchecks users send them: ``/start``, ``/fail``, an exit
status, GET as well as POST, run times, and ``pulsehook heartbeat`` — against the
app served on loopback, on a frozen clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from pulsehook.app import create_app
from pulsehook.cli import main
from pulsehook.cli.heartbeat import ping_url, send
from pulsehook.clock import FrozenClock
from pulsehook.settings import Settings

from .builders import workflow_run
from .conftest import API_TOKEN, AUTH, SECRET, deliver, drained, free_port, live, wait_for

TOKEN = "beat-token-0001"
BASE = "/api/v1/heartbeats/acme/backups"
NOW = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)


@dataclass
class Env:
    client: httpx.Client  # with the API token
    bare: httpx.Client  # without: as curl in a crontab line
    clock: FrozenClock
    url: str

    def ping(self, tail: str, method: str = "POST", **params: str) -> httpx.Response:
        return self.bare.request(method, f"{BASE}/{tail}", params={"token": TOKEN, **params})

    def items(self) -> dict[str, str]:
        """Each item's status and its note, as the summary's JSON shows them."""
        wait_for(lambda: self.client.get("/summary.md.json").status_code == 200)
        text = self.client.get("/summary.md").text
        found: dict[str, str] = {}
        section = ""
        for line in text.splitlines():
            if line.startswith("# "):
                section = line[2:]
            elif line.startswith("- ") and section in ("ERROR", "MISSING", "OK"):
                found[line.split("]", 1)[0].removeprefix("- [")] = f"{section} {line}"
        return found


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    clock = FrozenClock(NOW)
    settings = Settings(
        data_dir=tmp_path / "data",
        rules_dir=tmp_path / "none",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        heartbeat_tokens=SecretStr(TOKEN),
        summary_debounce_seconds=0.02,
    )
    with (
        live(create_app(settings, clock=clock)) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client,
        httpx.Client(base_url=server.url, timeout=10) as bare,
    ):
        yield Env(client, bare, clock, server.url)


def settled(env: Env, path: str, expected: str) -> str:
    """The item's summary line once it says ``expected``."""
    wait_for(lambda: expected in env.items().get(path, ""))
    return env.items()[path]


def test_a_plain_get_is_a_ping(env: Env) -> None:
    # As a crontab line would send it: `curl -fsS URL`.
    answer = env.ping("nightly", method="GET")
    assert answer.status_code == 202, answer.text
    assert answer.json() == {
        "path": "acme/backups/nightly",
        "report": "GOOD",
        "note": None,
        "run_seconds": None,
    }
    settled(env, "acme/backups/nightly", "OK")


def test_start_then_success_measures_the_run(env: Env) -> None:
    started = env.ping("nightly/start")
    assert started.status_code == 202 and started.json() == {
        "path": "acme/backups/nightly",
        "started": True,
    }
    env.clock.advance(timedelta(minutes=3, seconds=12))
    done = env.ping("nightly", note="4.2 GB")
    assert done.json()["run_seconds"] == 192.0
    line = settled(env, "acme/backups/nightly", "ran 3 min 12 s")
    assert line.startswith("OK") and "4.2 GB (ran 3 min 12 s)" in line
    # A report without a start before it measures nothing.
    assert env.ping("nightly").json()["run_seconds"] is None


def test_fail_and_exit_statuses(env: Env) -> None:
    assert env.ping("nightly/start", method="GET").status_code == 202
    env.clock.advance(timedelta(seconds=42))
    failed = env.ping("nightly/fail", method="GET")
    assert failed.json()["report"] == "BAD" and failed.json()["run_seconds"] == 42.0
    assert "ran 42 s" in settled(env, "acme/backups/nightly", "ERROR")
    env.clock.advance(timedelta(hours=1))
    assert env.ping("nightly/0").json()["report"] == "GOOD"
    settled(env, "acme/backups/nightly", "OK")
    env.clock.advance(timedelta(hours=1))
    three = env.ping("nightly/3").json()
    assert three["report"] == "BAD" and three["note"] == "exit status 3"
    assert "exit status 3" in settled(env, "acme/backups/nightly", "ERROR")
    # A note given wins over the exit status's.
    env.clock.advance(timedelta(hours=1))
    assert env.ping("nightly/1", note="disk full").json()["note"] == "disk full"


def test_what_is_a_signal_and_what_is_a_name(env: Env) -> None:
    # Past 255, or a single segment, the last segment is the item's own name.
    assert env.ping("jobs/256").json()["path"] == "acme/backups/jobs/256"
    assert env.ping("start").json()["path"] == "acme/backups/start"
    assert env.ping("fail").json()["report"] == "GOOD"
    assert env.ping("jobs/started").json()["path"] == "acme/backups/jobs/started"


def test_signals_keep_the_rules_of_plain_heartbeats(env: Env) -> None:
    assert deliver(env.client, "workflow_run", workflow_run(1, "success")).status_code == 202
    wait_for(lambda: drained(env.client))
    kept = env.bare.get(
        "/api/v1/heartbeats/octo-org/octo-repo/actions/test/fail", params={"token": TOKEN}
    )
    assert kept.status_code == 409  # webhooks keep workflow items
    wrong = env.bare.get(f"{BASE}/nightly/start", params={"token": "nope"})
    assert wrong.status_code == 401
    assert env.bare.delete(f"{BASE}/nightly").status_code == 405


def test_the_heartbeat_command(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSEHOOK_HEARTBEAT_TOKEN", TOKEN)

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["heartbeat", *args, "--url", env.url])
        return result.exit_code, result.output

    assert run("acme/backups/nightly", "--start") == (0, "acme/backups/nightly: run started\n")
    env.clock.advance(timedelta(seconds=90))
    code, said = run("acme/backups/nightly", "--exit-status", "0", "--note", "done")
    assert code == 0 and said == "acme/backups/nightly: GOOD, ran 90.0 s\n"
    assert "done (ran 1 min 30 s)" in settled(env, "acme/backups/nightly", "OK")
    code, said = run("acme/backups/nightly", "--fail")
    assert code == 0 and "BAD" in said
    settled(env, "acme/backups/nightly", "ERROR")
    monkeypatch.setenv("PULSEHOOK_HEARTBEAT_TOKEN", "wrong-token")
    code, said = run("acme/backups/nightly")
    assert code == 1 and "refused the heartbeat (HTTP 401)" in said and "wrong-token" not in said
    code, said = run("acme/backups/nightly", "--start", "--exit-status", "1")
    assert code == 2 and "not two of them" in said
    code, said = run("nightly")
    assert code == 2 and "must be owner/repo/path" in said


def test_the_command_retries_an_unreachable_service_and_says_so() -> None:
    waits: list[float] = []
    url = ping_url(f"http://127.0.0.1:{free_port()}", "acme/backups/nightly", "start")
    assert url.endswith("/api/v1/heartbeats/acme/backups/nightly/start")
    answer = send(url, TOKEN, None, attempts=3, sleep=waits.append)
    assert isinstance(answer, str) and "ConnectError" in answer
    assert waits == [1.0, 2.0]
    assert ping_url("http://x/", "a/b/c d#e", None) == "http://x/api/v1/heartbeats/a/b/c%20d%23e"
