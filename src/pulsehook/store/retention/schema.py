"""The shortest retention allowed (the tables retention owns are migration 12)."""

from __future__ import annotations

from ...errors import ConfigError

MIN_DAYS = 3  # GitHub redelivers for three days, with the same guid: deduplication needs them


def check_days(days: int) -> None:
    """Refuse a retention shorter than GitHub's redelivery window (0 keeps everything)."""
    if 0 < days < MIN_DAYS:
        raise ConfigError(
            f"retention of {days} day(s) refused: at least {MIN_DAYS} days are kept, so that"
            " GitHub's redeliveries (the same delivery id, up to 3 days later) are recognised"
        )
