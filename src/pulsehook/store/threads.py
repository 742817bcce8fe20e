"""``notice_threads``: the message each alert's firing notice became on a channel that
threads (a Slack app), kept from the send until the alert's resolved notice is sent."""

from __future__ import annotations

from .db import Tx


def find(db: Tx, channel: str, alert_key: str) -> str | None:
    """The provider's id of the alert's firing message on ``channel``, if one is kept."""
    row = next(
        db.query(
            "SELECT posted FROM notice_threads WHERE channel = ? AND alert_key = ?",
            (channel, alert_key),
        ),
        None,
    )
    return str(row["posted"]) if row else None


def remember(db: Tx, channel: str, alert_key: str, posted: str, at: str) -> None:
    """Keep the firing message of the alert (a new firing replaces an older one)."""
    db.execute(
        "INSERT INTO notice_threads (channel, alert_key, posted, posted_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(channel, alert_key) DO UPDATE SET posted = excluded.posted,"
        " posted_at = excluded.posted_at",
        (channel, alert_key, posted, at),
    )


def forget(db: Tx, channel: str, alert_key: str) -> None:
    """The alert resolved, and its thread was told: nothing more will follow it up."""
    db.execute(
        "DELETE FROM notice_threads WHERE channel = ? AND alert_key = ?", (channel, alert_key)
    )
