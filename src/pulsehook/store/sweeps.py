"""The sweeps table: where a periodic pass over every repository has got to.

A sweep (the daily rescore) runs a few repositories per writer turn, so intake
and processing take their turns between its chunks; its place is stored with
each chunk's results, so a restart resumes it instead of starting over.
"""

from __future__ import annotations

from .db import Tx


def start(db: Tx, name: str, at: str) -> None:
    """Begin (or begin again) the sweep ``name`` from the first repository."""
    db.execute(
        "INSERT OR REPLACE INTO sweeps (name, cursor, started_at, finished_at)"
        " VALUES (?, 0, ?, NULL)",
        (name, at),
    )


def position(db: Tx, name: str) -> int | None:
    """The last repository id a running sweep has done; None when none runs."""
    row = next(
        db.query("SELECT cursor FROM sweeps WHERE name = ? AND finished_at IS NULL", (name,)),
        None,
    )
    return None if row is None else int(row["cursor"])


def advance(db: Tx, name: str, cursor: int, *, finished_at: str | None) -> None:
    db.execute(
        "UPDATE sweeps SET cursor = ?, finished_at = ? WHERE name = ?",
        (cursor, finished_at, name),
    )
