"""Silences: hold notifications back by rule and/or repository, never the record."""

from __future__ import annotations

from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from sqlite_utils import Database

from ..clock import iso, parse_iso
from ..timing import last_due, next_due


def active(silence: dict[str, Any], now: datetime, tz: str = "UTC") -> bool:
    """Whether a silence holds at ``now`` (pure)."""
    if parse_iso(silence["starts_at"]) > now:
        return False
    if silence.get("ends_at") and parse_iso(silence["ends_at"]) <= now:
        return False
    if silence.get("cron"):
        start = last_due(silence["cron"], now, tz)
        return now < start + timedelta(seconds=int(silence.get("duration_s") or 0))
    return True


def ends(silence: dict[str, Any], now: datetime, tz: str = "UTC") -> datetime | None:
    """When the silence next stops holding, at or after ``now`` (pure); None if never."""
    fixed = parse_iso(silence["ends_at"]) if silence.get("ends_at") else None
    if silence.get("cron"):
        length = timedelta(seconds=int(silence.get("duration_s") or 0))
        start = last_due(silence["cron"], now, tz)
        if now >= start + length:  # between windows: the end of the next one
            start = next_due(silence["cron"], now, tz)
        end = start + length
        return min(end, fixed) if fixed else end
    return fixed


def next_end(silences: list[dict[str, Any]], now: datetime, tz: str = "UTC") -> datetime | None:
    """The first moment one of ``silences`` stops holding (pure)."""
    found = [e for s in silences if (e := ends(s, now, tz)) is not None and e > now]
    return min(found) if found else None


def silenced(
    silences: list[dict[str, Any]], rule: str, repo: str, now: datetime, tz: str = "UTC"
) -> bool:
    return any(
        fnmatchcase(rule, s.get("rule") or "*")
        and fnmatchcase(repo, s.get("repo") or "*")
        and active(s, now, tz)
        for s in silences
    )


def load(db: Database, now: datetime) -> list[dict[str, Any]]:
    """Silences not yet ended (recurring ones included)."""
    return list(
        db.query("SELECT * FROM silences WHERE ends_at IS NULL OR ends_at > ?", (iso(now),))
    )


def create(
    db: Database,
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
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
    return int(cursor.lastrowid or 0)


def delete(db: Database, silence_id: int) -> bool:
    return db.execute("DELETE FROM silences WHERE id = ?", (silence_id,)).rowcount == 1


def listing(db: Database, now: datetime, tz: str = "UTC") -> list[dict[str, Any]]:
    rows = list(db.query("SELECT * FROM silences ORDER BY id"))
    for row in rows:
        row["active"] = active(row, now, tz)
    return rows
