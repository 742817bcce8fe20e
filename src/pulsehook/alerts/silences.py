"""Silences: hold notifications back by rule and/or repository, never the record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from ..clock import iso, parse_iso
from ..errors import SilenceInvalid
from ..store import silences as store
from ..store.db import Tx
from ..timing import last_due, next_due

# How the API names a silence's fields; the CLI passes its flags instead.
API_NAMES = {name: name for name in ("rule", "repo", "ends_at", "duration", "cron")}


@dataclass(frozen=True)
class Window:
    """When a silence holds: from ``starts_at`` to ``ends_at`` (None: while its cron
    recurs), or, with ``cron``, for ``duration`` after each cron time."""

    starts_at: datetime
    ends_at: datetime | None
    cron: str | None
    duration: timedelta | None


def window(
    *,
    rule: str | None,
    repo: str | None,
    now: datetime,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    duration: timedelta | None = None,
    cron: str | None = None,
    names: Mapping[str, str] = API_NAMES,
) -> Window:
    """The one check of a silence, for the API and the CLI alike (pure).

    A silence names a rule and/or a repository; it ends (an end time or a
    duration), or recurs (a cron with its window's length); its end is in the
    future. One that would hold for ever is refused: forgotten, it would hide
    every alert it matches. ``names`` spells the fields as the caller takes them.
    SilenceInvalid says what is missing.
    """
    n = names
    if not rule and not repo:
        raise SilenceInvalid(f"a silence needs a {n['rule']} and/or a {n['repo']} pattern")
    start = starts_at or now
    if cron is not None:
        if duration is None:
            raise SilenceInvalid(
                f"a recurring silence ({n['cron']}) needs {n['duration']}, its length"
            )
        end = ends_at
    elif duration is not None and ends_at is not None:
        raise SilenceInvalid(f"give {n['duration']} or {n['ends_at']}, not both")
    elif duration is None and ends_at is None:
        raise SilenceInvalid(
            f"a silence needs an end: {n['duration']}, {n['ends_at']} or {n['cron']};"
            " one that never ends is refused"
        )
    else:
        end = ends_at if ends_at is not None else start + (duration or timedelta(0))
    if end is not None and (end <= now or end <= start):
        detail = f"{iso(end)} is not in the future"
        raise SilenceInvalid(f"{n['ends_at']} {detail}", field="ends_at", detail=detail)
    return Window(start, end, cron, duration if cron else None)


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


def listing(db: Tx, now: datetime, tz: str = "UTC") -> list[dict[str, Any]]:
    """Every silence, each marked as holding at ``now`` or not."""
    rows = store.every(db)
    for row in rows:
        row["active"] = active(row, now, tz)
    return rows
