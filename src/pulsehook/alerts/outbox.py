"""The outbox: notices written in the same transaction as the facts behind them."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlite_utils import Database

from ..notify.base import Message

_MESSAGE_FIELDS = tuple(f.name for f in dataclasses.fields(Message))


def message_json(message: Message) -> str:
    return json.dumps({name: getattr(message, name) for name in _MESSAGE_FIELDS})


def message_from(text: str) -> Message:
    return Message(**json.loads(text))


def enqueue(
    db: Database,
    *,
    channel: str,
    kind: str,
    message: Message,
    alert_key: str | None,
    now: str,
    parked_reason: str | None = None,
    received_at: str | None = None,
) -> int:
    """Queue ``message`` for ``channel``; park it at once when the channel cannot send.

    ``received_at``: when the delivery that caused it was answered, if one did.
    """
    cursor = db.execute(
        "INSERT INTO outbox (alert_key, channel, kind, message, status, next_attempt_at,"
        " last_error, created_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            alert_key,
            channel,
            kind,
            message_json(message),
            "parked" if parked_reason else "pending",
            now,
            parked_reason,
            now,
            received_at,
        ),
    )
    return int(cursor.lastrowid or 0)


def claim(
    db: Database, now: str, lease_until: str, limit: int, *, owner: str
) -> list[dict[str, Any]]:
    """Take due rows for sending now: no more than the sender has free slots for.

    They are pushed to ``lease_until`` and marked with ``owner``, so no other
    sender (a second process, the CLI) takes them meanwhile. After a crash
    mid-send, a successor sees the owner is dead and takes them back at once
    (``release_leases``); failing that, the lease runs out and they are tried again.
    """
    rows = list(
        db.query(
            "SELECT * FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id LIMIT ?",
            (now, limit),
        )
    )
    for row in rows:
        db.execute(
            "UPDATE outbox SET next_attempt_at = ?, leased_by = ? WHERE id = ?",
            (lease_until, owner, row["id"]),
        )
    return rows


def lease_holders(db: Database, now: str) -> list[str]:
    """Who holds leases on pending notices that have not run out."""
    return [
        row["leased_by"]
        for row in db.query(
            "SELECT DISTINCT leased_by FROM outbox WHERE status = 'pending'"
            " AND leased_by IS NOT NULL AND next_attempt_at > ?",
            (now,),
        )
    ]


def release_leases(db: Database, owner: str, now: str) -> int:
    """Make ``owner``'s leased notices due now: it died before recording them."""
    return db.execute(
        "UPDATE outbox SET next_attempt_at = ?, leased_by = NULL"
        " WHERE status = 'pending' AND leased_by = ?",
        (now, owner),
    ).rowcount


def next_attempt(db: Database) -> str | None:
    row = next(
        db.query("SELECT min(next_attempt_at) AS at FROM outbox WHERE status = 'pending'"), None
    )
    return row["at"] if row else None


def record(
    db: Database,
    outbox_id: int,
    *,
    status: str,
    attempts: int,
    next_attempt_at: str,
    last_status: int | None,
    error: str | None,
    response: str | None,
    sent_at: str | None,
) -> None:
    db.execute(
        "UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?, last_status = ?,"
        " last_error = ?, response = ?, sent_at = ?, leased_by = NULL"
        " WHERE id = ? AND status = 'pending'",
        (
            status,
            attempts,
            next_attempt_at,
            last_status,
            error,
            response[:1000] if response else None,
            sent_at,
            outbox_id,
        ),
    )


def for_alerts(db: Database, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    if not keys:
        return out
    marks = ",".join("?" for _ in keys)
    for row in db.query(
        "SELECT id, alert_key, channel, kind, status, attempts, last_status, last_error,"
        f" created_at, sent_at, next_attempt_at FROM outbox WHERE alert_key IN ({marks})"
        " ORDER BY id",
        keys,
    ):
        out.setdefault(row["alert_key"], []).append(row)
    return out


def listing(db: Database, *, status: str | None, limit: int) -> list[dict[str, Any]]:
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    return [
        {k: v for k, v in row.items() if k != "message"}
        | {"title": json.loads(row["message"]).get("title")}
        for row in db.query(
            f"SELECT * FROM outbox {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
    ]
