"""The store's own mechanics: payload encoding and the writer's log management."""

from __future__ import annotations

import json
import os
import sqlite3
import zlib
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsehook.app import create_app
from pulsehook.settings import Settings
from pulsehook.store.db import SqliteWriter
from pulsehook.store.deliveries import ZSTD_MAGIC, decode_payload, encode_payload

from .conftest import AUTH, deliver, drained, live, payload, wait_for
from .test_recovery import raw, statuses, store_raw

pytestmark = pytest.mark.sqlite_only("the SQLite writer, its WAL, its file and its query plans")


@given(st.binary(max_size=5000))
def test_payload_encoding_round_trips_any_bytes(data: bytes) -> None:
    stored = encode_payload(data)
    assert stored.startswith(ZSTD_MAGIC)
    assert decode_payload(stored) == data


def test_text_payloads_are_stored_as_utf8() -> None:
    assert decode_payload(encode_payload("caf\u00e9")) == "caf\u00e9".encode()


def test_real_payload_shrinks_several_times() -> None:
    body = json.dumps(payload("workflow_run.completed"), separators=(",", ":")).encode()
    assert len(encode_payload(body)) * 5 < len(body)


def test_zlib_payloads_of_earlier_versions_still_read() -> None:
    body = json.dumps(payload("push")).encode()
    assert decode_payload(zlib.compress(body, 1)) == body


def test_zlib_payload_left_pending_is_processed_at_start(settings: Settings) -> None:
    store_raw(settings, raw("older", "push", json.dumps(payload("push"))))
    legacy = zlib.compress(json.dumps(payload("push")).encode(), 1)
    with sqlite3.connect(settings.db_path) as conn:
        conn.execute("UPDATE delivery_payloads SET payload = ?", (legacy,))
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as client:
        wait_for(lambda: drained(client))
        assert statuses(settings)["older"] == ("processed", None)


def _fill(rows: int, size: int) -> Any:
    def write(db: Any) -> None:
        db.executemany("INSERT INTO blobs (b) VALUES (?)", [(os.urandom(size),)] * rows)

    return write


def test_log_is_checkpointed_once_past_the_cap_not_after_every_commit(tmp_path: Path) -> None:
    db_path = tmp_path / "w.db"
    cap = 256 * 1024
    writer = SqliteWriter(db_path, wal_step=cap, wal_cap=cap, wal_keep=0)
    wal = Path(f"{db_path}-wal")
    try:
        writer.submit(lambda db: db.execute("CREATE TABLE blobs (b BLOB)")).result()
        # One transaction well past the cap: the writer checkpoints after it.
        writer.submit(_fill(100, 4096)).result()
        # The log starts over with the next commit and is cut back, so its size
        # counts what was written since; before, it kept its peak size and every
        # later commit looked "past the cap" and paid a checkpoint.
        jobs = [writer.submit(_fill(1, 1000)) for _ in range(5)]
        for job in jobs:
            job.result()
        size = wal.stat().st_size
        assert 0 < size < cap
        with sqlite3.connect(db_path) as conn:
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        # Five commits queued back to back share one log: no checkpoint between them.
        assert frames >= 5
    finally:
        writer.close()
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM blobs").fetchone()[0] == 105


def test_checkpoints_run_beside_the_writer_and_the_log_starts_over(tmp_path: Path) -> None:
    db_path = tmp_path / "w.db"
    step = 256 * 1024
    writer = SqliteWriter(db_path, wal_step=step, wal_keep=0)
    wal = Path(f"{db_path}-wal")
    try:
        writer.submit(lambda db: db.execute("CREATE TABLE blobs (b BLOB)")).result()
        writer.submit(_fill(100, 4096)).result()  # past the step: a checkpoint is asked for
        wait_for(lambda: writer.checkpointer.passes > 0)

        # Once the log is copied, commits keep going and it starts over from the top.
        def small_again() -> bool:
            writer.submit(_fill(1, 100)).result()
            return wal.stat().st_size < step

        wait_for(small_again)
    finally:
        writer.close()
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM blobs").fetchone()[0] >= 101


def test_a_quiet_writer_checkpoints(tmp_path: Path) -> None:
    writer = SqliteWriter(tmp_path / "w.db")
    try:
        writer.submit(lambda db: db.execute("CREATE TABLE t (x)")).result()
        wait_for(lambda: writer.checkpointer.passes > 0)
    finally:
        writer.close()


def _plans(conn: sqlite3.Connection, run: Any) -> list[str]:
    """The query plan of every statement ``run`` executes on ``conn``."""
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        run()
    finally:
        conn.set_trace_callback(None)
    return [
        " / ".join(str(step[3]) for step in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        for sql in statements
        if sql.lstrip().upper().startswith("SELECT")
    ]


def test_a_score_reads_one_repository_by_index_without_sorting(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from pulsehook.ingest import process_one
    from pulsehook.store import health as health_store
    from pulsehook.store.db import open_database, transaction, wrap
    from pulsehook.store.deliveries import Delivery, insert_batch, next_batch

    db = wrap(open_database(tmp_path / "pulsehook.db"))
    when = "2026-01-01T00:00:00Z"
    stored = []
    for n in range(3):
        run = payload("workflow_run.completed")
        run["workflow_run"]["id"] = n  # three runs finished at the same moment
        stored.append(Delivery(f"run{n}", "workflow_run", json.dumps(run), "json", when))
    alert = payload("dependabot_alert.created")
    stored.append(Delivery("alert", "dependabot_alert", json.dumps(alert), "json", when))
    transaction(db, lambda d: insert_batch(d, stored))
    for row in next_batch(db, after_id=0, limit=100, statuses=("pending",)):
        transaction(db, partial(process_one, row=row, now=when))
    repo_id = next(db.query("SELECT id FROM repositories"))["id"]
    assert next(db.query("SELECT count(*) AS n FROM builds"))["n"] == 3
    now = datetime(2026, 1, 2, tzinfo=UTC)
    for default_branch in ("master", None):
        db.execute("UPDATE repositories SET default_branch = ?", (default_branch,))
        plans = _plans(db.conn, lambda: health_store.recompute(db, repo_id, now))
        assert len(plans) >= 6
        for plan in plans:
            # Every table is searched by key; nothing is scanned or sorted.
            assert "TEMP B-TREE" not in plan, plan
            steps = plan.split(" / ")
            assert all(s.startswith(("SEARCH", "SCALAR", "SCAN CONSTANT")) for s in steps), plan


def test_a_full_disk_answers_503_and_recovers_by_itself_once_space_frees(
    settings: Settings,
) -> None:
    """SQLite's page limit gives the same SQLITE_FULL a full disk gives."""
    app = create_app(settings.model_copy(update={"busy_timeout_ms": 200}))
    body = payload("workflow_run.completed")
    with live(app) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as client:
        assert deliver(client, "workflow_run", body, guid="before").status_code == 202
        wait_for(lambda: drained(client))
        writer = app.state.runtime.writer

        def fill(db: Any) -> None:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages}")

        writer.submit(fill).result(timeout=10)
        acknowledged, refused = [], 0
        for n in range(2000):
            body["workflow_run"]["id"] = 10_000 + n  # new runs: processing needs pages
            answer = deliver(client, "workflow_run", body, guid=f"full-{n}")
            assert answer.status_code in (202, 503), answer.text
            if answer.status_code == 202:
                acknowledged.append(f"full-{n}")
            else:
                assert answer.json()["error"]["code"] == "storage_unavailable"
                refused += 1
                if refused == 3:
                    break
        assert refused == 3
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "database or disk is full" in " ".join(ready.json()["reasons"])

        # Space frees. Nothing is sent: the service must notice by itself.
        writer.submit(lambda db: db.execute("PRAGMA max_page_count = 1073741823"))
        wait_for(lambda: client.get("/readyz").status_code == 200, timeout=20)
        wait_for(lambda: drained(client), timeout=20)
        assert deliver(client, "workflow_run", body, guid="after").status_code == 202
    stored = statuses(settings)
    # Nothing acknowledged was lost, and every acknowledged delivery was processed.
    assert all(stored[g] == ("processed", None) for g in ["before", *acknowledged])


def test_one_repository_is_read_by_key_whatever_the_number_of_repositories(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime

    from pulsehook.store.db import open_database, wrap
    from pulsehook.store.metrics import one_repo

    db = wrap(open_database(tmp_path / "pulsehook.db"))
    for n in (1, 2):
        db.execute(
            "INSERT INTO repositories (id, full_name, owner, default_branch, first_seen_at,"
            " last_seen_at) VALUES (?, ?, 'o', 'main', ?, ?)",
            (n, f"o/r{n}", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        )
    plans = _plans(db.conn, lambda: one_repo(db, 2, datetime(2026, 1, 1, tzinfo=UTC)))
    assert len(plans) >= 5
    for plan in plans:
        steps = plan.split(" / ")
        # Every table is searched by the repository's key: nothing scans them all.
        assert not any(s.startswith("SCAN") and "CONSTANT" not in s for s in steps), plan
