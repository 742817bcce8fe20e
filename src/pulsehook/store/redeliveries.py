"""``redelivery_requests``: each missed delivery pulsehook asked GitHub to redeliver.

One row per guid (``github/recovery.py`` says what its fields mean and decides
what comes next); kept across restarts so a delivery is asked for once. Settled
rows (recovered, expired, abandoned) are pruned with the history
(``retention/alerts.py``); open ones stay.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..clock import iso, parse_iso
from ..github.recovery import OPEN, Outcome, Request
from .db import Tx

COLUMNS = (
    "guid",
    "hook_id",
    "owner",
    "repo",
    "event",
    "delivered_at",
    "outcome",
    "asks",
    "delivery_id",
    "first_asked_at",
    "last_asked_at",
    "answer",
    "next_ask_at",
    "settled_at",
    "error",
)
_TIMES = ("delivered_at", "first_asked_at", "last_asked_at", "next_ask_at", "settled_at")
_OPEN = tuple(sorted(o.value for o in OPEN))
LAST_RECOVERY = "recovery_pass"  # scan_state: the figures of the last recovery pass


def _row(request: Request, now: str) -> tuple[Any, ...]:
    values = {name: getattr(request, name) for name in COLUMNS}
    for name in _TIMES:
        if values[name] is not None:
            values[name] = iso(values[name])
    values["outcome"] = request.outcome.value
    return (*(values[name] for name in COLUMNS), now)


def _request(row: dict[str, Any]) -> Request:
    values = dict(row)
    values.pop("updated_at", None)
    for name in _TIMES:
        if values[name] is not None:
            values[name] = parse_iso(values[name])
    values["outcome"] = Outcome(values["outcome"])
    return Request(**values)


def save(db: Tx, requests: Sequence[Request], now: datetime) -> None:
    """Remember ``requests``, each replacing its guid's row."""
    if not requests:
        return
    names = ", ".join((*COLUMNS, "updated_at"))
    marks = ", ".join("?" for _ in range(len(COLUMNS) + 1))
    sets = ", ".join(f"{c} = excluded.{c}" for c in (*COLUMNS[1:], "updated_at"))
    at = iso(now)
    db.executemany(
        f"INSERT INTO redelivery_requests ({names}) VALUES ({marks})"
        f" ON CONFLICT (guid) DO UPDATE SET {sets}",
        [_row(r, at) for r in requests],
    )


def open_requests(db: Tx) -> list[Request]:
    """The requests not yet settled, oldest delivery first."""
    marks = ", ".join("?" for _ in _OPEN)
    rows = db.query(
        f"SELECT * FROM redelivery_requests WHERE outcome IN ({marks}) ORDER BY delivered_at, guid",
        _OPEN,
    )
    return [_request(r) for r in rows]


def recall(db: Tx, guids: Sequence[str]) -> list[Request]:
    """The requests kept for any of ``guids``, whatever their outcome."""
    found: list[Request] = []
    for start in range(0, len(guids), 500):  # well under SQLite's variable limit
        chunk = list(guids[start : start + 500])
        marks = ",".join("?" for _ in chunk)
        rows = db.query(f"SELECT * FROM redelivery_requests WHERE guid IN ({marks})", chunk)
        found.extend(_request(r) for r in rows)
    return found


def recent(db: Tx, *, outcome: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The requests changed most recently, newest first, as the API shows them."""
    where, params = ("WHERE outcome = ?", [outcome]) if outcome else ("", [])
    rows = db.query(
        f"SELECT * FROM redelivery_requests {where} ORDER BY updated_at DESC, guid LIMIT ?",
        [*params, limit],
    )
    return [
        {
            "guid": r["guid"],
            "hook": {"id": r["hook_id"], "owner": r["owner"], "repo": r["repo"]},
            "event": r["event"],
            "delivered_at": r["delivered_at"],
            "outcome": r["outcome"],
            "asks": r["asks"],
            "first_asked_at": r["first_asked_at"],
            "last_asked_at": r["last_asked_at"],
            "answer": r["answer"],
            "next_ask_at": r["next_ask_at"],
            "settled_at": r["settled_at"],
            "error": r["error"],
        }
        for r in rows
    ]


def counts(db: Tx) -> dict[str, int]:
    """How many requests are in each outcome (every outcome named, zeros included)."""
    found = {o.value: 0 for o in Outcome}
    for row in db.query("SELECT outcome, count(*) AS n FROM redelivery_requests GROUP BY outcome"):
        found[str(row["outcome"])] = int(row["n"])
    return found


def last_recovered_at(db: Tx) -> str | None:
    """When a delivery pulsehook asked for was last found stored."""
    row = next(
        db.query(
            "SELECT max(settled_at) AS at FROM redelivery_requests WHERE outcome = ?",
            (Outcome.RECOVERED.value,),
        ),
        None,
    )
    return None if row is None or row["at"] is None else str(row["at"])


def overview(db: Tx) -> dict[str, Any]:
    """The last pass's figures, the requests by outcome, the last recovery (no names:
    safe to show anyone, as ``/readyz`` does)."""
    row = next(db.query("SELECT value FROM scan_state WHERE name = ?", (LAST_RECOVERY,)), None)
    last = json.loads(row["value"]) if row is not None else None
    return {
        "last_pass": last if isinstance(last, dict) else None,
        "requests": counts(db),
        "last_recovered_at": last_recovered_at(db),
    }
