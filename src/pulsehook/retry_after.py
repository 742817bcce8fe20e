"""The ``Retry-After`` header (RFC 9110, 10.2.3) as seconds to wait (pure).

Channels and GitHub both send it: delta-seconds (``120``) or an HTTP date
(``Wed, 21 Oct 2026 07:28:00 GMT``). The date is read against ``now``, the time
the answer was received.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait (never negative), or None when there is no usable value."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "inf" and "nan" parse as floats; no server means them, and no wait can be infinite.
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's "UTC, origin unknown"
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
