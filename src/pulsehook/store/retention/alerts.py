"""Alert history by age: what an open alert, a notice to send or parked, an active
silence or a pending digest needs stays. Settled redelivery requests go by age too."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .index import BATCH

if TYPE_CHECKING:
    from .run import Turn


def tables(turn: Turn) -> None:
    """Each table in turn, from where the run got to (in this process: a restart
    walks them again, which finds only what stays)."""
    p = turn.p
    for name, prune in TABLES:
        cursor = p.tables_at.get(name, 0)
        while cursor >= 0:
            cursor, n = prune(turn, cursor)
            p.counts.add(name, n)
            if cursor >= 0 and not turn.more():
                p.tables_at[name] = cursor
                return
        p.tables_at[name] = cursor
    p.tables_at = {}
    turn.done("tables")


# (turn, cursor) -> (next cursor or -1 when the table is done, rows deleted)
TablePrune = Callable[["Turn", int], tuple[int, int]]


def _by_age(table: str, time_column: str, prunable: str) -> TablePrune:
    """Walk ``table`` in id order (its ids follow time) deleting the rows older than
    the cutoff that ``prunable`` (SQL) allows, up to the first row that is not old."""

    def prune(turn: Turn, cursor: int) -> tuple[int, int]:
        rows = turn.db.execute(
            f"SELECT id, {time_column} < ?, {prunable} FROM {table} WHERE id > ?"
            " ORDER BY id LIMIT ?",
            (turn.cutoff, cursor, BATCH),
        ).fetchall()
        ids: list[int] = []
        for row_id, old, ok in rows:
            if not old:
                return -1, turn.delete_rows(table, "id", ids)
            cursor = int(row_id)
            if ok:
                ids.append(cursor)
        return (cursor if len(rows) == BATCH else -1), turn.delete_rows(table, "id", ids)

    return prune


def _scan(table: str, prunable: Callable[[Turn], tuple[str, tuple[Any, ...]]]) -> TablePrune:
    """Walk a table whose rows are not in time order, deleting what ``prunable`` allows."""

    def prune(turn: Turn, cursor: int) -> tuple[int, int]:
        test, params = prunable(turn)
        if turn.db.dialect == "postgresql":
            # No rowid to walk by; PostgreSQL's writers do not wait on one
            # another's long statements as SQLite's do, so one statement does it.
            count = turn.db.execute(f"SELECT count(*) FROM {table} a WHERE {test}", params)
            doomed = int(count.fetchone()[0])
            if doomed and not turn.p.dry_run:
                turn.db.execute(f"DELETE FROM {table} a WHERE {test}", params)
            return -1, doomed
        rows = turn.db.execute(
            f"SELECT rowid, {test} FROM {table} a WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (*params, cursor, BATCH),
        ).fetchall()
        ids = [int(r[0]) for r in rows if r[1]]
        cursor = int(rows[-1][0]) if len(rows) == BATCH else -1
        return cursor, turn.delete_rows(table, "rowid", ids)

    return prune


def _alerts(turn: Turn) -> tuple[str, tuple[Any, ...]]:
    """Resolved alerts (and one-shot ones) last seen before the cutoff, unless a
    notice to send, a held notice or a pending digest still names them. An alert
    that fires is open: it stays."""
    rules = sorted(turn.p.event_rules)
    marks = ",".join("?" for _ in rules) or "NULL"
    return (
        f"(state = 'resolved' OR rule IN ({marks})) AND last_seen_at < ?"
        " AND held_until IS NULL AND NOT EXISTS (SELECT 1 FROM outbox o"
        " WHERE o.alert_key = a.key AND o.status IN ('pending', 'parked'))"
        " AND NOT EXISTS (SELECT 1 FROM notice_members m JOIN outbox o ON o.id = m.outbox_id"
        " WHERE m.alert_key = a.key AND o.status IN ('pending', 'parked'))"
        " AND NOT EXISTS (SELECT 1 FROM digest_entries e WHERE e.alert_key = a.key"
        " AND e.digest_id IS NULL)",
        (*rules, turn.cutoff),
    )


def _quiet_groups(turn: Turn) -> tuple[str, tuple[Any, ...]]:
    """Alert groups whose last window ended before the cutoff, gathering nothing."""
    return "gathering IS NULL AND window_until < ?", (turn.cutoff,)


def _ended(turn: Turn) -> tuple[str, tuple[Any, ...]]:
    """Silences that ended; those without an end, and recurring ones, hold on."""
    return "ends_at IS NOT NULL AND ends_at < ?", (turn.cutoff,)


def _settled(turn: Turn) -> tuple[str, tuple[Any, ...]]:
    """Redelivery requests settled before the cutoff; open ones are still asked for."""
    return "outcome NOT IN ('requested', 'failed') AND updated_at < ?", (turn.cutoff,)


TABLES: list[tuple[str, TablePrune]] = [
    # An open alert keeps the record of its start.
    (
        "alert_events",
        _by_age(
            "alert_events",
            "at",
            "NOT (event = 'fired' AND EXISTS (SELECT 1 FROM alerts a WHERE a.key = alert_key"
            " AND a.state = 'firing') AND NOT EXISTS (SELECT 1 FROM alert_events n"
            " WHERE n.alert_key = alert_events.alert_key AND n.event = 'fired'"
            " AND n.id > alert_events.id))",
        ),
    ),
    # A notice merged into another is said by it; the alerts a notice named go with it.
    ("outbox", _by_age("outbox", "created_at", "status IN ('sent', 'merged')")),
    (
        "notice_members",
        _by_age(
            "notice_members", "at", "NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = outbox_id)"
        ),
    ),
    ("notice_groups", _scan("notice_groups", _quiet_groups)),
    ("digest_entries", _by_age("digest_entries", "at", "digest_id IS NOT NULL")),
    (
        "digests",
        _by_age(
            "digests",
            "created_at",
            "NOT EXISTS (SELECT 1 FROM digest_entries e WHERE e.schedule = digests.schedule"
            " AND e.channel = digests.channel AND e.digest_id = digests.id)",
        ),
    ),
    # Each repository keeps the record of its last score.
    (
        "health_history",
        _by_age(
            "health_history",
            "at",
            "EXISTS (SELECT 1 FROM health_history n WHERE n.repo_id = health_history.repo_id"
            " AND n.at > health_history.at)",
        ),
    ),
    ("alerts", _scan("alerts", _alerts)),
    ("silences", _scan("silences", _ended)),
    ("redelivery_requests", _scan("redelivery_requests", _settled)),
]
