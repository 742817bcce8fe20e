"""``pulseox_files``: the report files pulseox clients store through the contents API.

Only the current version of each file is kept, with its sha (git's blob hash),
keyed by the repository and the path inside it.
"""

from __future__ import annotations

from datetime import datetime

from ..clock import iso
from .db import Tx


def stored(db: Tx, owner: str, repo: str, path: str) -> dict[str, str] | None:
    """The stored file's ``content`` and ``sha``; None if there is none."""
    row = next(
        db.query(
            "SELECT content, sha FROM pulseox_files WHERE owner = ? AND repo = ? AND path = ?",
            (owner, repo, path),
        ),
        None,
    )
    return None if row is None else {"content": str(row["content"]), "sha": str(row["sha"])}


def store_file(
    db: Tx, owner: str, repo: str, path: str, *, text: str, sha: str, at: datetime
) -> None:
    """Store the file, replacing the version before."""
    db.execute(
        "INSERT OR REPLACE INTO pulseox_files (owner, repo, path, content, sha, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (owner, repo, path, text, sha, iso(at)),
    )
