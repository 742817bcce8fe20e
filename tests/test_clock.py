"""Time formatting for people: stored UTC times in the configured timezone."""

from __future__ import annotations

from datetime import UTC, datetime

from pulsehook.clock import local_minute


def test_utc_is_the_stored_time_to_the_minute() -> None:
    assert local_minute("2026-03-29T00:59:59Z", "UTC") == "2026-03-29 00:59"


def test_daylight_saving_time_is_followed() -> None:
    assert local_minute("2026-01-15T12:00:00Z", "Europe/Berlin") == "2026-01-15 13:00"
    assert local_minute("2026-07-15T12:00:00Z", "Europe/Berlin") == "2026-07-15 14:00"


def test_a_time_can_move_to_another_day() -> None:
    assert local_minute("2026-01-01T02:00:00Z", "America/New_York") == "2025-12-31 21:00"


def test_datetimes_naive_ones_being_utc() -> None:
    assert local_minute(datetime(2026, 1, 1, 10, 0), "Asia/Kolkata") == "2026-01-01 15:30"
    aware = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert local_minute(aware, "Asia/Kolkata") == "2026-01-01 15:30"


def test_text_that_is_not_a_time_is_shown_as_it_is() -> None:
    assert local_minute("2026-01-01", "Asia/Kolkata") == "2026-01-01 05:30"  # a date: midnight
    assert local_minute("soon", "UTC") == "soon"
