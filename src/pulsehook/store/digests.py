"""``digest_entries`` and ``digests``: alert notices gathered per schedule and channel,
and the digests made of them (one per schedule, channel and due time)."""

from __future__ import annotations

import json
from typing import Any

from .db import Tx


def add_entry(
    db: Tx,
    *,
    schedule: str,
    channel: str,
    rule: str,
    repo: str,
    alert_key: str,
    state: str,
    title: str,
    url: str | None,
    at: str,
) -> None:
    db.execute(
        "INSERT INTO digest_entries (schedule, channel, rule, repo, alert_key, state,"
        " title, url, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (schedule, channel, rule, repo, alert_key, state, title, url, at),
    )


def open_channels(db: Tx, schedule: str) -> list[str]:
    """The channels with entries of ``schedule`` that no digest took yet."""
    return [
        r["channel"]
        for r in db.query(
            "SELECT DISTINCT channel FROM digest_entries WHERE schedule = ? AND digest_id IS NULL",
            (schedule,),
        )
    ]


def open_entries(db: Tx, schedule: str, channel: str) -> list[dict[str, Any]]:
    """The entries no digest took yet, each with its alert's severity and fact as they
    are now (None when the alert is gone)."""
    rows = list(
        db.query(
            "SELECT e.*, a.severity AS severity, a.fact AS fact FROM digest_entries e"
            " LEFT JOIN alerts a ON a.key = e.alert_key"
            " WHERE e.schedule = ? AND e.channel = ? AND e.digest_id IS NULL ORDER BY e.id",
            (schedule, channel),
        )
    )
    for row in rows:
        row["fact"] = json.loads(row["fact"]) if row["fact"] else None
    return rows


def take(
    db: Tx, *, schedule: str, channel: str, due: str, entries: list[dict[str, Any]], now: str
) -> bool:
    """Make the digest of ``entries`` due at ``due``; False if it was made already."""
    cursor = db.execute(
        "INSERT INTO digests (schedule, channel, due_at, entries, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
        (schedule, channel, due, len(entries), now),
    )
    made = cursor.fetchone()
    if made is None:
        return False
    db.execute(
        "UPDATE digest_entries SET digest_id = ? WHERE schedule = ? AND channel = ?"
        " AND digest_id IS NULL AND id <= ?",
        (made[0], schedule, channel, entries[-1]["id"]),
    )
    return True
