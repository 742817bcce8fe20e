"""Logs: one format, third parties kept quiet, and no secret in any line at any level."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from pulsehook.logs import MASK, Redactor, WithoutQuery

from .conftest import free_port, payload, signed_headers, wait_for
from .standins import receiver, smtp_server
from .test_alerting import SEED_RULES

WEBHOOK_SECRET = "whsec-log-test-7f3a9c"
API_TOKEN = "api-token-log-test-0123456789"
HEARTBEAT_TOKEN = "hb-token-log-test-42"
SLACK_PATH = "slack-secret-path-xyz"
SMTP_PASSWORD = "smtp-password-log-test"


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("x", logging.ERROR, __file__, 1, msg, args, None)


def test_a_secret_is_masked_in_the_message_its_arguments_and_the_traceback() -> None:
    redactor = Redactor()
    redactor.add(["s3cr3t-value", None, "", "short"])
    record = _record("posting to %s failed", "https://hooks/s3cr3t-value/x")
    try:
        raise RuntimeError("connection to /s3cr3t-value refused")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert redactor.filter(record)
    assert record.getMessage() == f"posting to https://hooks/{MASK}/x failed"
    assert record.exc_text is not None and "s3cr3t-value" not in record.exc_text
    assert MASK in record.exc_text
    # Values too short to be a secret would mask ordinary words: they are not registered.
    assert redactor.redact("a short word") == "a short word"
    # The percent-encoded form of a secret is masked as well.
    redactor.add(["tok/en+with space"])
    assert redactor.redact("?t=tok%2Fen%2Bwith%20space") == f"?t={MASK}"


def test_access_lines_lose_their_query_string() -> None:
    record = _record('%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET", "/x?token=abc", "1.1", 200)
    assert WithoutQuery().filter(record)
    assert record.getMessage() == '1.2.3.4:5 - "GET /x HTTP/1.1" 200'


def test_a_debug_session_logs_no_secret(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(SEED_RULES, rules)
    port = free_port()
    log_path = tmp_path / "serve.log"
    with receiver() as slack, smtp_server() as (_, smtp_port):
        env = {
            **os.environ,
            "PULSEHOOK_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PULSEHOOK_API_TOKEN": API_TOKEN,
            "PULSEHOOK_HEARTBEAT_TOKENS": HEARTBEAT_TOKEN,
            "PULSEHOOK_DATA_DIR": str(tmp_path / "data"),
            "PULSEHOOK_RULES_DIR": str(rules),
            "PULSEHOOK_PORT": str(port),
            "PULSEHOOK_FLAP_INTERVAL": "0s",
            "SLACK_WEBHOOK_URL": f"{slack.url}/hook/{SLACK_PATH}",
            "PULSEHOOK_SMTP_HOST": "127.0.0.1",
            "PULSEHOOK_SMTP_PORT": str(smtp_port),
            "PULSEHOOK_SMTP_USERNAME": "pulsehook",
            "PULSEHOOK_SMTP_PASSWORD": SMTP_PASSWORD,
            "PULSEHOOK_SMTP_FROM": "pulsehook@example.org",
            "PULSEHOOK_SMTP_TO": "sre@example.org",
        }
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pulsehook", "--debug", "serve"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            try:
                url = f"http://127.0.0.1:{port}"
                with httpx.Client(base_url=url, timeout=5) as client:
                    wait_for(lambda: _up(client), timeout=30)
                    run = payload("workflow_run.completed")
                    run["workflow_run"]["conclusion"] = "failure"
                    body = json.dumps(run).encode()
                    headers = signed_headers(body, "workflow_run", secret=WEBHOOK_SECRET)
                    assert (
                        client.post("/webhooks/github", content=body, headers=headers).status_code
                        == 202
                    )
                    bad = signed_headers(body, "workflow_run", secret="wrong-secret-123")
                    assert (
                        client.post("/webhooks/github", content=body, headers=bad).status_code
                        == 401
                    )
                    assert (
                        client.get("/api/v1/status", params={"token": API_TOKEN}).status_code == 401
                    )
                    auth = {"Authorization": f"Bearer {API_TOKEN}"}
                    assert client.get("/api/v1/rules", headers=auth).status_code == 200
                    beat = client.post(
                        "/api/v1/heartbeats/octo-org/octo-repo/nightly",
                        params={"token": HEARTBEAT_TOKEN},
                        json={"status": "ok"},
                    )
                    assert beat.status_code < 500
                    wait_for(lambda: bool(slack.delivered(SLACK_PATH)), timeout=20)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
    text = log_path.read_text(errors="replace")
    # The session did log (access lines at --debug, in the one format), never a secret.
    assert "INFO uvicorn.access: 127.0.0.1" in text and '"GET /api/v1/status HTTP/1.1" 401' in text
    for secret in (WEBHOOK_SECRET, API_TOKEN, HEARTBEAT_TOKEN, SLACK_PATH, SMTP_PASSWORD):
        assert secret not in text, f"{secret!r} in the log"
    assert "slack-secret-path" not in text and "?token=" not in text


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False
