"""The scan's ledger: each repository's last scan, and the scan's own bookkeeping.

A round of the scan reads the ledger to put repositories in order (pushed to since
their last scan first, then never scanned, then the longest unscanned), sends each
request with the ETag it last got (a 304 costs no rate limit) and records a
repository only after its findings are stored, so a crash costs a rescan, never a
finding. ``scan_state`` keeps what must outlive a restart: the scan's spending in
GitHub's current rate-limit window and the last round's report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .db import Tx

SHARE = "share"  # scan_state: the scan's spending in the current rate-limit window
LAST_ROUND = "last_round"  # scan_state: the figures of the last round


@dataclass(frozen=True)
class Scanned:
    """When a repository was last scanned, and what its listing said then."""

    repo_id: int
    full_name: str
    pushed_at: str | None
    scanned_at: str


@dataclass
class Memory:
    """What a repository's next scan sends and assumes: ETags, and the facts a 304 keeps."""

    etags: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


def ledger(db: Tx) -> dict[int, Scanned]:
    """Every repository scanned so far, by GitHub id (a few short columns each)."""
    return {
        int(row["repo_id"]): Scanned(
            int(row["repo_id"]), row["full_name"], row["pushed_at"], row["scanned_at"]
        )
        for row in db.query("SELECT repo_id, full_name, pushed_at, scanned_at FROM scan_repos")
    }


def memory(db: Tx, repo_id: int) -> Memory:
    row = next(db.query("SELECT etags, facts FROM scan_repos WHERE repo_id = ?", (repo_id,)), None)
    if row is None:
        return Memory()
    return Memory(etags=json.loads(row["etags"]), facts=json.loads(row["facts"]))


def record(db: Tx, done: Scanned, remembered: Memory) -> None:
    db.execute(
        "INSERT INTO scan_repos (repo_id, full_name, pushed_at, scanned_at, etags, facts)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (repo_id) DO UPDATE SET"
        " full_name = excluded.full_name, pushed_at = excluded.pushed_at,"
        " scanned_at = excluded.scanned_at, etags = excluded.etags, facts = excluded.facts",
        (
            done.repo_id,
            done.full_name,
            done.pushed_at,
            done.scanned_at,
            json.dumps(remembered.etags, separators=(",", ":")),
            json.dumps(remembered.facts, separators=(",", ":")),
        ),
    )


def remember(
    db: Tx, repo_id: int, learned: Memory, *, etags: tuple[str, ...], facts: tuple[str, ...]
) -> None:
    """Merge these ETags and facts of ``learned`` into a scanned repository's memory
    (a read between scans: the rest of its memory stays as the scan left it)."""
    known = memory(db, repo_id)
    for key in etags:
        if key in learned.etags:
            known.etags[key] = learned.etags[key]
        else:
            known.etags.pop(key, None)
    for key in facts:
        if key in learned.facts:
            known.facts[key] = learned.facts[key]
        else:
            known.facts.pop(key, None)
    db.execute(
        "UPDATE scan_repos SET etags = ?, facts = ? WHERE repo_id = ?",
        (
            json.dumps(known.etags, separators=(",", ":")),
            json.dumps(known.facts, separators=(",", ":")),
            repo_id,
        ),
    )


def state(db: Tx, name: str) -> Any:
    """A stored JSON value of the scan's bookkeeping, or None."""
    row = next(db.query("SELECT value FROM scan_state WHERE name = ?", (name,)), None)
    return None if row is None else json.loads(row["value"])


def save_state(db: Tx, name: str, value: Any) -> None:
    db.execute(
        "INSERT INTO scan_state (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, json.dumps(value, separators=(",", ":"))),
    )


def last_round(db: Tx) -> dict[str, Any] | None:
    """The figures of the last scan round (no names: safe to show anyone), or None."""
    found = state(db, LAST_ROUND)
    return found if isinstance(found, dict) else None


def want_workflows(db: Tx, repo_id: int, at: str) -> None:
    """A push changed a workflow file: the repository's workflows are to be read again."""
    db.execute(
        "INSERT INTO workflows_wanted (repo_id, wanted_at) VALUES (?, ?)"
        " ON CONFLICT (repo_id) DO NOTHING",
        (repo_id, at),
    )


def workflows_wanted(db: Tx, *, wanted_before: str, limit: int) -> list[dict[str, Any]]:
    """Repositories whose workflows are wanted since ``wanted_before`` or earlier, longest
    waiting first, with what reading them needs of the repository."""
    return list(
        db.query(
            "SELECT w.repo_id, w.wanted_at, r.full_name, r.default_branch, r.private,"
            " r.last_push_at FROM workflows_wanted w JOIN repositories r ON r.id = w.repo_id"
            " WHERE r.deleted = 0 AND w.wanted_at <= ? ORDER BY w.wanted_at, w.repo_id LIMIT ?",
            (wanted_before, limit),
        )
    )


def workflows_read(db: Tx, repo_id: int, wanted_at: str) -> None:
    """The workflows were read for the want of ``wanted_at``; a later want stays."""
    db.execute(
        "DELETE FROM workflows_wanted WHERE repo_id = ? AND wanted_at <= ?", (repo_id, wanted_at)
    )
