"""The webhook endpoint under hostile input: every bad request answered alone, and precisely.

Form bodies decoded to their exact bytes, hook ids range-checked, a batch that
fails for one delivery retried one by one, byte-order marks refused, the HMAC
computed while the body streams with large bodies bounded, and the wait for a
commit bounded by ``answer_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from starlette.applications import Starlette

from pulsehook.app import create_app
from pulsehook.errors import BadRequest, StorageUnavailable
from pulsehook.intake import Intake
from pulsehook.settings import Settings
from pulsehook.store.db import SqliteWriter
from pulsehook.store.deliveries import Delivery, decode_payload
from pulsehook.web.webhooks import WebhookEndpoint

from . import stores
from .conftest import (
    AUTH,
    SECRET,
    LiveServer,
    deliver,
    drained,
    free_port,
    live,
    payload,
    signed_headers,
    wait_for,
)

MIB = 1024 * 1024
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with live(create_app(settings)) as srv:
        yield srv


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as c:
        yield c


def rows(settings: Settings) -> dict[str, tuple[str, int | None, bytes]]:
    """guid -> (status, hook_id, the stored JSON document)."""
    with stores.connect(settings.db_path) as conn:
        found = conn.execute(
            "SELECT d.guid, d.status, d.hook_id, p.payload FROM deliveries d"
            " JOIN delivery_payloads p ON p.delivery_id = d.id"
        ).fetchall()
    return {guid: (status, hook, decode_payload(blob)) for guid, status, hook, blob in found}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body


def post(
    client: httpx.Client,
    body: bytes,
    event: str = "push",
    *,
    content_type: str | None = None,
    guid: str | None = None,
    hook_id: bytes | None = None,
) -> httpx.Response:
    """A signed delivery; the hook id as raw header bytes (they need not be ASCII)."""
    headers: dict[str, Any] = {**signed_headers(body, event, guid)}
    if content_type:
        headers["Content-Type"] = content_type
    if hook_id is not None:
        headers["X-GitHub-Hook-ID"] = hook_id
    return client.post("/webhooks/github", content=body, headers=headers)


def push_with(text: str) -> bytes:
    """A real push payload carrying ``text`` where people write: commit message, description."""
    doc = payload("push")
    doc["head_commit"]["message"] = text
    doc["repository"]["description"] = f"about {text}"
    return json.dumps(doc, ensure_ascii=False).encode()


# 1. Form-encoded bodies ----------------------------------------------------------------

TEXTS = {
    "check": "tests pass ✓",
    "latin": "café déjà vu",
    "emoji": "ship it 🚀👍🏽",
    "plus": "a+b = c",
    "escaped-plus": "literal %2B stays",
    "escaped-nul": "literal %00 stays",
    "json-nul": "nul \u0000 escaped in JSON",
}


@pytest.mark.parametrize("text", list(TEXTS.values()), ids=list(TEXTS))
def test_form_body_is_stored_byte_exactly_and_processed(
    client: httpx.Client, settings: Settings, text: str
) -> None:
    document = push_with(text)
    body = b"payload=" + quote_plus(document).encode()
    assert post(client, body, content_type=FORM, guid="f-1").status_code == 202
    wait_for(lambda: drained(client))
    status, _, stored = rows(settings)["f-1"]
    assert stored == document
    assert status == "processed"


def test_form_body_with_raw_utf8_and_other_fields(client: httpx.Client, settings: Settings) -> None:
    # Not every sender escapes what is not ASCII; '+' is a space, '%2B' a plus.
    document = push_with("raw ✓ é 🚀 1+1").replace(b": ", b":").replace(b", ", b",")
    field = document.replace(b"%", b"%25").replace(b"+", b"%2B").replace(b" ", b"+")
    body = b"before=1&payload=" + field.replace(b"&", b"%26") + b"&after=%FF"
    assert post(client, body, content_type=f"{FORM}; charset=utf-8", guid="raw").status_code == 202
    wait_for(lambda: drained(client))
    assert rows(settings)["raw"] == ("processed", None, document)


def test_form_body_without_payload_or_with_invalid_utf8_is_400(
    client: httpx.Client, settings: Settings
) -> None:
    response = post(client, b"other=%7B%7D", content_type=FORM)
    assert "payload" in assert_error(response, 400, "bad_request")["error"]["message"]
    latin1 = b"payload=" + quote_plus(b'{"a": "caf\xe9"}').encode()
    response = post(client, latin1, content_type=FORM)
    assert "JSON" in assert_error(response, 400, "bad_request")["error"]["message"]
    assert rows(settings) == {}


# 2. Hook ids ---------------------------------------------------------------------------

BAD_HOOK_IDS = ["²", "-1", "9223372036854775808", "１２", "12abc", "0", "1" * 5000]


@pytest.mark.parametrize(
    "hook_id",
    BAD_HOOK_IDS,
    ids=["superscript", "negative", "int64+1", "fullwidth", "12abc", "0", "long"],
)
def test_invalid_hook_id_is_400_naming_the_header(
    client: httpx.Client, settings: Settings, hook_id: str
) -> None:
    body = json.dumps(payload("push")).encode()
    response = post(client, body, hook_id=hook_id.encode())
    assert "X-GitHub-Hook-ID" in assert_error(response, 400, "bad_request")["error"]["message"]
    assert rows(settings) == {}


def test_invalid_hook_ids_do_not_fail_the_group_commit(
    client: httpx.Client, settings: Settings
) -> None:
    body = json.dumps(payload("workflow_run.completed")).encode()
    largest = str(2**63 - 1)
    good = [(f"ok-{n}", b"12" if n % 2 else largest.encode()) for n in range(60)]
    bad = [(f"bad-{n}", hook.encode()) for n, hook in enumerate(BAD_HOOK_IDS * 3)]
    jobs = list(good)
    for n, job in enumerate(bad):
        jobs.insert(3 * n, job)  # the bad ones spread among the good ones

    def send(job: tuple[str, bytes]) -> tuple[str, int]:
        guid, hook = job
        response = post(client, body, "workflow_run", guid=guid, hook_id=hook)
        return guid, response.status_code

    with ThreadPoolExecutor(32) as pool:
        answers = dict(pool.map(send, jobs))
    assert {g: s for g, s in answers.items() if g.startswith("ok-")} == {
        f"ok-{n}": 202 for n in range(60)
    }
    assert {s for g, s in answers.items() if g.startswith("bad-")} == {400}
    stored = rows(settings)
    assert set(stored) == {f"ok-{n}" for n in range(60)}
    assert {hook for _, hook, _ in stored.values()} == {12, 2**63 - 1}


def _delivery(guid: str, **fields: Any) -> Delivery:
    values: dict[str, Any] = {
        "guid": guid,
        "event": "push",
        "payload": json.dumps(payload("push")),
        "content_type": "application/json",
        "received_at": "2026-01-01T00:00:00Z",
        **fields,
    }
    return Delivery(**values)


def test_a_batch_failing_for_one_delivery_is_retried_one_by_one(tmp_path: Path) -> None:
    # With the header checked, nothing the endpoint builds is refused by the store;
    # these rows are built directly: a hook id past int64 (the driver refuses it)
    # and a missing event (NOT NULL refuses it).
    writer = SqliteWriter(tmp_path / "t.db")
    commits: list[int] = []
    intake = Intake(writer, batch_max=256, on_commit=lambda: commits.append(1))
    batch = [
        _delivery("a"),
        _delivery("too-big", hook_id=2**63),
        _delivery("b", hook_id=7),
        _delivery("no-event", event=None),
        _delivery("c"),
        _delivery("a"),  # a redelivery in the same batch
    ]

    async def run() -> list[bool | BaseException]:
        return await asyncio.gather(*(intake.submit(d) for d in batch), return_exceptions=True)

    try:
        outcomes = asyncio.run(run())
    finally:
        writer.close()
    assert [o for o in outcomes if isinstance(o, bool)] == [True, True, True, False]
    too_big, no_event = outcomes[1], outcomes[3]
    assert isinstance(too_big, BadRequest) and "OverflowError" in too_big.message
    assert isinstance(no_event, BadRequest) and "NOT NULL" in no_event.message
    with sqlite3.connect(tmp_path / "t.db") as conn:
        stored = conn.execute("SELECT guid, hook_id FROM deliveries ORDER BY id").fetchall()
    assert stored == [("a", None), ("b", 7), ("c", None)]
    assert commits


def test_storage_unavailable_still_fails_the_whole_batch(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "t.db", busy_timeout_ms=100)
    intake = Intake(writer, batch_max=256, on_commit=lambda: None)
    blocker = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    async def run() -> list[bool | BaseException]:
        batch = [_delivery("a"), _delivery("too-big", hook_id=2**63), _delivery("b")]
        return await asyncio.gather(*(intake.submit(d) for d in batch), return_exceptions=True)

    try:
        outcomes = asyncio.run(run())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        writer.close()
    assert all(isinstance(o, StorageUnavailable) for o in outcomes), outcomes
    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert conn.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)


# 3. Byte-order marks -------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (BOM + json.dumps(payload("push")).encode(), None),
        (BOM + b"payload=" + quote_plus(json.dumps(payload("push"))).encode(), FORM),
        (b"payload=" + quote_plus(BOM + json.dumps(payload("push")).encode()).encode(), FORM),
    ],
    ids=["json", "form-body", "form-field"],
)
def test_byte_order_mark_is_400_and_nothing_stored(
    client: httpx.Client, settings: Settings, body: bytes, content_type: str | None
) -> None:
    response = post(client, body, content_type=content_type)
    message = assert_error(response, 400, "bad_request")["error"]["message"]
    assert "byte-order mark" in message
    assert rows(settings) == {}


# 4. Streaming and large bodies ---------------------------------------------------------


def _status(pid: int, field: str) -> int:
    """A /proc/<pid>/status figure in bytes (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _peak_growth(pid: int, send: Any) -> int:
    """How far the process's resident memory peaks above where it was, while ``send()`` runs."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak starts over at the current size
    before = _status(pid, "VmRSS")
    send()
    return _status(pid, "VmHWM") - before


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def test_an_unauthenticated_large_body_costs_no_copy_in_memory(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PULSEHOOK_WEBHOOK_SECRET": SECRET,
        "PULSEHOOK_DATA_DIR": str(tmp_path / "data"),
        "PULSEHOOK_RULES_DIR": str(tmp_path / "rules"),
        "PULSEHOOK_PORT": str(port),
        "PULSEHOOK_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulsehook", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            wait_for(lambda: _up(c), timeout=20)
            body = b'{"x": "' + b"a" * (20 * MIB) + b'"}'
            wrong = signed_headers(body, "push", secret="not-the-secret")
            # Once, so that what any first request allocates is not counted below.
            assert deliver(c, "push", payload("push")).status_code == 202

            def send(headers: dict[str, str]) -> tuple[httpx.Response, int]:
                answers: list[httpx.Response] = []
                grown = _peak_growth(
                    proc.pid,
                    lambda: answers.append(
                        c.post("/webhooks/github", content=body, headers=headers)
                    ),
                )
                return answers[0], grown

            # First (freed memory stays resident, and would hide a copy made later):
            # a signature that cannot match is refused before the body is read.
            unsigned = {k: v for k, v in wrong.items() if k != "X-Hub-Signature-256"}
            answer, grown = send(unsigned)
            assert_error(answer, 401, "invalid_signature")
            assert grown < 0.25 * len(body), f"{grown / MIB:.1f} MiB without a signature"

            # A well-formed signature: the body is read, its HMAC computed as it
            # comes, and it waits on disk, not in memory, until the HMAC is known.
            answer, grown = send(wrong)
            assert_error(answer, 401, "invalid_signature")
            assert grown < 0.25 * len(body), f"{grown / MIB:.1f} MiB for {len(body) / MIB:.0f} MiB"

            # The right signature: stored whole.
            answer, _ = send(signed_headers(body, "push"))
            assert answer.status_code == 202
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _endpoint(app: Starlette) -> WebhookEndpoint:
    for route in app.routes:
        endpoint = getattr(route, "endpoint", None)
        if isinstance(endpoint, WebhookEndpoint):
            return endpoint
    raise AssertionError("no webhook endpoint")


def _hold(port: int, body_size: int, *, chunked: bool) -> socket.socket:
    """A connection that starts sending a large (wrongly signed) body, then stalls."""
    head = signed_headers(b"", "push", secret="not-the-secret")
    lines = ["POST /webhooks/github HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in head.items()]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {body_size}")
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    part = b"{" + b" " * (body_size - 1)
    sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n" if chunked else part[: 64 * 1024])
    return sock


def test_large_bodies_are_bounded_and_small_ones_pass(settings: Settings) -> None:
    settings = settings.model_copy(update={"max_large_bodies": 2})
    app = create_app(settings)
    endpoint = _endpoint(app)
    with live(app) as srv, httpx.Client(base_url=srv.url, headers=AUTH, timeout=30) as c:
        # Two bodies hold both slots: one declared large, one found large while read.
        holders = [
            _hold(srv.port, 5 * MIB, chunked=False),
            _hold(srv.port, MIB + MIB // 2, chunked=True),
        ]
        try:
            wait_for(lambda: endpoint.large.free == 0)
            big = b'{"x": "' + b"a" * (5 * MIB) + b'"}'
            wrong = signed_headers(big, "push", secret="not-the-secret")

            def send_big(_: int) -> httpx.Response:
                with httpx.Client(base_url=srv.url, timeout=30) as own:
                    return own.post("/webhooks/github", content=big, headers=wrong)

            with ThreadPoolExecutor(6) as pool:
                bigs = pool.map(send_big, range(6))
                small = deliver(c, "push", payload("push"), guid="small")
                answers = list(bigs)
            assert small.status_code == 202
            for answer in answers:
                assert_error(answer, 503, "busy")
                assert int(answer.headers["Retry-After"]) > 0
        finally:
            for sock in holders:
                sock.close()
        # Slots come back when their connections go away.
        wait_for(lambda: endpoint.large.free == 2)
        assert_error(
            c.post("/webhooks/github", content=big, headers=wrong), 401, "invalid_signature"
        )
        signed = signed_headers(big, "sponsorship", guid="big-ok")
        assert c.post("/webhooks/github", content=big, headers=signed).status_code == 202
        assert rows(settings)["big-ok"][2] == big


# 5. Locked database --------------------------------------------------------------------


def test_commit_wait_is_bounded_by_the_answer_timeout(settings: Settings) -> None:
    settings = settings.model_copy(update={"answer_timeout_seconds": 1.0})
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        with stores.write_lock(settings.db_path):
            started = time.monotonic()
            response = deliver(c, "push", payload("push"), guid="locked-1")
            took = time.monotonic() - started
            body = assert_error(response, 503, "storage_unavailable")
            assert "within 1 s" in body["error"]["message"]
            assert 1.0 <= took < 1.5, took
        assert deliver(c, "push", payload("push"), guid="after-1").status_code == 202
        # Stored late or not at all, never answered stored before: GitHub's retry lands.
        assert deliver(c, "push", payload("push"), guid="locked-1").status_code in (200, 202)
        assert {"after-1", "locked-1"} <= set(rows(settings))


# 6. The one error shape, nothing secret in it ------------------------------------------


def test_error_answers_echo_no_secret_or_signature(client: httpx.Client) -> None:
    body = json.dumps(payload("push")).encode()
    mine = signed_headers(body, "push")
    theirs = signed_headers(body + b" ", "push")["X-Hub-Signature-256"]
    answers = [
        client.post(
            "/webhooks/github", content=body, headers=mine | {"X-Hub-Signature-256": theirs}
        ),
        client.post(
            "/webhooks/github", content=body, headers=mine | {"X-Hub-Signature-256": "sha256=zz"}
        ),
        client.post(
            "/webhooks/github",
            content=body,
            headers=mine
            | {"X-GitHub-Hook-ID": "x" + SECRET, "X-GitHub-Delivery": str(uuid.uuid4())},
        ),
    ]
    for answer, status in zip(answers, (401, 401, 400), strict=True):
        assert answer.status_code == status
        assert SECRET not in answer.text
        assert theirs.removeprefix("sha256=") not in answer.text
        assert mine["X-Hub-Signature-256"].removeprefix("sha256=") not in answer.text
