"""A retention run: its state in the store, its turns, its phases over deliveries."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ...clock import iso
from .. import sweeps
from ..db import Tx
from . import alerts, history, verdict
from .index import Key, cell_id, index
from .schema import check_days

PHASES = ("judge", "settle", "delete", "rows", "rebase", "tables", "vacuum")


@dataclass
class Counts:
    deliveries: int = 0
    kept: int = 0  # old deliveries kept: the state is made of them
    payload_bytes: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows pruned
    rebased: int = 0  # coverage figures now measured against what is left
    free_pages: int = 0  # at the end: reused before the file grows

    def add(self, table: str, n: int) -> None:
        if n:
            self.rows[table] = self.rows.get(table, 0) + n

    def line(self) -> str:
        tables = ", ".join(f"{t} {n}" for t, n in sorted(self.rows.items())) or "none"
        return (
            f"{self.deliveries} deliveries ({self.payload_bytes} payload bytes), {self.kept} old"
            f" ones kept as the state's sources; history rows: {tables};"
            f" {self.rebased} coverage change(s) re-based; {self.free_pages} free page(s)"
        )


class Pruner:
    """Carries a run on, a writer turn at a time. The run's place is in the store,
    so any process may carry it on; this keeps caches of what the current state
    pins (pins only go away while a run goes on: newer runs, figures and alerts
    replace them), table cursors, and the counts for the run's log line."""

    def __init__(self, *, dry_run: bool = False, event_rules: frozenset[str] = frozenset()):
        self.name = "retention-dry" if dry_run else "retention"
        self.dry_run = dry_run
        self.event_rules = event_rules  # rules on one-shot facts (push, repo): nothing resolves
        self.counts = Counts()
        self.turns = 0  # writer turns of the run in this process
        self.finished = False  # the last step ended the run
        self.pins: dict[Key, Any] = {}
        self.rows_at: tuple[int, int] | None = None
        self.rebase_at: tuple[str, int] | None = None  # branch (JSON), last figure done
        self.settled = False  # the settling pass under way has kept none so far
        self.counted: set[int] = set()  # a dry run's history rows counted already
        self.tables_at: dict[str, int] = {}

    def phase(self, db: Tx) -> str | None:
        return next((p for p in PHASES if sweeps.position(db, self.row(p)) is not None), None)

    def row(self, phase: str) -> str:
        return f"{self.name}:{phase}"

    def edge(self, db: Tx) -> tuple[int, str] | None:
        """The run's last prunable delivery id and its cutoff time."""
        row = db.execute(
            "SELECT cursor, started_at FROM sweeps WHERE name = ?", (self.row("edge"),)
        ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def begin(self, db: Tx, *, days: int, now: datetime) -> bool:
        """Start a run pruning what is older than ``days``; False if one is under way
        (a dry run left unfinished is dropped instead)."""
        check_days(days)
        if self.dry_run:
            self._drop(db)
        if days == 0 or self.phase(db) is not None:
            return False
        cutoff = iso(now - timedelta(days=days))
        db.execute(
            "INSERT OR REPLACE INTO sweeps (name, cursor, started_at, finished_at)"
            " VALUES (?, ?, ?, ?)",
            (self.row("edge"), _edge_id(db, cutoff), cutoff, iso(now)),
        )
        db.execute("DELETE FROM retention_held WHERE run = ?", (self.name,))
        db.execute("DELETE FROM retention_rebase WHERE run = ?", (self.name,))
        db.execute("DELETE FROM retention_doomed WHERE run = ?", (self.name,))
        sweeps.start(db, self.row("judge"), iso(now))
        self.counts, self.turns = Counts(), 0
        self.pins, self.rows_at, self.rebase_at, self.tables_at = {}, None, None, {}
        self.counted = set()
        return True

    def step(self, db: Tx, *, now: datetime, budget: float) -> bool:
        """One turn of the run (at most ``budget`` seconds); True while it goes on."""
        stop = time.perf_counter() + budget
        self.finished = False
        phase = self.phase(db)
        if phase is None:
            return False
        self.turns += 1
        # Processed deliveries not yet indexed come first: each turn catches up.
        if not index(db, stop=stop, at=iso(now)):
            return True
        found = self.edge(db)
        assert found is not None
        turn = Turn(db, self, *found, stop=stop, now=now)
        WORK[phase](turn)
        if self.phase(db) is not None:
            return True
        if self.dry_run:
            self._drop(db)
        self.finished = True
        return False

    def _drop(self, db: Tx) -> None:
        for table in ("retention_held", "retention_rebase", "retention_doomed"):
            db.execute(f"DELETE FROM {table} WHERE run = ?", (self.name,))
        db.execute("DELETE FROM sweeps WHERE name LIKE ?", (f"{self.name}:%",))


def _edge_id(db: Tx, cutoff: str) -> int:
    """The last delivery id received before ``cutoff`` (ids follow arrival)."""
    low, high = db.execute("SELECT min(id), max(id) FROM deliveries").fetchone()
    found = 0
    while low is not None and low <= high:
        mid = (low + high) // 2
        row = db.execute(
            "SELECT id, received_at FROM deliveries WHERE id >= ? ORDER BY id LIMIT 1", (mid,)
        ).fetchone()
        if row is None or row[1] >= cutoff:
            high = mid - 1
        else:
            found, low = int(row[0]), int(row[0]) + 1
    return found


class Turn:
    """One writer turn of a run."""

    def __init__(
        self, db: Tx, p: Pruner, last: int, cutoff: str, *, stop: float, now: datetime
    ) -> None:
        self.db = db
        self.p = p
        self.last = last  # the last delivery id the run may prune
        self.cutoff = cutoff  # what was received before it may go
        self.stop = stop  # perf_counter time the turn ends
        self.now = now

    def more(self) -> bool:
        return time.perf_counter() < self.stop

    def done(self, phase: str) -> None:
        sweeps.advance(self.db, self.p.row(phase), 0, finished_at=iso(self.now))
        later = PHASES[PHASES.index(phase) + 1 :]
        if later:
            sweeps.start(self.db, self.p.row(later[0]), iso(self.now))

    def keep(self, keys: list[Key]) -> None:
        for key in keys:
            self.db.execute(
                "INSERT OR IGNORE INTO retention_held VALUES (?, ?)", (self.p.name, cell_id(key))
            )

    def deliveries(self, where: str, params: Any) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT d.id, d.event, d.status, d.received_at, d.hook_id, d.hook_target,"
                " p.payload, length(p.payload) AS size FROM deliveries d"
                f" JOIN delivery_payloads p ON p.delivery_id = d.id WHERE {where}",
                params,
            )
        )

    def drop_row(self, cell: int, key: Key) -> None:
        """A history row goes, with its cell; a coverage figure's branch is re-based."""
        if self.p.dry_run:
            if cell not in self.p.counted:  # nothing goes: the later phases see it again
                self.p.counted.add(cell)
                self.p.counts.add(key[0], history.delete_row(self.db, key, dry_run=True))
            return
        n = history.delete_row(self.db, key, dry_run=False)
        self.p.counts.add(key[0], n)
        self.db.execute("DELETE FROM retention_cells WHERE cell = ?", (cell,))
        if key[0] == "coverage" and n:
            self.db.execute(
                "INSERT OR IGNORE INTO retention_rebase VALUES (?, ?)",
                (self.p.name, json.dumps(list(key[1:3]))),
            )

    def stays(self, key: Key) -> bool:
        """Whether a history row stays: a kept or recent delivery touches it, or the
        current state reads it."""
        cell = cell_id(key)
        if self.db.execute(
            "SELECT 1 FROM retention_held WHERE run = ? AND cell = ?", (self.p.name, cell)
        ).fetchone():
            return True
        last = self.db.execute(
            "SELECT delivery_id FROM retention_cells WHERE cell = ?", (cell,)
        ).fetchone()
        recent = last is not None and int(last[0]) > self.last
        return recent or history.pinned(self.db, self.p.pins, key)

    def vacuum(self) -> None:
        """With auto_vacuum = INCREMENTAL, free pages go back to the file system;
        otherwise they stay in the file, reused before it grows. PostgreSQL's
        autovacuum does this for itself."""
        if self.db.dialect == "postgresql":
            self.done("vacuum")
            return
        incremental = self.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        while incremental and not self.p.dry_run:
            if not self.db.execute("PRAGMA freelist_count").fetchone()[0]:
                break
            self.db.execute("PRAGMA incremental_vacuum(64)").fetchall()
            if not self.more():
                return
        self.done("vacuum")
        self.p.counts.free_pages = int(self.db.execute("PRAGMA freelist_count").fetchone()[0])

    def delete_rows(self, table: str, column: str, ids: list[int]) -> int:
        if ids and not self.p.dry_run:
            marks = ",".join("?" for _ in ids)
            self.db.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)
        return len(ids)


WORK: dict[str, Callable[[Turn], None]] = {
    "judge": verdict.judge,
    "settle": verdict.settle,
    "delete": verdict.delete,
    "rows": history.rows,
    "rebase": history.rebase,
    "tables": alerts.tables,
    "vacuum": Turn.vacuum,
}
