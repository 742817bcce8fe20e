"""``serve --no-worker`` receives; ``pulsehook worker`` (another process) does the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from pydantic import SecretStr

from pulsehook.app import create_app
from pulsehook.settings import Settings

from . import stores
from .builders import workflow_run as failed_run
from .conftest import API_TOKEN, AUTH, SECRET, deliver, live, wait_for
from .standins import receiver
from .test_alerting import SEED_RULES


def statuses(db: Path) -> list[str]:
    with stores.connect(db) as conn:
        return [s for (s,) in conn.execute("SELECT status FROM deliveries")]


def test_receiving_and_processing_in_two_processes(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(SEED_RULES, tmp_path / "rules")
    settings = Settings(
        data_dir=tmp_path / "data",
        rules_dir=tmp_path / "rules",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        worker=False,
    )
    with (
        receiver() as slack,
        live(create_app(settings)) as srv,
        httpx.Client(base_url=srv.url, headers=AUTH, timeout=10) as client,
    ):
        assert client.get("/api/v1/status").json()["worker"] == "stopped"
        assert deliver(client, "workflow_run", failed_run()).status_code == 202
        assert statuses(settings.db_path) == ["pending"]  # nobody processes it here
        env = {
            **os.environ,
            "SLACK_WEBHOOK_URL": f"{slack.url}/hook/main",
            "PULSEHOOK_FLAP_INTERVAL": "0s",
            "PULSEHOOK_LOG_LEVEL": "warning",
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pulsehook",
                "worker",
                "--data-dir",
                str(settings.data_dir),
                "--rules-dir",
                str(settings.rules_dir),
                "--poll",
                "0.1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: statuses(settings.db_path) == ["processed"], timeout=30)
            wait_for(lambda: len(slack.delivered("main")) == 1, timeout=30)
            assert "build_failure" in slack.delivered("main")[0]["text"]
            # The server serves the summary the worker keeps on disk.
            wait_for(lambda: client.get("/summary.md").status_code == 200, timeout=30)
            assert "# ERROR" in client.get("/summary.md").text
            # A second delivery is picked up by polling, with no wake-up from the server.
            deliver(client, "workflow_run", failed_run(1002, "success", "2026-01-01T11:00:00Z"))
            wait_for(lambda: statuses(settings.db_path) == ["processed", "processed"], timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                assert proc.wait(timeout=20) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
