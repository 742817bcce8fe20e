"""What an operator sees: a log line per thing done, Prometheus metrics, readiness.

The log tests run ``pulsehook serve`` as a real process with its stderr in a file,
against a Slack stand-in; the metrics and readiness tests serve the app on loopback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pulsehook.app import create_app
from pulsehook.logs import JsonFormatter, TextFormatter, note
from pulsehook.settings import Settings

from . import stores
from .conftest import (
    API_TOKEN,
    AUTH,
    SECRET,
    deliver,
    drained,
    free_port,
    live,
    payload,
    signed_headers,
    wait_for,
)
from .standins import receiver
from .test_alerting import SEED_RULES

SLACK_PATH = "slack-path-op-test-91x"


def failing_run(run_id: int = 4242) -> dict[str, Any]:
    run = payload("workflow_run.completed")
    run["workflow_run"]["conclusion"] = "failure"
    run["workflow_run"]["id"] = run_id
    return run


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def serve(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log_path = tmp_path / "serve.log"
    rules = tmp_path / "rules"
    shutil.copytree(SEED_RULES, rules)
    full = {
        **os.environ,
        "PULSEHOOK_WEBHOOK_SECRET": SECRET,
        "PULSEHOOK_API_TOKEN": API_TOKEN,
        "PULSEHOOK_DATA_DIR": str(tmp_path / "data"),
        "PULSEHOOK_RULES_DIR": str(rules),
        "PULSEHOOK_PORT": str(port),
        "PULSEHOOK_FLAP_INTERVAL": "0s",
        "PULSEHOOK_RETRY_BASE_SECONDS": "0.05",
        **env,
    }
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pulsehook", "serve"],
            env=full,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return proc, port, log_path


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_each_delivery_alert_and_notice_is_one_json_line(tmp_path: Path) -> None:
    with receiver() as slack:
        slack.script(SLACK_PATH, 500)  # the first send fails, the retry goes through
        proc, port, log_path = serve(
            tmp_path,
            {"PULSEHOOK_LOG_FORMAT": "json", "SLACK_WEBHOOK_URL": f"{slack.url}/hook/{SLACK_PATH}"},
        )
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, headers=AUTH, timeout=5) as client:
                wait_for(lambda: _up(client), timeout=30)
                assert (
                    deliver(client, "workflow_run", failing_run(), guid="op-1").status_code == 202
                )
                assert (
                    deliver(client, "workflow_run", failing_run(), guid="op-1").status_code == 200
                )
                body = json.dumps(failing_run()).encode()
                bad = signed_headers(body, "workflow_run", guid="op-2", secret="wrong-secret-42")
                assert client.post("/webhooks/github", content=body, headers=bad).status_code == 401
                wait_for(lambda: bool(slack.delivered(SLACK_PATH)), timeout=20)
                wait_for(lambda: drained(client))
                metrics = client.get("/metrics").text
        finally:
            stop(proc)
    lines = log_path.read_text().splitlines()
    # Every line is one JSON object.
    records: list[dict[str, Any]] = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)

    def one(message: str) -> dict[str, Any]:
        found = [r for r in records if r["message"] == message]
        assert len(found) == 1, (message, [r["message"] for r in records])
        return found[0]

    accepted = one("delivery 202 accepted")
    assert (accepted["event"], accepted["delivery"], accepted["level"]) == (
        "workflow_run",
        "op-1",
        "info",
    )
    assert one("delivery 200 duplicate")["delivery"] == "op-1"
    refused = one("delivery 401 invalid_signature")
    assert refused["level"] == "warning" and refused["delivery"] == "op-2"
    assert "signature does not match" in refused["reason"]
    fired = one("alert firing")
    assert fired["rule"] == "build_failure" and fired["repo"] and fired["alert"]
    retry = one("notice failed, will retry")
    assert (retry["channel"], retry["attempt"], retry["level"]) == ("slack", 1, "warning")
    assert "500" in retry["error"] and retry["retry_at"]
    sent = one("notice sent")
    assert (sent["channel"], sent["attempt"], sent["kind"]) == ("slack", 2, "firing")
    assert sent["latency_seconds"] >= 0  # from the delivery's answer to Slack's yes
    text = log_path.read_text()
    for secret in (SECRET, API_TOKEN, SLACK_PATH, "wrong-secret-42"):
        assert secret not in text
    # uvicorn's own lines go through the same format.
    assert any(r["logger"].startswith("uvicorn") for r in records)
    # The same events, counted.
    assert 'pulsehook_deliveries_total{event="workflow_run",outcome="accepted"} 1.0' in metrics
    assert 'pulsehook_deliveries_total{event="workflow_run",outcome="duplicate"} 1.0' in metrics
    assert (
        'pulsehook_deliveries_total{event="workflow_run",outcome="invalid_signature"} 1.0'
        in metrics
    )
    assert 'pulsehook_alert_changes_total{kind="firing",rule="build_failure"} 1.0' in metrics
    assert 'pulsehook_notices_total{channel="slack",outcome="retry"} 1.0' in metrics
    assert 'pulsehook_notices_total{channel="slack",outcome="sent"} 1.0' in metrics
    assert "pulsehook_alert_latency_seconds_count 1.0" in metrics


def test_text_lines_carry_fields_and_cannot_be_forged() -> None:
    record = logging.LogRecord("pulsehook.x", logging.INFO, __file__, 1, "delivery", (), None)
    record.fields = {"event": "push", "delivery": "a\nFAKE 2026 ERROR forged", "n": 3}
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert line.endswith('delivery event=push delivery="a\\nFAKE 2026 ERROR forged" n=3')
    record = logging.LogRecord("pulsehook.x", logging.INFO, __file__, 1, "x\x1b[31mred", (), None)
    assert "\x1b" not in TextFormatter().format(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "x\x1b[31mred"  # JSON escapes it itself


def test_note_leaves_out_empty_fields_and_cuts_long_ones(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pulsehook")
    note(logging.getLogger("pulsehook.t"), logging.INFO, "m", a=None, b="x" * 1000, c=0)
    [record] = caplog.records
    fields = record.fields  # type: ignore[attr-defined]
    assert set(fields) == {"b", "c"} and len(fields["b"]) == 301


def make_settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        rules_dir=tmp_path / "none",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        **extra,
    )


def sample(metrics: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(f"{name}{{{wanted}}}" if labels else name) + r" (\S+)"
    found = re.search(rf"^{pattern}$", metrics, re.M)
    return float(found.group(1)) if found else None


def test_metrics_count_at_the_source_and_read_the_store_when_scraped(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        assert client.get("/metrics").status_code == 401  # like the API's reads
        assert deliver(client, "push", payload("push")).status_code == 202
        # A sender cannot mint label values: an unknown event is "other".
        assert deliver(client, "made-up-event-x", {"zen": "z"}).status_code == 202
        wait_for(lambda: drained(client))
        text = client.get("/metrics", headers=AUTH).text
        assert sample(text, "pulsehook_deliveries_total", event="push", outcome="accepted") == 1
        assert sample(text, "pulsehook_deliveries_total", event="other", outcome="accepted") == 1
        assert "made-up-event-x" not in text
        assert sample(text, "pulsehook_deliveries_pending") == 0
        assert sample(text, "pulsehook_processing_lag_seconds") == 0
        size = sample(text, "pulsehook_database_bytes", file="database")
        if stores.url() is None:
            assert size is not None and size == (settings.db_path).stat().st_size
            assert sample(text, "pulsehook_database_bytes", file="wal") is not None
    opened = make_settings(tmp_path / "open", open_reads=True)
    with live(create_app(opened)) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        assert client.get("/metrics").status_code == 200


def test_readiness_names_a_background_loop_that_stopped(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    with live(app) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        wait_for(lambda: client.get("/readyz").status_code == 200)
        svc = app.state.runtime
        task: asyncio.Task[None] = svc.tasks["dispatcher"]
        task.get_loop().call_soon_threadsafe(task.cancel)
        wait_for(lambda: client.get("/readyz").status_code == 503)
        ready = client.get("/readyz").json()
        assert ready["reasons"] == ["the dispatcher stopped"]
        assert ready["status"] == "not_ready" and "disk_free_bytes" in ready
        assert client.get("/healthz").json() == {"status": "ok"}  # still alive
