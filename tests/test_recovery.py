"""Crash safety: what was acknowledged is never lost, and gets processed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from pulsehook.app import create_app
from pulsehook.settings import Settings
from pulsehook.store.deliveries import Delivery, encode_payload, insert_batch

from . import stores
from .conftest import AUTH, SECRET, deliver, drained, free_port, live, payload, wait_for


def store_raw(settings: Settings, *deliveries: Delivery) -> None:
    db = stores.Handle(settings.db_path)
    db.transact(lambda d: insert_batch(d, list(deliveries)))
    db.close()


def raw(guid: str, event: str, text: str) -> Delivery:
    return Delivery(
        guid=guid,
        event=event,
        payload=text,
        content_type="application/json",
        received_at="2026-01-01T00:00:00Z",
    )


def statuses(settings: Settings) -> dict[str, tuple[str, str | None]]:
    with stores.connect(settings.db_path) as conn:
        return {g: (s, e) for g, s, e in conn.execute("SELECT guid, status, error FROM deliveries")}


def test_stored_unprocessed_delivery_is_processed_at_start(settings: Settings) -> None:
    store_raw(
        settings, raw("left-pending", "workflow_run", json.dumps(payload("workflow_run.completed")))
    )
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as client:
        wait_for(lambda: drained(client))
        assert statuses(settings)["left-pending"] == ("processed", None)
        assert client.get("/api/v1/repos").json()["count"] == 1


def test_processing_error_is_stored_and_retried_at_next_start(settings: Settings) -> None:
    # A delivery whose stored body cannot be processed (as a bug would leave it).
    store_raw(
        settings,
        raw("broken", "push", "{not json"),
        raw("fine", "push", json.dumps(payload("push"))),
    )
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as client:
        wait_for(lambda: drained(client))
        status, error = statuses(settings)["broken"]
        assert status == "error" and error is not None and "JSONDecodeError" in error
        assert statuses(settings)["fine"] == ("processed", None)
        # The server keeps serving.
        assert deliver(client, "push", payload("push")).status_code == 202
        listed = client.get("/api/v1/deliveries", params={"status": "error"}).json()
        assert [d["guid"] for d in listed["deliveries"]] == ["broken"]
    # Fixed (as an upgrade would): the next start processes it.
    with stores.connect(settings.db_path) as conn:
        conn.execute(
            "UPDATE delivery_payloads SET payload = ?"
            " WHERE delivery_id = (SELECT id FROM deliveries WHERE guid = 'broken')",
            (encode_payload(json.dumps(payload("push"))),),
        )
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as client:
        wait_for(lambda: statuses(settings)["broken"][0] == "processed")


def test_sigkill_mid_burst_loses_nothing_acknowledged(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = {
        **os.environ,
        "PULSEHOOK_WEBHOOK_SECRET": SECRET,
        "PULSEHOOK_DATA_DIR": str(data),
        "PULSEHOOK_PORT": str(port),
        "PULSEHOOK_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pulsehook", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    acknowledged: list[str] = []
    stop = threading.Event()
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, headers=AUTH, timeout=5) as client:
            wait_for(lambda: _up(client), timeout=20)

            def sender(worker: int) -> None:
                with httpx.Client(base_url=url, headers=AUTH, timeout=5) as c:
                    body = payload("workflow_run.completed")
                    for n in range(2000):
                        if stop.is_set():
                            return
                        guid = f"w{worker}-{n}"
                        try:
                            response = deliver(c, "workflow_run", body, guid=guid)
                        except httpx.HTTPError:
                            return
                        if response.is_success:
                            acknowledged.append(guid)

            threads = [threading.Thread(target=sender, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            wait_for(lambda: len(acknowledged) >= 200, timeout=30)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            stop.set()
            for t in threads:
                t.join(timeout=10)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    with stores.connect(data / "pulsehook.db") as conn:
        kept = {g for (g,) in conn.execute("SELECT guid FROM deliveries")}
    assert len(acknowledged) >= 200
    assert set(acknowledged) <= kept


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.HTTPError:
        time.sleep(0.05)
        return False
