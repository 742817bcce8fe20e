"""Time as a dependency: domain code asks a Clock, never ``datetime.now()``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


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
    w = when.astimezone(UTC)
    # Formatted by hand: strftime("%Y") does not zero-pad years before 1000.
    return f"{w.year:04d}-{w.month:02d}-{w.day:02d}T{w.hour:02d}:{w.minute:02d}:{w.second:02d}Z"


def parse_iso(value: str) -> datetime:
    """The inverse of ``iso()``: an ISO-8601 time (``Z`` or an offset) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def parse_iso_or_none(value: str | None) -> datetime | None:
    return parse_iso(value) if value else None
