"""Each channel's send rate, and the pacer that keeps every channel under its own.

A provider that is sent more than it accepts answers 429 and the notices trickle out
over minutes. So each channel has a pace (by default its kind's ``rate``, the
provider's documented limit; the channel's ``rate`` option otherwise), and the
dispatcher starts a send on a channel only when the pacer says it may. Spacing is
measured from the end of the previous send: the next request then reaches the
provider at least one interval after the last one did, whatever the network's
jitter. A 429 that names a ``Retry-After`` pauses the whole channel that long.

Pure: every call takes ``now``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

UNPACED = ("off", "none", "unlimited")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$", re.I)
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_rate(value: object) -> float | None:
    """``"1/s"``, ``"30/min"``, ``"500/h"`` -> sends per second; ``"off"`` -> None (unpaced)."""
    if isinstance(value, str) and value.strip().lower() in UNPACED:
        return None
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"rate {value!r}: use e.g. '1/s', '30/min', '500/h' or 'off'")
    count = float(match.group(1))
    if count <= 0:
        raise ValueError(f"rate {value!r}: must be more than zero (or 'off')")
    return count / _PER[match.group(2).lower()]


@dataclass
class _Lane:
    busy: bool = False  # a send is under way
    ready_at: datetime | None = None  # no send starts before this


class Pacer:
    """When each channel may start its next send (one at a time per paced channel)."""

    def __init__(self) -> None:
        self._lanes: dict[str, _Lane] = {}

    def _lane(self, channel: str) -> _Lane:
        return self._lanes.setdefault(channel, _Lane())

    def ready(self, channel: str, now: datetime) -> bool:
        lane = self._lanes.get(channel)
        if lane is None:
            return True
        return not lane.busy and (lane.ready_at is None or lane.ready_at <= now)

    def ready_at(self, channel: str) -> datetime | None:
        """When a channel that is not ready now will be (None: when its send ends)."""
        lane = self._lanes.get(channel)
        return None if lane is None or lane.busy else lane.ready_at

    def started(self, channel: str) -> None:
        self._lane(channel).busy = True

    def finished(
        self, channel: str, now: datetime, rate: float | None, retry_after: float | None = None
    ) -> None:
        """A send ended at ``now``: the next waits one interval, or what the channel asked."""
        lane = self._lane(channel)
        lane.busy = False
        wait = 1.0 / rate if rate else 0.0
        if retry_after is not None:
            wait = max(wait, min(retry_after, 3600.0))
        lane.ready_at = now + timedelta(seconds=wait) if wait else None
