"""``schedule_marks``: when each recurring job last ran (daily work, digests, recovery).

One row per named job; the name says whose it is (``daily:rescore``,
``digest:0 9 * * *``, ``recovery``). Times are ISO-8601 UTC strings.
"""

from __future__ import annotations

from datetime import datetime

from ..clock import iso, parse_iso
from .db import Tx


def last_run(db: Tx, name: str) -> datetime | None:
    row = next(db.query("SELECT last_run_at FROM schedule_marks WHERE name = ?", (name,)), None)
    return parse_iso(row["last_run_at"]) if row else None


def mark(db: Tx, name: str, at: datetime) -> None:
    db.execute(
        "INSERT INTO schedule_marks (name, last_run_at) VALUES (?, ?)"
        " ON CONFLICT(name) DO UPDATE SET last_run_at = excluded.last_run_at",
        (name, iso(at)),
    )
