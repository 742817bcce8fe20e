"""``silences``: what holds notifications back, by rule and/or repository.

Whether one holds at a moment is ``alerts/silences.py``'s (pure); this module
keeps the rows.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..clock import iso
from .db import Tx


def load(db: Tx, now: datetime) -> list[dict[str, Any]]:
    """Silences not yet ended (recurring ones included)."""
    return list(
        db.query("SELECT * FROM silences WHERE ends_at IS NULL OR ends_at > ?", (iso(now),))
    )


def create(
    db: Tx,
    *,
    rule: str | None,
    repo: str | None,
    starts_at: datetime,
    ends_at: datetime | None,
    cron: str | None,
    duration: timedelta | None,
    comment: str | None,
    now: datetime,
) -> int:
    cursor = db.execute(
        "INSERT INTO silences (rule, repo, starts_at, ends_at, cron, duration_s, comment,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            rule,
            repo,
            iso(starts_at),
            iso(ends_at) if ends_at else None,
            cron,
            int(duration.total_seconds()) if duration else None,
            comment,
            iso(now),
        ),
    )
    return int(cursor.fetchone()[0])


def delete(db: Tx, silence_id: int) -> bool:
    return db.execute("DELETE FROM silences WHERE id = ?", (silence_id,)).rowcount == 1


def every(db: Tx) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM silences ORDER BY id"))
