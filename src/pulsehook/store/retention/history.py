"""History in the derived state: what the current state reads of it, what is left
of it once its deliveries are gone, and coverage changes measured again."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...health import MAX_BUILDS
from .. import sweeps
from ..db import Tx
from .index import BATCH, Key

if TYPE_CHECKING:
    from .run import Turn


def rows(turn: Turn) -> None:
    """History rows whose last delivery is old and that nothing keeps (a row the
    doomed deliveries did not take with them: a safety net, and the cells' end)."""
    p = turn.p
    at = p.rows_at or (sweeps.position(turn.db, p.row("rows")) or 0, -(2**63))
    finished, first = False, True
    while not finished and (first or turn.more()):
        first = False
        batch = turn.db.execute(
            "SELECT cell, delivery_id, row FROM retention_cells WHERE row IS NOT NULL"
            " AND (delivery_id, cell) > (?, ?) AND delivery_id <= ?"
            " ORDER BY delivery_id, cell LIMIT ?",
            (*at, turn.last, BATCH),
        ).fetchall()
        finished = len(batch) < BATCH
        for cell, did, text in batch:
            at = (int(did), int(cell))
            key = tuple(json.loads(text))
            if not turn.stays(key):
                turn.drop_row(int(cell), key)
            if not turn.more():
                finished = finished and (cell, did, text) == batch[-1]
                break
    if finished:
        p.rows_at = None
        return turn.done("rows")
    p.rows_at = at
    sweeps.advance(turn.db, p.row("rows"), at[0], finished_at=None)


def rebase(turn: Turn) -> None:
    """On each branch that lost figures, measure every change against the figure
    before it that is left, as processing them again would (state._coverage)."""
    db, p = turn.db, turn.p
    at, first = p.rebase_at, True
    while first or turn.more():
        first = False
        if at is None:
            found = db.execute(
                "SELECT branch FROM retention_rebase WHERE run = ? LIMIT 1", (p.name,)
            ).fetchone()
            if found is None:
                p.rebase_at = None
                return turn.done("rebase")
            at = (str(found[0]), 0)
        repo, branch = json.loads(at[0])
        figures = db.execute(
            "SELECT id, value, delta, at FROM coverage WHERE repo_id = ? AND branch IS ?"
            " AND id > ? ORDER BY id LIMIT ?",
            (repo, branch, at[1], BATCH),
        ).fetchall()
        for row_id, value, delta, when in figures:
            prev = previous_figure(db, repo, branch, row_id, when)
            new = round(value - prev[1], 4) if prev else None
            if new != delta:
                db.execute("UPDATE coverage SET delta = ? WHERE id = ?", (new, row_id))
                p.counts.rebased += 1
            at = (at[0], int(row_id))
            if not turn.more():
                break
        else:
            if len(figures) < BATCH:
                db.execute(
                    "DELETE FROM retention_rebase WHERE run = ? AND branch = ?", (p.name, at[0])
                )
                at = None
    p.rebase_at = at


def _cached(pins: dict[Key, Any], key: Key, make: Callable[[], Any]) -> Any:
    if key not in pins:
        pins[key] = make()
    return pins[key]


def pinned(db: Tx, pins: dict[Key, Any], key: Key) -> bool:
    table = key[0]
    if table == "builds":
        # The runs a score reads. (A workflow's last run and its summary item are
        # tables of their own, made of the same deliveries: those stay for them.)
        row = db.execute(
            "SELECT repo_id FROM builds WHERE source = ? AND run_id = ? AND job = ?", key[1:]
        ).fetchone()
        if row is None:
            return False
        return tuple(key[1:]) in _cached(pins, ("last", row[0]), lambda: _last_builds(db, row[0]))
    if table == "coverage":
        repo, branch = key[1], key[2]
        pinned = _cached(pins, ("cov", repo, branch), lambda: _coverage_pins(db, repo, branch))
        where = "repo_id = ? AND branch IS ? AND sha IS ? AND value = ? AND at IS ?"
        return bool(_column(db, f"SELECT id FROM coverage WHERE {where}", *key[1:]) & pinned)
    if table in ("vulnerabilities", "dependency_prs"):
        state = db.execute(
            f"SELECT state FROM {table} WHERE repo_id = ? AND number = ?", key[1:]
        ).fetchone()
        if state is None or state[0] == "open":
            return state is not None
        # The newest per repository: a score knows Dependabot is on from it.
        newest = f"SELECT number FROM {table} WHERE repo_id = ? ORDER BY coalesce(updated_at, '')"
        found = _cached(
            pins, (table, key[1]), lambda: _column(db, f"{newest} DESC LIMIT 1", key[1])
        )
        return key[2] in found
    return False  # activity: a repository keeps its last push and activity times itself


def _column(db: Tx, sql: str, *params: Any) -> set[Any]:
    return {r[0] for r in db.execute(sql, params)}


def _last_builds(db: Tx, repo: int) -> set[Key]:
    """The runs a score reads (store/health.py), and any tied with the last of them."""
    rows = db.execute(
        "SELECT source, run_id, job, completed_at, attempt FROM builds WHERE repo_id = ?"
        " AND default_branch = 1 AND completed_at IS NOT NULL AND source != 'workflow_job'"
        " ORDER BY completed_at DESC, attempt DESC LIMIT ?",
        (repo, MAX_BUILDS),
    ).fetchall()
    keys = {tuple(r[:3]) for r in rows}
    if len(rows) == MAX_BUILDS:
        keys |= {
            tuple(r)
            for r in db.execute(
                "SELECT source, run_id, job FROM builds WHERE repo_id = ? AND default_branch = 1"
                " AND source != 'workflow_job' AND completed_at = ? AND attempt = ?",
                (repo, rows[-1][3], rows[-1][4]),
            )
        }
    return keys


def _coverage_pins(db: Tx, repo: int, branch: str | None) -> set[int]:
    """The newest figure on a branch and the one its change was measured against."""
    newest = db.execute(
        "SELECT id, at FROM coverage WHERE repo_id = ? AND branch IS ?"
        " ORDER BY at DESC, id DESC LIMIT 1",
        (repo, branch),
    ).fetchone()
    if newest is None:
        return set()
    prev = previous_figure(db, repo, branch, int(newest[0]), newest[1])
    return {int(newest[0]), *([prev[0]] if prev else [])}


def previous_figure(
    db: Tx, repo: int, branch: str | None, row_id: int, at: str | None
) -> tuple[int, float] | None:
    """The figure a figure's change is measured against: of those inserted before
    it, at or before its time, the newest by (at, id); figures without a time last
    (state._coverage's order). Two index walks instead of one over coalesce()."""
    found = None
    if at is not None:
        found = db.execute(
            "SELECT id, value FROM coverage WHERE repo_id = ? AND branch IS ? AND at <= ?"
            " AND id < ? ORDER BY at DESC, id DESC LIMIT 1",
            (repo, branch, at, row_id),
        ).fetchone()
    if found is None:
        found = db.execute(
            "SELECT id, value FROM coverage WHERE repo_id = ? AND branch IS ? AND at IS NULL"
            " AND id < ? ORDER BY id DESC LIMIT 1",
            (repo, branch, row_id),
        ).fetchone()
    return (int(found[0]), float(found[1])) if found else None


_WHERE = {
    "builds": "source = ? AND run_id = ? AND job = ?",
    "activity": "repo_id = ? AND branch IS ? AND head_sha IS ?",
    "coverage": "repo_id = ? AND branch IS ? AND sha IS ? AND value = ? AND at IS ?",
    "vulnerabilities": "repo_id = ? AND number = ? AND state != 'open'",
    "dependency_prs": "repo_id = ? AND number = ? AND state != 'open'",
}


def delete_row(db: Tx, key: Key, *, dry_run: bool) -> int:
    table, where = key[0], _WHERE[key[0]]
    if dry_run:
        return int(db.execute(f"SELECT count(*) FROM {table} WHERE {where}", key[1:]).fetchone()[0])
    return int(db.execute(f"DELETE FROM {table} WHERE {where}", key[1:]).rowcount)
