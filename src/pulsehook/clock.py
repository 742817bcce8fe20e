"""Time as a dependency: domain code asks a Clock, never ``datetime.now()``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FrozenClock:
    """A clock for tests: stands still until told to move."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current = self.current + delta

    def set(self, when: datetime) -> None:
        self.current = when


def iso(when: datetime) -> str:
    """The one timestamp format pulsehook stores: ISO-8601, UTC, seconds."""
    w = when if when.tzinfo is UTC else when.astimezone(UTC)
    # Formatted by hand: strftime("%Y") does not zero-pad years before 1000.
    return f"{w.year:04d}-{w.month:02d}-{w.day:02d}T{w.hour:02d}:{w.minute:02d}:{w.second:02d}Z"


def parse_iso(value: str) -> datetime:
    """The inverse of ``iso()``: an ISO-8601 time (``Z`` or an offset) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def local_minute(value: str | datetime, tz: str) -> str:
    """A stored time as ``YYYY-MM-DD HH:MM`` in the timezone ``tz``, for people to read.

    Text that is not an ISO time is shown as it is (its first 16 characters).
    """
    if isinstance(value, str):
        try:
            when = parse_iso(value)
        except ValueError:
            return value[:16].replace("T", " ")
    else:
        when = value
    if when.tzinfo is None:  # stored times are UTC
        when = when.replace(tzinfo=UTC)
    w = when.astimezone(ZoneInfo(tz))
    return f"{w.year:04d}-{w.month:02d}-{w.day:02d} {w.hour:02d}:{w.minute:02d}"


def parse_iso_or_none(value: str | None) -> datetime | None:
    return parse_iso(value) if value else None
