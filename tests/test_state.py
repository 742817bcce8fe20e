"""State tables after realistic sequences, in any arrival order; replay rebuilds them."""

from __future__ import annotations

import copy
import json
from functools import partial
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pulsehook.ingest import clear_derived, process_chunk
from pulsehook.store.db import Database, open_database, transaction, wrap
from pulsehook.store.deliveries import Delivery, insert_batch
from pulsehook.store.queries import repos

from .conftest import payload

NOW = "2026-01-01T00:00:00Z"


def sequence() -> list[tuple[str, str, dict[str, Any]]]:
    """push, run requested, run failed, re-run succeeded, alert created, alert fixed.

    Built from GitHub's example payloads; only the fields that make it one
    story (ids, branch, conclusion, times) are changed.
    """
    push = payload("push")
    requested = payload("workflow_run.requested")
    failed = copy.deepcopy(payload("workflow_run.completed"))
    failed["workflow_run"].update(conclusion="failure", updated_at="2020-10-05T16:40:00Z")
    succeeded = copy.deepcopy(payload("workflow_run.completed"))
    succeeded["workflow_run"].update(
        run_attempt=2, updated_at="2020-10-05T17:00:00Z", conclusion="success"
    )
    created = payload("dependabot_alert.created")
    fixed = copy.deepcopy(created)
    fixed["action"] = "fixed"
    fixed["alert"].update(
        state="fixed", fixed_at="2099-01-01T00:00:00Z", updated_at="2099-01-01T00:00:00Z"
    )
    return [
        ("push", "d-push", push),
        ("workflow_run", "d-req", requested),
        ("workflow_run", "d-fail", failed),
        ("workflow_run", "d-ok", succeeded),
        ("dependabot_alert", "d-alert", created),
        ("dependabot_alert", "d-fixed", fixed),
    ]


def run(path: Path, items: list[tuple[str, str, dict[str, Any]]]) -> Database:
    db = wrap(open_database(path))
    batch = [
        Delivery(
            guid=g, event=e, payload=json.dumps(p), content_type="application/json", received_at=NOW
        )
        for e, g, p in items
    ]
    transaction(db, lambda d: insert_batch(d, batch))
    drain(db)
    return db


def drain(db: Database) -> None:
    after = 0
    while True:
        after, count, _ = transaction(
            db, partial(process_chunk, after_id=after, now=NOW, statuses=("pending",))
        )
        if not count:
            return


def snapshot(db: Database) -> dict[str, Any]:
    tables = ("builds", "vulnerabilities", "activity", "repositories")
    out: dict[str, Any] = {}
    for table in tables:
        rows = [
            {k: v for k, v in r.items() if k not in ("id", "first_seen_at")}
            for r in db.query(f"SELECT * FROM {table}")
        ]
        out[table] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return out


def test_sequence_in_order(tmp_path: Path) -> None:
    db = run(tmp_path / "a.db", sequence())
    statuses = {r["status"] for r in db.query("SELECT status FROM deliveries")}
    assert statuses == {"processed"}
    (run_row,) = db.query("SELECT * FROM builds")
    assert (run_row["status"], run_row["attempt"]) == ("success", 2)
    (alert,) = db.query("SELECT * FROM vulnerabilities")
    assert alert["state"] == "fixed"
    summary = {r["name"]: r for r in repos(db)}
    assert summary["octo-org/octo-repo"]["build"]["state"] == "success"
    assert summary["octo-org/octo-repo"]["vulnerabilities"]["open"] == 0


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(range(6)))
def test_any_arrival_order_gives_the_same_state(tmp_path_factory: Any, order: list[int]) -> None:
    base = tmp_path_factory.mktemp("order")
    items = sequence()
    expected = snapshot(run(base / "in-order.db", items))
    shuffled = snapshot(run(base / "shuffled.db", [items[i] for i in order]))
    assert shuffled["builds"] == expected["builds"]
    assert shuffled["vulnerabilities"] == expected["vulnerabilities"]
    assert len(shuffled["activity"]) == len(expected["activity"])


def test_failed_then_in_progress_event_does_not_reopen_a_run(tmp_path: Path) -> None:
    failed = copy.deepcopy(payload("workflow_run.completed"))
    failed["workflow_run"].update(conclusion="failure", updated_at="2020-10-05T16:40:00Z")
    db = run(
        tmp_path / "s.db",
        [("workflow_run", "f", failed), ("workflow_run", "r", payload("workflow_run.requested"))],
    )
    (row,) = db.query("SELECT status, completed_at FROM builds")
    assert row["status"] == "failure" and row["completed_at"] == "2020-10-05T16:40:00Z"


def test_rename_keeps_history_by_repository_id(tmp_path: Path) -> None:
    renamed = payload("repository.renamed")
    before = copy.deepcopy(payload("workflow_run.completed"))
    before["repository"]["id"] = renamed["repository"]["id"]
    before["repository"]["full_name"] = "Codertocat/old-name"
    db = run(tmp_path / "r.db", [("workflow_run", "w", before), ("repository", "r", renamed)])
    (repo,) = db.query("SELECT id, full_name FROM repositories")
    assert repo == {
        "id": renamed["repository"]["id"],
        "full_name": renamed["repository"]["full_name"],
    }
    (build,) = db.query("SELECT repo_id FROM builds")
    assert build["repo_id"] == repo["id"]


def test_archived_and_deleted_flags(tmp_path: Path) -> None:
    archived = copy.deepcopy(payload("repository.created"))
    archived["action"] = "archived"
    archived["repository"]["archived"] = True
    deleted = copy.deepcopy(archived)
    deleted["action"] = "deleted"
    db = run(tmp_path / "f.db", [("repository", "a", archived)])
    (row,) = db.query("SELECT archived, deleted FROM repositories")
    assert (row["archived"], row["deleted"]) == (1, 0)
    db = run(tmp_path / "f.db", [("repository", "d", deleted)])
    (row,) = db.query("SELECT archived, deleted FROM repositories")
    assert row["deleted"] == 1
    assert repos(db) == []


def test_installation_tracks_and_untracks(tmp_path: Path) -> None:
    db = run(
        tmp_path / "i.db",
        [("installation_repositories", "a", payload("installation_repositories.added"))],
    )
    tracked = {r["full_name"]: r["tracked"] for r in db.query("SELECT * FROM repositories")}
    assert tracked and all(v == 1 for v in tracked.values())
    db = run(
        tmp_path / "i.db",
        [("installation_repositories", "r", payload("installation_repositories.removed"))],
    )
    removed = {
        r["full_name"] for r in payload("installation_repositories.removed")["repositories_removed"]
    }
    rows = {r["full_name"]: r["tracked"] for r in db.query("SELECT * FROM repositories")}
    assert all(rows[name] == 0 for name in removed if name in rows)


def test_coverage_delta_is_against_the_previous_value_on_the_branch(tmp_path: Path) -> None:
    first = copy.deepcopy(payload("status"))
    first.update(
        context="codecov/project",
        description="90.00% (target 80.00%)",
        updated_at="2020-01-01T00:00:00Z",
    )
    second = copy.deepcopy(first)
    second.update(
        description="82.50% (-7.50%) compared to abc1234", updated_at="2020-01-02T00:00:00Z"
    )
    db = run(tmp_path / "c.db", [("status", "c1", first), ("status", "c2", second)])
    values = [
        (r["value"], r["delta"]) for r in db.query("SELECT value, delta FROM coverage ORDER BY at")
    ]
    assert values == [(90.0, None), (82.5, -7.5)]


def test_replay_rebuilds_the_same_state(tmp_path: Path) -> None:
    db = run(tmp_path / "p.db", sequence())
    before = snapshot(db)
    transaction(db, clear_derived)
    assert list(db.query("SELECT * FROM builds")) == []
    drain(db)
    assert snapshot(db) == before


def test_an_older_payloads_repository_flags_lose_to_a_newer_ones(tmp_path: Path) -> None:
    newer = copy.deepcopy(payload("push"))
    newer["repository"].update(archived=True, private=True, updated_at="2026-03-02T00:00:00Z")
    older = copy.deepcopy(payload("push"))
    older["repository"].update(archived=False, private=False, updated_at="2026-03-01T00:00:00Z")
    db = run(tmp_path / "o.db", [("push", "new", newer), ("push", "old", older)])
    (row,) = db.query("SELECT archived, private, updated_at FROM repositories")
    assert (row["archived"], row["private"]) == (1, 1)
    assert row["updated_at"] == "2026-03-02T00:00:00Z"
    # A newer one still wins over both.
    newest = copy.deepcopy(older)
    newest["repository"]["updated_at"] = "2026-03-03T00:00:00Z"
    db = run(tmp_path / "o.db", [("push", "newest", newest)])
    (row,) = db.query("SELECT archived, private FROM repositories")
    assert (row["archived"], row["private"]) == (0, 0)
