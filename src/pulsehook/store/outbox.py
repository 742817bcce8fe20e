"""The outbox: notices written in the same transaction as the facts behind them.

A grouped notice names the alerts it speaks for (``notice_members``); a group's
window (``notice_groups``) gathers what follows its first notice into one pending
notice, due when the window ends; and when a paced channel can send again, the
notices that waited for it are merged into one (``status = 'merged'``, with
``merged_into`` naming the notice that said them). See ``alerts/grouping.py``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..clock import iso, parse_iso
from ..notify.base import Message
from .db import Tx

_MESSAGE_FIELDS = tuple(f.name for f in dataclasses.fields(Message))


def message_json(message: Message) -> str:
    return json.dumps({name: getattr(message, name) for name in _MESSAGE_FIELDS})


def message_from(text: str) -> Message:
    return Message(**json.loads(text))


def enqueue(
    db: Tx,
    *,
    channel: str,
    kind: str,
    message: Message,
    alert_key: str | None,
    now: str,
    parked_reason: str | None = None,
    received_at: str | None = None,
    group_key: str | None = None,
    due: str | None = None,
) -> int:
    """Queue ``message`` for ``channel``; park it at once when the channel cannot send.

    ``received_at``: when the delivery that caused it was answered, if one did.
    ``group_key``: the alert group it speaks for; ``due``: when to send (default now).
    """
    cursor = db.execute(
        "INSERT INTO outbox (alert_key, channel, kind, message, status, next_attempt_at,"
        " last_error, created_at, received_at, group_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (
            alert_key,
            channel,
            kind,
            message_json(message),
            "parked" if parked_reason else "pending",
            due or now,
            parked_reason,
            now,
            received_at,
            group_key,
        ),
    )
    return int(cursor.fetchone()[0])


def add_member(db: Tx, outbox_id: int, key: str, member: dict[str, Any], now: str) -> None:
    """Record that notice ``outbox_id`` speaks for alert ``key`` (``member``: its
    rule, repo, state, severity, what and url)."""
    db.execute(
        "INSERT INTO notice_members (outbox_id, alert_key, rule, repo, state, severity, what,"
        " url, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            outbox_id,
            key,
            member["rule"],
            member["repo"],
            member["state"],
            member["severity"],
            member["what"],
            member.get("url"),
            now,
        ),
    )


def gathering(
    db: Tx, channel: str, group_key: str, alert_key: str, window: timedelta, now: datetime
) -> int | None:
    """Where a grouped notice goes: None, on its own now (it opens the group's
    window, or it is news of the alert that did); or the id of the pending notice
    gathering the window's other members."""
    at = iso(now)
    row = next(
        db.query(
            "SELECT id, window_until, gathering, opener FROM notice_groups"
            " WHERE channel = ? AND group_key = ?",
            (channel, group_key),
        ),
        None,
    )
    if row is not None and row["gathering"] is not None:
        return int(row["gathering"])  # not claimed yet: it still gathers
    if row is None or row["window_until"] <= at or row["opener"] == alert_key:
        db.execute(
            "INSERT INTO notice_groups (channel, group_key, window_s, window_until, opener)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel, group_key) DO UPDATE SET"
            " window_s = excluded.window_s, window_until = excluded.window_until,"
            " opener = excluded.opener",
            (channel, group_key, window.total_seconds(), iso(now + window), alert_key),
        )
        return None
    # Inside the window: a notice due when it ends gathers this and what follows.
    placeholder = Message(title="", text="", markdown="", state="firing")
    outbox_id = enqueue(
        db,
        channel=channel,
        kind="group",
        message=placeholder,
        alert_key=None,
        now=at,
        group_key=group_key,
        due=row["window_until"],
    )
    db.execute("UPDATE notice_groups SET gathering = ? WHERE id = ?", (outbox_id, row["id"]))
    return outbox_id


def _restart_windows(db: Tx, ids: list[int], now: datetime) -> None:
    """Notices that gathered are taken: their groups' next window starts now."""
    if not ids:
        return
    marks = ",".join("?" for _ in ids)
    for row in list(
        db.query(f"SELECT id, window_s FROM notice_groups WHERE gathering IN ({marks})", ids)
    ):
        db.execute(
            "UPDATE notice_groups SET gathering = NULL, opener = NULL, window_until = ?"
            " WHERE id = ?",
            (iso(now + timedelta(seconds=row["window_s"])), row["id"]),
        )


LOADED_MEMBERS = 2000  # members read to render a notice; the rest are counted


@dataclass(frozen=True)
class Members:
    """The alerts a notice names: the first ``LOADED_MEMBERS`` in order, and how
    many there are per (rule, "firing" or "resolved"): (alerts, repositories)."""

    loaded: list[dict[str, Any]]
    counts: dict[tuple[str, str], tuple[int, int]]


def members(db: Tx, outbox_id: int) -> Members:
    loaded = list(
        db.query(
            "SELECT rule, repo, state, severity, what, url FROM notice_members"
            " WHERE outbox_id = ? ORDER BY id LIMIT ?",
            (outbox_id, LOADED_MEMBERS),
        )
    )
    counts = {
        (r["rule"], "resolved" if r["resolved"] else "firing"): (r["n"], r["repos"])
        for r in db.query(
            "SELECT rule, state = 'resolved' AS resolved, count(*) AS n,"
            " count(DISTINCT repo) AS repos FROM notice_members WHERE outbox_id = ?"
            " GROUP BY rule, resolved",
            (outbox_id,),
        )
    }
    return Members(loaded, counts)


def firing_in_group(db: Tx, group_key: str, limit: int = 500) -> tuple[str, ...]:
    """The repositories of a group's alerts that fire and were told so."""
    return tuple(
        r["repo"]
        for r in db.query(
            "SELECT DISTINCT repo FROM alerts WHERE group_key = ? AND notified_firing = 1"
            " AND state = 'firing' ORDER BY repo LIMIT ?",
            (group_key, limit),
        )
    )


@dataclass(frozen=True)
class Lane:
    """What may be taken from one channel now.

    ``merge``: None, each notice on its own (nothing waits on an unpaced channel);
    "channel", every grouped notice that waited goes out as one; "group", only
    those of the same group (PagerDuty: a group is one incident).
    ``incident``: read the group's firing repositories for the notice.
    """

    slots: int
    merge: str | None = None
    incident: bool = False


@dataclass
class Claimed:
    """A notice taken for sending, with what its message is made from when it is
    made when sent (a grouped notice: its members; an incident: who still fires)."""

    row: dict[str, Any]
    members: Members | None = None
    firing: tuple[str, ...] | None = None
    merged: int = 0  # notices it says besides its own


@dataclass(frozen=True)
class Claim:
    taken: list[Claimed]
    waiting: list[str]  # channels with due notices that were not taken from
    upcoming: str | None  # the next notice to fall due later


def _due(db: Tx, now: str) -> list[str]:
    return [
        r["channel"]
        for r in db.query(
            "SELECT channel, min(next_attempt_at) AS at FROM outbox WHERE status = 'pending'"
            " AND next_attempt_at <= ? GROUP BY channel ORDER BY at",
            (now,),
        )
    ]


def _merge(db: Tx, carrier: dict[str, Any], now: str, lane: Lane) -> list[int]:
    """Fold the channel's other due grouped notices into ``carrier``; return their ids."""
    scope = " AND group_key = ?" if lane.merge == "group" else " AND group_key IS NOT NULL"
    params: list[Any] = [carrier["channel"], now, carrier["id"]]
    if lane.merge == "group":
        params.append(carrier["group_key"])
    # One alert's own news, told twice while the channel was busy (it fired, then
    # recovered), stays two notices, in order: merging is for other alerts.
    told = {carrier["alert_key"]} if carrier["alert_key"] else set()
    others: list[int] = []
    for r in db.query(
        "SELECT id, alert_key FROM outbox WHERE status = 'pending' AND channel = ?"
        f" AND next_attempt_at <= ? AND id != ?{scope} ORDER BY next_attempt_at, id"
        " LIMIT 999",
        params,
    ):
        if r["alert_key"] is not None:
            if r["alert_key"] in told:
                continue
            told.add(r["alert_key"])
        others.append(int(r["id"]))
    if not others:
        return []
    marks = ",".join("?" for _ in others)
    db.execute(
        f"UPDATE notice_members SET outbox_id = ? WHERE outbox_id IN ({marks})",
        [carrier["id"], *others],
    )
    db.execute(
        f"UPDATE outbox SET status = 'merged', merged_into = ?, leased_by = NULL"
        f" WHERE id IN ({marks})",
        [carrier["id"], *others],
    )
    db.execute("UPDATE outbox SET kind = 'group' WHERE id = ?", (carrier["id"],))
    carrier["kind"] = "group"
    return others


def _skip_locked(db: Tx) -> str:
    """Replicas on PostgreSQL: rows another replica is claiming are passed over,
    never waited for and never taken twice (once it commits they are leased)."""
    return " FOR UPDATE SKIP LOCKED" if db.dialect == "postgresql" else ""


def claim(
    db: Tx,
    now: str,
    lease_until: str,
    limit: int,
    *,
    owner: str,
    lanes: dict[str, Lane] | None = None,
) -> Claim:
    """Take due notices for sending now: at most ``limit`` in all, and from each
    channel what its lane allows (channels without a lane: unpaced).

    They are pushed to ``lease_until`` and marked with ``owner``, so no other
    sender (a second process, the CLI) takes them meanwhile. After a crash
    mid-send, a successor sees the owner is dead and takes them back at once
    (``release_leases``); failing that, the lease runs out and they are tried again.
    """
    lanes = lanes or {}
    taken: list[Claimed] = []
    waiting: list[str] = []
    moment = parse_iso(now)
    for channel in _due(db, now):
        lane = lanes.get(channel, Lane(slots=limit))
        room = min(lane.slots, limit - len(taken))
        if room <= 0:
            waiting.append(channel)
            continue
        rows = list(
            db.query(
                "SELECT * FROM outbox WHERE status = 'pending' AND channel = ?"
                " AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?" + _skip_locked(db),
                (channel, now, room),
            )
        )
        gathered: list[int] = []
        for row in rows:
            item = Claimed(row)
            if lane.merge and row["group_key"] is not None:
                merged = _merge(db, row, now, lane)
                item.merged = len(merged)
                gathered += merged
            if row["kind"] == "group" or (lane.incident and row["group_key"] is not None):
                item.members = members(db, row["id"])
            if lane.incident and row["group_key"] is not None:
                item.firing = firing_in_group(db, row["group_key"])
            db.execute(
                "UPDATE outbox SET next_attempt_at = ?, leased_by = ? WHERE id = ?",
                (lease_until, owner, row["id"]),
            )
            gathered.append(int(row["id"]))
            taken.append(item)
            if lane.merge:
                break  # everything else due was folded into it
        _restart_windows(db, gathered, moment)
        if len(taken) >= limit:
            break
    upcoming = next(
        db.query(
            "SELECT min(next_attempt_at) AS at FROM outbox WHERE status = 'pending'"
            " AND next_attempt_at > ?",
            (now,),
        ),
        None,
    )
    return Claim(taken, waiting, upcoming["at"] if upcoming else None)


def lease_holders(db: Tx, now: str) -> list[str]:
    """Who holds leases on pending notices that have not run out."""
    return [
        row["leased_by"]
        for row in db.query(
            "SELECT DISTINCT leased_by FROM outbox WHERE status = 'pending'"
            " AND leased_by IS NOT NULL AND next_attempt_at > ?",
            (now,),
        )
    ]


def release_leases(db: Tx, owner: str, now: str) -> int:
    """Make ``owner``'s leased notices due now: it died before recording them."""
    return db.execute(
        "UPDATE outbox SET next_attempt_at = ?, leased_by = NULL"
        " WHERE status = 'pending' AND leased_by = ?",
        (now, owner),
    ).rowcount


def record(
    db: Tx,
    outbox_id: int,
    *,
    status: str,
    attempts: int,
    next_attempt_at: str,
    last_status: int | None,
    error: str | None,
    response: str | None,
    sent_at: str | None,
    message: Message | None = None,
) -> None:
    """One attempt's outcome; ``message``: what was sent, when it was made at sending."""
    db.execute(
        "UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?, last_status = ?,"
        " last_error = ?, response = ?, sent_at = ?, leased_by = NULL,"
        " message = coalesce(?, message) WHERE id = ? AND status = 'pending'",
        (
            status,
            attempts,
            next_attempt_at,
            last_status,
            error,
            response[:1000] if response else None,
            sent_at,
            message_json(message) if message is not None else None,
            outbox_id,
        ),
    )


_SUMMARY = (
    "id, alert_key, channel, kind, status, attempts, last_status, last_error,"
    " created_at, sent_at, next_attempt_at, group_key, merged_into"
)


def for_alerts(db: Tx, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each alert's notices: its own, and the grouped ones that named it."""
    out: dict[str, list[dict[str, Any]]] = {}
    if not keys:
        return out
    marks = ",".join("?" for _ in keys)
    own = db.query(f"SELECT {_SUMMARY} FROM outbox WHERE alert_key IN ({marks})", keys)
    named = db.query(
        f"SELECT m.alert_key AS named, o.{_SUMMARY.replace(', ', ', o.')} FROM notice_members m"
        f" JOIN outbox o ON o.id = m.outbox_id WHERE m.alert_key IN ({marks})",
        keys,
    )
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for row in own:
        found[(row["alert_key"], row["id"])] = row
    for row in named:
        key = row.pop("named")
        found.setdefault((key, row["id"]), row)
    for (key, _), row in sorted(found.items(), key=lambda item: item[0][1]):
        out.setdefault(key, []).append(row)
    return out


def listing(
    db: Tx, *, status: str | None, limit: int, kind: str | None = None
) -> list[dict[str, Any]]:
    """The latest notices, newest first, each with its title and how many members it has."""
    conditions = [(c, v) for c, v in (("status = ?", status), ("kind = ?", kind)) if v is not None]
    where = ("WHERE " + " AND ".join(c for c, _ in conditions)) if conditions else ""
    params = [v for _, v in conditions]
    return [
        {k: v for k, v in row.items() if k != "message"}
        | {"title": json.loads(row["message"]).get("title") or None}
        for row in db.query(
            f"SELECT o.*, (SELECT count(*) FROM notice_members m WHERE m.outbox_id = o.id)"
            f" AS members FROM outbox o {where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
    ]


def notice(db: Tx, outbox_id: int, *, limit: int = 1000) -> dict[str, Any] | None:
    """One notice as sent or to be sent, with the alerts it names."""
    row = next(db.query("SELECT * FROM outbox WHERE id = ?", (outbox_id,)), None)
    if row is None:
        return None
    message = json.loads(row.pop("message"))
    members = list(
        db.query(
            "SELECT alert_key, rule, repo, state, severity, url, at FROM notice_members"
            " WHERE outbox_id = ? ORDER BY id LIMIT ?",
            (outbox_id, limit),
        )
    )
    total = next(
        db.query("SELECT count(*) AS n FROM notice_members WHERE outbox_id = ?", (outbox_id,))
    )["n"]
    merged = [
        r["id"] for r in db.query("SELECT id FROM outbox WHERE merged_into = ?", (outbox_id,))
    ]
    return row | {
        "title": message.get("title") or None,
        "members": members,
        "member_count": total,
        "merged": merged,
    }
