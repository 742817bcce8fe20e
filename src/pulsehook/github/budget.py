"""The scan's share of GitHub's hourly rate limit: headers and counts in, decisions out.

GitHub says in every answer how large the primary limit is (``x-ratelimit-limit``),
what is left of it (``-remaining``) and when the window starts over (``-reset``, an
epoch). Every answer counts against it except a 304 to a conditional request. The
scan may spend ``fraction`` of each window's limit and no more, and stops early when
the rest of the token's users have eaten into what it leaves them, so publishing,
recovery and whatever else shares the token keep their part.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import PulsehookError


class ShareSpent(PulsehookError):
    """The scan's share of this rate-limit window is spent: the rest waits for a later round."""


def _int(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


@dataclass
class Share:
    """The scan's spending in the current window. ``window`` is the window's reset epoch."""

    fraction: float
    window: int | None = None
    spent: int = 0  # answers that counted, in ``window``
    limit: int | None = None
    remaining: int | None = None

    def allowance(self, now: float) -> int | None:
        """How many more requests may count in this window; None before any answer."""
        self._roll(now)
        if self.limit is None:
            return None
        own = math.floor(self.fraction * self.limit) - self.spent
        if self.remaining is None:
            return max(0, own)
        # What the token's other users are owed: the limit less the scan's share.
        reserve = self.limit - math.floor(self.fraction * self.limit)
        return max(0, min(own, self.remaining - reserve))

    def before(self, now: float) -> None:
        """Raise ShareSpent when a request now could go past the share."""
        allowance = self.allowance(now)
        if allowance is not None and allowance <= 0:
            raise ShareSpent(
                f"the scan's share of GitHub's rate limit is spent until {self.window}"
                f" ({self.spent} of {self.limit} requests this hour)"
            )

    def after(self, status: int, headers: Mapping[str, str], now: float) -> None:
        """Count an answer (a 304 is free) and note what GitHub said of the window."""
        if headers.get("x-ratelimit-resource", "core") != "core":
            return  # another limit (search, graphql): not the one the scan spends
        self._roll(now)  # the window it counted in may be over
        reset = _int(headers, "x-ratelimit-reset")
        if reset is not None and (self.window is None or reset > self.window):
            self.window = reset
        self.limit = _int(headers, "x-ratelimit-limit") or self.limit
        remaining = _int(headers, "x-ratelimit-remaining")
        if remaining is not None:
            self.remaining = remaining
        if status != 304:
            self.spent += 1

    def _roll(self, now: float) -> None:
        if self.window is not None and now >= self.window:
            # The window is over: the scan starts again at nothing; ``remaining`` is
            # unknown until the next answer says it.
            self.spent, self.remaining = 0, None

    def dump(self) -> dict[str, Any]:
        return {"window": self.window, "spent": self.spent, "limit": self.limit}

    @classmethod
    def load(cls, fraction: float, saved: Any) -> Share:
        share = cls(fraction)
        if isinstance(saved, dict):
            window, spent, limit = saved.get("window"), saved.get("spent"), saved.get("limit")
            share.window = window if isinstance(window, int) else None
            share.spent = spent if isinstance(spent, int) and share.window is not None else 0
            share.limit = limit if isinstance(limit, int) else None
        return share
