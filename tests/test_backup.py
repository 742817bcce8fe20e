"""``pulsehook backup``: a consistent copy while the real server receives deliveries."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from pulsehook.app import create_app
from pulsehook.cli import main
from pulsehook.settings import Settings
from pulsehook.store.db import open_database, transaction, wrap
from pulsehook.store.deliveries import Delivery, insert_batch

from .conftest import AUTH, deliver, live, payload, wait_for

pytestmark = pytest.mark.sqlite_only("backup copies the SQLite file (PostgreSQL has pg_dump)")

HISTORY = 2000  # deliveries already stored when the backups run
SENDS = 3000  # at most, while they run


def backup(*args: str) -> Result:
    return CliRunner().invoke(main, ["backup", *args])


def with_history(settings: Settings, count: int = HISTORY) -> None:
    """``count`` processed workflow_run deliveries, as a service that ran a while has."""
    db = wrap(open_database(settings.db_path))
    run = payload("workflow_run.completed")
    items = [
        Delivery(
            guid=f"history-{i}",
            event="workflow_run",
            payload=json.dumps(run | {"workflow_run": run["workflow_run"] | {"id": 10**7 + i}}),
            content_type="application/json",
            received_at="2026-01-01T00:00:00Z",
        )
        for i in range(count)
    ]
    transaction(db, lambda d: insert_batch(d, items))
    transaction(db, lambda d: d.execute("UPDATE deliveries SET status = 'processed'"))
    db.conn.close()


def checked(copy: Path) -> set[str]:
    """The copy's delivery guids, once it has passed every check a restore relies on."""
    with sqlite3.connect(f"{copy.as_uri()}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        # Each delivery and its body are one commit: a torn copy would split them.
        orphans = conn.execute(
            "SELECT count(*) FROM deliveries d LEFT JOIN delivery_payloads p"
            " ON p.delivery_id = d.id WHERE p.delivery_id IS NULL"
        ).fetchone()
        assert orphans == (0,)
        return {guid for (guid,) in conn.execute("SELECT guid FROM deliveries")}


def test_backup_while_the_service_receives_deliveries(settings: Settings, tmp_path: Path) -> None:
    with_history(settings)
    acked: list[tuple[str, float]] = []  # guid, when its 202 came back
    refused: list[int] = []
    stop = threading.Event()
    with live(create_app(settings)) as srv:

        def send() -> None:
            with httpx.Client(base_url=srv.url, timeout=10) as client:
                for _ in range(SENDS):
                    if stop.is_set():
                        return
                    guid = str(uuid.uuid4())
                    answer = deliver(client, "push", payload("push"), guid=guid)
                    if answer.status_code == 202:
                        acked.append((guid, time.monotonic()))
                    else:
                        refused.append(answer.status_code)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            wait_for(lambda: len(acked) >= 20)
            copies = []
            for number in range(3):
                started = time.monotonic()
                dest = tmp_path / "backups" / f"pulsehook-{number}.db"
                result = backup(str(dest), "--data-dir", str(settings.data_dir))
                assert result.exit_code == 0, result.output
                assert f"backed up {settings.db_path} to {dest}" in result.output
                assert " MiB (" in result.output and "integrity_check ok" in result.output
                copies.append((dest, started))
        finally:
            stop.set()
            sender.join()
        with httpx.Client(base_url=srv.url, headers=AUTH) as client:
            stored = client.get("/api/v1/status").json()["deliveries"]
    assert refused == []
    assert sum(stored.values()) == HISTORY + len(acked)
    for dest, started in copies:
        guids = checked(dest)
        assert {f"history-{i}" for i in range(HISTORY)} <= guids
        # Every delivery acknowledged before the backup began is in it.
        assert {guid for guid, at in acked if at < started} <= guids
        assert dest.stat().st_mode & 0o777 == 0o600
    # The temporary files are gone; only the copies are left.
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == [
        "pulsehook-0.db",
        "pulsehook-1.db",
        "pulsehook-2.db",
    ]


def test_a_restored_backup_is_served(settings: Settings, tmp_path: Path) -> None:
    copy = tmp_path / "backup.db"
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url) as client:
        for _ in range(5):
            assert deliver(client, "push", payload("push")).status_code == 202
        assert backup(str(copy), "--data-dir", str(settings.data_dir)).exit_code == 0
    # The README's restore: service stopped, its -wal and -shm gone, the copy in place.
    restored = settings.model_copy(update={"data_dir": tmp_path / "restored"})
    restored.data_dir.mkdir()
    shutil.copyfile(copy, restored.db_path)
    with (
        live(create_app(restored)) as srv,
        httpx.Client(base_url=srv.url, headers=AUTH) as client,
    ):
        assert sum(client.get("/api/v1/status").json()["deliveries"].values()) == 5
        assert deliver(client, "push", payload("push")).status_code == 202
        wait_for(lambda: client.get("/api/v1/status").json()["deliveries"]["pending"] == 0)
    with sqlite3.connect(restored.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT count(*) FROM deliveries").fetchone() == (6,)


def test_backup_refuses_to_overwrite_unless_forced(settings: Settings, tmp_path: Path) -> None:
    with_history(settings, 10)
    dest = tmp_path / "backup.db"
    dest.write_text("last week's backup")
    refused = backup(str(dest), "--data-dir", str(settings.data_dir))
    assert refused.exit_code == 1
    assert f"Error: {dest} exists: pass --force to replace it" in refused.output
    assert dest.read_text() == "last week's backup"
    forced = backup(str(dest), "--force", "--data-dir", str(settings.data_dir))
    assert forced.exit_code == 0, forced.output
    assert len(checked(dest)) == 10


def test_backup_never_replaces_the_live_database(settings: Settings) -> None:
    with_history(settings, 10)
    for target in (settings.db_path, Path(f"{settings.db_path}-wal")):
        result = backup(str(target), "--force", "--data-dir", str(settings.data_dir))
        assert result.exit_code == 1
        assert "is the live database" in result.output
    with sqlite3.connect(settings.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM deliveries").fetchone() == (10,)


def test_a_damaged_database_leaves_no_backup(settings: Settings, tmp_path: Path) -> None:
    with_history(settings, 200)
    with sqlite3.connect(settings.db_path) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")  # all in the main file, to damage it
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    with open(settings.db_path, "r+b") as raw:
        raw.seek(page * (pages // 2))
        raw.write(b"\xff" * page)  # a page in the middle of the deliveries' bodies
    dest = tmp_path / "backups" / "pulsehook.db"
    result = backup(str(dest), "--data-dir", str(settings.data_dir))
    assert result.exit_code == 1
    (line,) = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert "integrity_check" in line and "may be damaged" in line
    assert "Traceback" not in result.output
    assert list(dest.parent.iterdir()) == []  # neither the copy nor its temporary file
