"""Durations and cron maths (pure): data and ``now`` in, times out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

_SHORT = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ISO = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(value: object) -> timedelta:
    """``PT10M``, ``P1D``, ``10m``, ``1h30m``, ``2d``, or seconds as a number."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not a duration: {value!r} (use e.g. PT10M, 10m, 1h30m, 2d)")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    text = value.strip()
    iso = _ISO.match(text.upper())
    if iso and text.upper() not in ("P", "PT") and any(iso.groups()):
        w, d, h, m, s = (float(g) if g else 0.0 for g in iso.groups())
        return timedelta(weeks=w, days=d, hours=h, minutes=m, seconds=s)
    short = _SHORT.match(text.lower())
    if short and text and any(short.groups()):
        w, d, h, m, s = (int(g) if g else 0 for g in short.groups())
        return timedelta(weeks=w, days=d, hours=h, minutes=m, seconds=s)
    raise ValueError(f"not a duration: {value!r} (use e.g. PT10M, 10m, 1h30m, 2d)")


def iso_duration(delta: timedelta) -> str:
    """``timedelta`` as ISO-8601 (``PT1H30M``), the form pulseox's JSON uses."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    clock = (
        (f"{hours}H" if hours else "")
        + (f"{minutes}M" if minutes else "")
        + (f"{secs}S" if secs else "")
    )
    return out + ("T" + clock if clock else ("" if days else "T0S"))


def valid_cron(expr: str) -> bool:
    return isinstance(expr, str) and bool(croniter.is_valid(expr))


def next_due(expr: str, after: datetime, tz: str = "UTC") -> datetime:
    """The first time strictly after ``after`` that the cron ``expr`` fires, in ``tz``.

    Computed in the zone's wall-clock time so "08:00" stays 08:00 across DST.
    """
    zone = ZoneInfo(tz)
    local = after.astimezone(zone)
    nxt: datetime = croniter(expr, local).get_next(datetime)
    return nxt.astimezone(UTC)


def last_due(expr: str, at_or_before: datetime, tz: str = "UTC") -> datetime:
    """The latest time at or before ``at_or_before`` that the cron ``expr`` fired."""
    zone = ZoneInfo(tz)
    local = (at_or_before + timedelta(seconds=1)).astimezone(zone)
    prev: datetime = croniter(expr, local).get_prev(datetime)
    return prev.astimezone(UTC)


def span(seconds: float) -> str:
    """A run time for people: ``850 ms``, ``42 s``, ``3 min 12 s``, ``2 h 5 min``."""
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
