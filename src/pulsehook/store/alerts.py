"""``alerts``, ``alert_events`` and ``rule_stats``: each alert's state, its history,
and each rule's counts.

An alert is one row keyed by rule, repository and subject; the lifecycle
(``alerts/lifecycle.py``) decides its next state and this module keeps it. The
row's columns are the lifecycle's fields plus the fact it last saw (JSON).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from .db import Tx

FLAGS = ("notified_firing", "silenced")  # stored as 0/1, handed over as bool


def load(db: Tx, key: str, *, fact: bool = False) -> dict[str, Any] | None:
    """The alert's row: flags as bool, ``changes`` as a tuple; with ``fact``, the fact
    it last saw as a dict (decoding it is left out where it is not read: per delivery)."""
    # On PostgreSQL the row stays locked to the end of the transaction: a replica
    # reading an alert to change it waits for another that is changing it.
    lock = " FOR UPDATE" if db.dialect == "postgresql" else ""
    row = next(db.query("SELECT * FROM alerts WHERE key = ?" + lock, (key,)), None)
    if row is None:
        return None
    for flag in FLAGS:
        row[flag] = bool(row[flag])
    row["changes"] = tuple(json.loads(row["changes"] or "[]"))
    row["fact"] = (json.loads(row["fact"]) if row["fact"] else {}) if fact else None
    return row


@cache
def _upsert(columns: tuple[str, ...]) -> str:
    return (
        f"INSERT INTO alerts ({', '.join(columns)})"
        f" VALUES ({', '.join('?' for _ in columns)}) ON CONFLICT(key) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in columns if c != "key")
    )


def save(db: Tx, values: dict[str, Any], fact: dict[str, Any]) -> None:
    """Insert or replace the alert ``values["key"]`` with these column values."""
    row = dict(values)
    row["changes"] = json.dumps(list(row["changes"]))
    columns = (*row, "fact")
    db.execute(_upsert(columns), [*row.values(), json.dumps(fact, default=str)])


def record_event(db: Tx, key: str, event: str, at: str, detail: str | None) -> None:
    db.execute(
        "INSERT INTO alert_events (alert_key, event, at, detail) VALUES (?, ?, ?, ?)",
        (key, event, at, detail),
    )


def rule_error(db: Tx, rule: str, error: str, now: str) -> None:
    db.execute(
        "INSERT INTO rule_stats (rule, errors, last_error, last_error_at) VALUES (?, 1, ?, ?)"
        " ON CONFLICT(rule) DO UPDATE SET errors = rule_stats.errors + 1,"
        " last_error = excluded.last_error, last_error_at = excluded.last_error_at",
        (rule, error, now),
    )


def rule_fired(db: Tx, rule: str, now: str) -> None:
    db.execute(
        "INSERT INTO rule_stats (rule, fired, last_fired_at) VALUES (?, 1, ?)"
        " ON CONFLICT(rule) DO UPDATE SET fired = rule_stats.fired + 1,"
        " last_fired_at = excluded.last_fired_at",
        (rule, now),
    )


def rule_stats(db: Tx) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM rule_stats"))


def held_until(db: Tx, at: str) -> list[str]:
    """The keys of alerts whose hold (flap damping) has ended by ``at``."""
    return [
        r["key"]
        for r in db.query(
            "SELECT key FROM alerts WHERE held_until IS NOT NULL AND held_until <= ?", (at,)
        )
    ]


def silenced(db: Tx) -> list[str]:
    """The keys of alerts a silence keeps quiet."""
    return [r["key"] for r in db.query("SELECT key FROM alerts WHERE silenced = 1")]


def any_silenced(db: Tx) -> bool:
    return next(db.query("SELECT 1 FROM alerts WHERE silenced = 1 LIMIT 1"), None) is not None


def next_hold_end(db: Tx) -> str | None:
    row = next(
        db.query("SELECT min(held_until) AS at FROM alerts WHERE held_until IS NOT NULL"), None
    )
    return row["at"] if row and row["at"] else None


# A firing alert whose last notice said so, neither silenced nor held: a reminder's due.
_REMINDABLE = (
    "rule = ? AND state = 'firing' AND last_notified_state = 'firing' AND silenced = 0"
    " AND held_until IS NULL"
)


def remindable(db: Tx, rule: str, notified_by: str) -> list[str]:
    """The keys of ``rule``'s firing alerts last told no later than ``notified_by``."""
    return [
        r["key"]
        for r in db.query(
            f"SELECT key FROM alerts WHERE {_REMINDABLE} AND last_notified_at <= ?",
            (rule, notified_by),
        )
    ]


def first_reminder_from(db: Tx, rule: str) -> str | None:
    """When the longest-untold firing alert of ``rule`` was last told."""
    row = next(
        db.query(f"SELECT min(last_notified_at) AS at FROM alerts WHERE {_REMINDABLE}", (rule,)),
        None,
    )
    return row["at"] if row and row["at"] else None


def listing(
    db: Tx, *, state: str | None = None, rule: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Alerts, firing first, then the most recently seen (``changes`` as stored)."""
    conditions = [(c, v) for c, v in (("state = ?", state), ("rule = ?", rule)) if v is not None]
    where = ("WHERE " + " AND ".join(c for c, _ in conditions)) if conditions else ""
    params: list[Any] = [v for _, v in conditions]
    tail = ""
    if limit is not None:
        tail, params = " LIMIT ?", [*params, limit]
    rows = list(
        db.query(
            f"SELECT * FROM alerts {where} ORDER BY state = 'firing' DESC, last_seen_at DESC"
            + tail,
            params,
        )
    )
    for row in rows:
        row["fact"] = json.loads(row["fact"])
        for flag in FLAGS:
            row[flag] = bool(row[flag])
    return rows


_SEVERITY_RANK = (
    # A rule's severities and an advisory's (high, medium, low) side by side.
    "CASE severity WHEN 'critical' THEN 0 WHEN 'error' THEN 1 WHEN 'high' THEN 1"
    " WHEN 'warning' THEN 2 WHEN 'medium' THEN 2 ELSE 3 END"
)


def for_page(db: Tx, *, firing: bool, limit: int, rule: str | None = None) -> list[dict[str, Any]]:
    """What the dashboard lists of each alert: firing ones worst first, else the latest
    seen; each with its fact's link as ``url``."""
    where, order = (
        ("state = 'firing'", f"{_SEVERITY_RANK}, last_seen_at DESC")
        if firing
        else ("1 = 1", "last_seen_at DESC")
    )
    rows = list(
        db.query(
            "SELECT rule, repo, subject, state, severity, fact, started_at, last_seen_at,"
            f" resolved_at, occurrences, silenced FROM alerts WHERE {where}"
            f" AND (? IS NULL OR rule = ?) ORDER BY {order} LIMIT ?",
            (rule, rule, limit),
        )
    )
    for row in rows:
        fact = json.loads(row.pop("fact"))  # written by pulsehook itself: always JSON
        row["url"] = fact.get("url") if isinstance(fact, dict) else None
    return rows
