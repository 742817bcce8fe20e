"""The deliveries table: what GitHub sent, and how processing went."""

from __future__ import annotations

import json
import threading
import zlib
from dataclasses import dataclass
from typing import Any

import zstandard

from .db import Tx, present

STATUSES = ("pending", "processed", "ignored", "error")


@dataclass(frozen=True)
class Delivery:
    """A delivery as received, before it is stored."""

    guid: str
    event: str
    payload: str | bytes  # the JSON document (for form-encoded bodies, the ``payload`` field)
    content_type: str
    received_at: str
    action: str | None = None
    hook_id: int | None = None
    repo: str | None = None
    hook_target: str | None = None  # X-GitHub-Hook-Installation-Target-Type


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # every zstd frame starts with it; zlib streams never do


class _Codecs(threading.local):
    """One zstd compressor and decompressor per thread: they are not thread-safe."""

    def __init__(self) -> None:
        # Level 1: half zlib's time for smaller output (JSON shrinks about 7 times).
        self.compressor = zstandard.ZstdCompressor(level=1)
        self.decompressor = zstandard.ZstdDecompressor()


_codecs = _Codecs()


def encode_payload(payload: str | bytes) -> bytes:
    """How a payload is stored: one zstd frame (it records its own length)."""
    return _codecs.compressor.compress(payload.encode() if isinstance(payload, str) else payload)


def decode_payload(stored: bytes) -> bytes:
    """The JSON document as received; zlib payloads from earlier versions still read."""
    if stored[:4] == ZSTD_MAGIC:
        return _codecs.decompressor.decompress(stored)
    return zlib.decompress(stored)


_INSERT_ROWS = 256  # deliveries per INSERT: 8 parameters each, far below either store's limit


def insert_batch(db: Tx, batch: list[Delivery]) -> list[bool]:
    """Insert deliveries; True for each that is new, False for a redelivery.

    One statement per 256 deliveries and one for their payloads, not two per
    delivery: on PostgreSQL each statement is a round trip, and intake holds
    the writer while it waits. A guid twice in one batch is new only the first
    time, as it would be in two batches.
    """
    ids: dict[str, int] = {}
    for start in range(0, len(batch), _INSERT_ROWS):
        rows = batch[start : start + _INSERT_ROWS]
        marks = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?)" for _ in rows)
        params = [
            value
            for d in rows
            for value in (
                d.guid,
                d.event,
                d.action,
                d.hook_id,
                d.content_type,
                d.received_at,
                d.repo,
                d.hook_target,
            )
        ]
        made = db.execute(
            "INSERT INTO deliveries (guid, event, action, hook_id, content_type, received_at,"
            f" repo, hook_target) VALUES {marks} ON CONFLICT(guid) DO NOTHING RETURNING id, guid",
            params,
        ).fetchall()
        ids.update((guid, delivery_id) for delivery_id, guid in made)
    fresh: list[bool] = []
    payloads: list[tuple[int, bytes]] = []
    for d in batch:
        delivery_id = ids.pop(d.guid, None)  # popped: a second copy in the batch is not new
        if delivery_id is not None:
            payloads.append((delivery_id, encode_payload(d.payload)))
        fresh.append(delivery_id is not None)
    db.executemany("INSERT INTO delivery_payloads (delivery_id, payload) VALUES (?, ?)", payloads)
    return fresh


def next_batch(
    db: Tx, *, after_id: int, limit: int, statuses: tuple[str, ...] = ("pending",)
) -> list[dict[str, Any]]:
    """The next deliveries to process, in arrival order (``claim``, less what it defers)."""
    return claim(db, after_id=after_id, limit=limit, statuses=statuses)[0]


def claim(
    db: Tx, *, after_id: int, limit: int, statuses: tuple[str, ...] = ("pending",)
) -> tuple[list[dict[str, Any]], int]:
    """The next deliveries to process, in arrival order, and how many repositories
    were left for a moment because another replica is processing them.

    On PostgreSQL, replicas process side by side, a repository at a time: of
    the repositories whose deliveries wait longest, this replica takes those
    whose transaction-level advisory lock it gets, and claims their waiting
    deliveries in order. A repository's deliveries are only ever row-locked
    by the holder of its lock, so none of them is skipped or taken out of
    turn, and each repository's are processed in order, as by one process.
    """
    marks = ",".join("?" for _ in statuses)
    select = (
        "SELECT d.id, d.guid, d.event, p.payload, d.hook_id, d.hook_target, d.content_type,"
        " d.received_at, d.repo FROM deliveries d"
        " JOIN delivery_payloads p ON p.delivery_id = d.id"
        f" WHERE d.status IN ({marks}) AND d.id > ?"
    )
    if db.dialect != "postgresql":
        rows = db.query(select + " ORDER BY d.id LIMIT ?", (*statuses, after_id, limit))
        return list(rows), 0
    mine, others, last = _repositories_in_turn(db, after_id=after_id, statuses=statuses)
    if not mine:
        return [], others
    repos = ",".join("?" for _ in mine)
    # The ids first, locked, then their rows and payloads: only the deliveries
    # taken are joined, and only the ids the window looked at are searched (a
    # repository's later ones wait for the next chunk, still in order).
    rows = db.query(
        "SELECT d.id, d.guid, d.event, p.payload, d.hook_id, d.hook_target, d.content_type,"
        " d.received_at, d.repo FROM (SELECT id FROM deliveries"
        f" WHERE status IN ({marks}) AND id > ? AND id <= ? AND coalesce(repo, '') IN ({repos})"
        " ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED) AS taken"
        " JOIN deliveries d ON d.id = taken.id JOIN delivery_payloads p ON p.delivery_id = d.id"
        " ORDER BY d.id",
        (*statuses, after_id, last, *mine, limit),
    )
    return list(rows), others


REPOSITORIES_PER_CLAIM = 32  # the longest-waiting repositories a replica tries for
# How far down the queue a claim looks for them: the repositories of the first
# waiting deliveries are those that have waited longest, and no more than these
# are grouped however long the queue has grown (until the planner has
# statistics, PostgreSQL may still scan every waiting row to find them). When
# all of these are another replica's for the moment, this one tries again
# shortly (``deferred``).
CLAIM_WINDOW = 256


def _repositories_in_turn(
    db: Tx, *, after_id: int, statuses: tuple[str, ...]
) -> tuple[list[str], int, int]:
    """Of the repositories waiting longest, those this replica holds the lock of
    now (until its transaction ends), how many others hold, and the last id
    the window looked at."""
    marks = ",".join("?" for _ in statuses)
    # One statement, one round trip: the lock is tried for each of the
    # repositories, in the order they have waited.
    waiting = db.execute(
        "SELECT r, pg_try_advisory_xact_lock(hashtextextended('repo:' || r, 0)), last FROM"
        " (SELECT coalesce(repo, '') AS r, min(id) AS first, max(max(id)) OVER () AS last FROM"
        f" (SELECT id, repo FROM deliveries WHERE status IN ({marks}) AND id > ?"
        " ORDER BY id LIMIT ?) AS queue"
        " GROUP BY coalesce(repo, '') ORDER BY first LIMIT ?) AS waiting ORDER BY first",
        (*statuses, after_id, CLAIM_WINDOW, REPOSITORIES_PER_CLAIM),
    ).fetchall()
    mine = [repo for repo, locked, _ in waiting if locked]
    last = max((int(end) for _, _, end in waiting), default=after_id)
    return mine, len(waiting) - len(mine), last


def next_received_at(db: Tx, after_id: int) -> str | None:
    """When the first delivery past the processing cursor was received; None if none waits."""
    row = db.execute(
        "SELECT received_at FROM deliveries WHERE id > ? ORDER BY id LIMIT 1", (after_id,)
    ).fetchone()
    return str(row[0]) if row else None


def mark(db: Tx, delivery_id: int, status: str, *, error: str | None, at: str) -> None:
    db.execute(
        "UPDATE deliveries SET status = ?, error = ?, processed_at = ?, attempts = attempts + 1"
        " WHERE id = ?",
        (status, error, at, delivery_id),
    )


def mark_processed(db: Tx, delivery_ids: list[int], *, at: str) -> None:
    """``mark(..., "processed")`` for many deliveries in one statement."""
    for start in range(0, len(delivery_ids), 500):  # well under SQLite's variable limit
        part = delivery_ids[start : start + 500]
        db.execute(
            "UPDATE deliveries SET status = 'processed', error = NULL, processed_at = ?,"
            f" attempts = attempts + 1 WHERE id IN ({','.join('?' for _ in part)})",
            (at, *part),
        )


def reset_all(db: Tx) -> int:
    """Mark every delivery pending again (replay)."""
    return db.execute(
        "UPDATE deliveries SET status = 'pending', error = NULL, processed_at = NULL"
    ).rowcount


def reachable(db: Tx) -> None:
    """Touch the deliveries table: raises when the database cannot be read."""
    db.execute("SELECT 1 FROM deliveries LIMIT 1").fetchall()


def counts(db: Tx) -> dict[str, int]:
    rows = db.query("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
    found = {row["status"]: row["n"] for row in rows}
    return {status: int(found.get(status, 0)) for status in STATUSES}


def recent(
    db: Tx,
    *,
    status: str | None = None,
    event: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    where: list[str] = []
    params: list[Any] = []
    if status:
        where.append("status = ?")
        params.append(status)
    if event:
        where.append("event = ?")
        params.append(event)
    if before_id is not None:
        where.append("id < ?")
        params.append(before_id)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return list(
        db.query(
            "SELECT id, guid, event, action, repo, hook_id, content_type, received_at, status,"
            f" error, attempts, processed_at FROM deliveries {clause} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
    )


def record_hook(
    db: Tx,
    *,
    hook_id: int,
    events: list[str] | None,
    content_type: str | None,
    target: str | None,
    repo: str | None,
    ping_at: str | None,
    delivery_at: str,
    org: str | None = None,
) -> None:
    """Remember a hook: from its ping (events, content type) or any delivery's header."""
    db.execute(
        "INSERT INTO hooks (hook_id, events, content_type, target, repo, org, last_ping_at,"
        " last_delivery_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(hook_id) DO UPDATE SET"
        " events = CASE WHEN excluded.last_ping_at IS NOT NULL THEN excluded.events"
        "   ELSE hooks.events END,"
        " content_type = coalesce(excluded.content_type, hooks.content_type),"
        " target = coalesce(excluded.target, hooks.target),"
        " repo = coalesce(excluded.repo, hooks.repo),"
        " org = coalesce(excluded.org, hooks.org),"
        " last_ping_at = coalesce(excluded.last_ping_at, hooks.last_ping_at),"
        " last_delivery_at = max(coalesce(hooks.last_delivery_at, ''), excluded.last_delivery_at)",
        (hook_id, json.dumps(events or []), content_type, target, repo, org, ping_at, delivery_at),
    )


def hooks(db: Tx) -> list[dict[str, Any]]:
    """Every hook pulsehook has seen: ``hook_id``, ``target`` (its installation target
    type), and its ``repo`` (owner/name) or ``org``, when a delivery said."""
    return list(db.query("SELECT hook_id, target, repo, org FROM hooks ORDER BY hook_id"))


def known_guids(db: Tx, guids: list[str]) -> set[str]:
    """Which of ``guids`` are stored deliveries."""
    return present(db, "deliveries", "guid", guids)
