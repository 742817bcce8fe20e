"""The webhook endpoint's contract (DESIGN.md section 4), end to end over loopback."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr

from pulsehook.app import create_app
from pulsehook.errors import ConfigError
from pulsehook.github.verify import sign
from pulsehook.settings import Settings, ensure_api_token, ensure_secret

from . import stores
from .conftest import (
    API_TOKEN,
    AUTH,
    SECRET,
    LiveServer,
    deliver,
    drained,
    live,
    payload,
    signed_headers,
    wait_for,
)


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with live(create_app(settings)) as srv:
        yield srv


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as c:
        yield c


def stored(settings: Settings) -> list[tuple[str, str, str]]:
    with stores.connect(settings.db_path) as conn:
        found = conn.execute("SELECT guid, event, status FROM deliveries ORDER BY id").fetchall()
        return [tuple(row) for row in found]


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_accepted_delivery_is_stored_then_processed(
    client: httpx.Client, settings: Settings
) -> None:
    response = deliver(client, "workflow_run", payload("workflow_run.completed"), guid="g-1")
    assert response.status_code == 202
    assert response.json() == {"delivery": "g-1", "status": "accepted"}
    wait_for(lambda: drained(client))
    assert stored(settings) == [("g-1", "workflow_run", "processed")]
    repos = client.get("/api/v1/repos").json()["repos"]
    assert [r["name"] for r in repos] == ["octo-org/octo-repo"]
    assert repos[0]["metrics"]["build_status"] == "success"
    assert repos[0]["details"]["build"]["workflows"][0]["workflow"] == "test"


def test_wrong_signature_is_401_and_nothing_stored(
    client: httpx.Client, settings: Settings
) -> None:
    body = json.dumps(payload("push")).encode()
    wrong = signed_headers(body, "push", secret="not-the-secret")
    assert_error(
        client.post("/webhooks/github", content=body, headers=wrong), 401, "invalid_signature"
    )
    missing = {k: v for k, v in signed_headers(body, "push").items() if k != "X-Hub-Signature-256"}
    assert_error(
        client.post("/webhooks/github", content=body, headers=missing), 401, "invalid_signature"
    )
    # Signed over different bytes than were sent.
    tampered = signed_headers(body + b" ", "push")
    assert_error(
        client.post("/webhooks/github", content=body, headers=tampered), 401, "invalid_signature"
    )
    assert stored(settings) == []


def test_any_configured_secret_is_accepted(tmp_path: os.PathLike[str]) -> None:
    settings = Settings(
        data_dir=Path(tmp_path, "data"),
        webhook_secret=SecretStr("old-secret, new-secret"),
        api_token=SecretStr(API_TOKEN),
    )
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        assert deliver(c, "push", payload("push"), secret="old-secret").status_code == 202
        assert deliver(c, "push", payload("push"), secret="new-secret").status_code == 202
        assert deliver(c, "push", payload("push"), secret="other").status_code == 401


@pytest.mark.parametrize("header", ["X-GitHub-Event", "X-GitHub-Delivery"])
def test_missing_github_header_is_400(
    client: httpx.Client, settings: Settings, header: str
) -> None:
    body = json.dumps(payload("push")).encode()
    headers = {k: v for k, v in signed_headers(body, "push").items() if k != header}
    response = client.post("/webhooks/github", content=body, headers=headers)
    assert_error(response, 400, "bad_request")
    assert header in response.json()["error"]["message"]
    assert stored(settings) == []


def test_body_over_the_limit_is_413(tmp_path: os.PathLike[str]) -> None:
    settings = Settings(
        data_dir=Path(tmp_path, "data"),
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        max_body_bytes=1000,
    )
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        body = b"{" + b" " * 2000 + b"}"
        declared = c.post("/webhooks/github", content=body, headers=signed_headers(body, "push"))
        assert_error(declared, 413, "payload_too_large")

        # No Content-Length (chunked): the cap is enforced while reading.
        def chunks() -> Iterator[bytes]:
            yield b"{"
            for _ in range(20):
                yield b" " * 100
            yield b"}"

        streamed = c.post(
            "/webhooks/github", content=chunks(), headers=signed_headers(body, "push")
        )
        assert_error(streamed, 413, "payload_too_large")
        assert stored(settings) == []


def test_unsupported_content_type_is_415(client: httpx.Client, settings: Settings) -> None:
    body = json.dumps(payload("push")).encode()
    headers = signed_headers(body, "push") | {"Content-Type": "text/plain"}
    assert_error(
        client.post("/webhooks/github", content=body, headers=headers),
        415,
        "unsupported_media_type",
    )
    assert stored(settings) == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": "completed",',  # truncated
        b'{"action": "caf\xe9"}',  # Latin-1, not UTF-8
        b'{"n": NaN}',
        b'{"n": 18446744073709551616}',  # past 64 bits: what processing could not read
        b'{"a": 1} trailing',
        b"",
    ],
    ids=["truncated", "latin1", "nan", "bigint", "trailing", "empty"],
)
def test_invalid_json_is_400(client: httpx.Client, settings: Settings, body: bytes) -> None:
    response = client.post(
        "/webhooks/github", content=body, headers=signed_headers(body, "workflow_run")
    )
    assert_error(response, 400, "bad_request")
    assert "JSON" in response.json()["error"]["message"]
    assert stored(settings) == []


def test_form_encoded_payload_is_accepted(client: httpx.Client, settings: Settings) -> None:
    body = urlencode({"payload": json.dumps(payload("push"))}).encode()
    headers = signed_headers(body, "push", guid="form-1") | {
        "Content-Type": "application/x-www-form-urlencoded"
    }
    assert client.post("/webhooks/github", content=body, headers=headers).status_code == 202
    wait_for(lambda: drained(client))
    assert stored(settings) == [("form-1", "push", "processed")]
    row = client.get("/api/v1/deliveries").json()["deliveries"][0]
    assert row["content_type"] == "application/x-www-form-urlencoded"


def test_ping_is_200_and_records_the_hook(client: httpx.Client, settings: Settings) -> None:
    ping = payload("ping")
    response = deliver(
        client, "ping", ping, guid="ping-1", **{"X-GitHub-Hook-ID": str(ping["hook_id"])}
    )
    assert response.status_code == 200
    wait_for(lambda: drained(client))
    with stores.connect(settings.db_path) as conn:
        hook_id, events, content_type = conn.execute(
            "SELECT hook_id, events, content_type FROM hooks"
        ).fetchone()
    assert hook_id == ping["hook_id"]
    assert json.loads(events) == ping["hook"]["events"]
    assert content_type == ping["hook"]["config"]["content_type"]


def test_redelivery_is_200_and_not_processed_twice(
    client: httpx.Client, settings: Settings
) -> None:
    first = deliver(client, "push", payload("push"), guid="same-guid")
    again = deliver(client, "push", payload("push"), guid="same-guid")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["status"] == "duplicate"
    wait_for(lambda: drained(client))
    with stores.connect(settings.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM activity").fetchone()[0] == 1
        assert conn.execute("SELECT attempts FROM deliveries").fetchone()[0] == 1


def test_unknown_event_is_stored_and_ignored(client: httpx.Client, settings: Settings) -> None:
    response = deliver(client, "sponsorship", {"action": "created"}, guid="u-1")
    assert response.status_code == 202
    wait_for(lambda: drained(client))
    assert stored(settings) == [("u-1", "sponsorship", "ignored")]
    row = client.get("/api/v1/deliveries", params={"status": "ignored"}).json()["deliveries"][0]
    assert "not normalized" in row["error"]


def test_storage_unavailable_is_503(tmp_path: os.PathLike[str]) -> None:
    settings = Settings(
        data_dir=Path(tmp_path, "data"),
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        busy_timeout_ms=200,
    )
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as client:
        # Another process holds the write lock past the busy timeout.
        with stores.write_lock(settings.db_path):
            response = deliver(client, "push", payload("push"), guid="locked-1")
            assert_error(response, 503, "storage_unavailable")
        assert stored(settings) == []
        # The service keeps working once the lock is gone; GitHub's retry lands.
        assert deliver(client, "push", payload("push"), guid="locked-1").status_code == 202


def test_unknown_route_uses_the_error_shape(client: httpx.Client) -> None:
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.get("/webhooks/github"), 405, "method_not_allowed")


def test_deliveries_are_filterable(client: httpx.Client) -> None:
    deliver(client, "push", payload("push"), guid="p-1")
    deliver(client, "sponsorship", {}, guid="s-1")
    wait_for(lambda: drained(client))
    by_event = client.get("/api/v1/deliveries", params={"event": "push"}).json()
    assert [d["guid"] for d in by_event["deliveries"]] == ["p-1"]
    by_status = client.get("/api/v1/deliveries", params={"status": "ignored"}).json()
    assert [d["guid"] for d in by_status["deliveries"]] == ["s-1"]
    assert_error(client.get("/api/v1/deliveries", params={"status": "nope"}), 422, "invalid")
    assert_error(client.get("/api/v1/deliveries", params={"limit": "0"}), 422, "invalid")


def test_health_probes_say_little_and_the_status_needs_the_token(client: httpx.Client) -> None:
    anonymous = {"Authorization": ""}
    assert client.get("/healthz", headers=anonymous).json() == {"status": "ok"}
    ready = client.get("/readyz", headers=anonymous).json()
    # Figures only: how far processing is behind, and the disk.
    assert ready.pop("status") == "ready" and ready.pop("disk_free_bytes") > 0
    assert ready == {"processing_lag_seconds": 0.0, "deliveries_pending": 0}
    assert client.get("/api/v1/status", headers=anonymous).status_code == 401
    body = client.get("/api/v1/status").json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["worker"] == "running" and set(body["deliveries"]) >= {"pending", "processed"}


def test_readiness_names_failing_writes_and_recovers(settings: Settings) -> None:
    settings = settings.model_copy(update={"busy_timeout_ms": 200})
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        wait_for(lambda: c.get("/readyz").status_code == 200)
        # A write lock held past the busy timeout makes the writer's commits fail.
        with stores.write_lock(settings.db_path):
            assert deliver(c, "push", payload("push"), guid="r-1").status_code == 503
            ready = c.get("/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
            assert "database writes are failing" in ready.json()["reasons"][0]
        assert deliver(c, "push", payload("push"), guid="r-1").status_code == 202
        assert c.get("/readyz").json()["status"] == "ready"


def test_refuses_to_start_without_a_secret(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(ConfigError, match="PULSEHOOK_WEBHOOK_SECRET"):
        create_app(Settings(data_dir=Path(tmp_path, "data")))


def test_insecure_mode_accepts_unsigned(tmp_path: os.PathLike[str]) -> None:
    settings = Settings(data_dir=Path(tmp_path, "data"), insecure=True)
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        response = c.post(
            "/webhooks/github",
            json=payload("push"),
            headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "x"},
        )
        assert response.status_code == 202


def test_generated_secret_is_stored_once_and_private(tmp_path: os.PathLike[str]) -> None:
    base = Settings(data_dir=Path(tmp_path, "data"))
    first, shown = ensure_secret(base)
    assert shown is not None and first.secrets() == [shown.encode()]
    path = base.data_dir / "webhook_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second, shown_again = ensure_secret(base)
    assert shown_again is None
    assert second.secrets() == first.secrets()
    assert sign(b"x", first.secrets()[0]) == sign(b"x", shown.encode())


def test_generated_api_token_is_stored_once_private_and_opens_the_api(
    tmp_path: os.PathLike[str],
) -> None:
    base = Settings(data_dir=Path(tmp_path, "data"), webhook_secret=SecretStr(SECRET))
    first, shown = ensure_api_token(base)
    assert shown is not None and first.api_token is not None
    assert first.api_token.get_secret_value() == shown and len(shown) >= 32
    path = base.data_dir / "api_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second, shown_again = ensure_api_token(base)
    assert shown_again is None and second.api_token == first.api_token
    given = base.model_copy(update={"api_token": SecretStr("chosen-token-0123456789")})
    assert ensure_api_token(given) == (given, None)
    with live(create_app(first)) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.get("/api/v1/status").status_code == 401
        auth = {"Authorization": f"Bearer {shown}"}
        assert c.get("/api/v1/status", headers=auth).status_code == 200


def test_a_refused_setting_is_not_echoed() -> None:
    with pytest.raises(ValueError) as refused:
        Settings(api_token=SecretStr("hunter2-secret"))
    assert "hunter2" not in str(refused.value)
