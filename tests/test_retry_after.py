"""Retry-After, one parser for channels and GitHub: delta-seconds or an HTTP date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from pulsehook.retry_after import parse_retry_after

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_retry_after_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    seconds = parse_retry_after(format_datetime(when, usegmt=True), datetime.now(UTC))
    assert seconds is not None and 100 < seconds <= 120
    assert parse_retry_after("soon", NOW) is None and parse_retry_after("-3", NOW) == 0.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("Sun, 01 Mar 2026 12:01:30 GMT", 90.0),
        ("Sun, 01 Mar 2026 12:01:30 -0000", 90.0),  # "UTC, origin unknown"
        ("Sun, 01 Mar 2026 13:01:30 +0100", 90.0),
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),  # already past: no wait, never negative
        (None, None),
        ("", None),
        ("   ", None),
        ("soon", None),
        ("inf", None),
        ("nan", None),
        ("Sun, 99 Foo 2026 12:00:00 GMT", None),
    ],
)
def test_delta_seconds_and_dates_read_against_now(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds
