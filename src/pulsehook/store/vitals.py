"""What an operator watches, read when asked (``/readyz``, ``/metrics``): each an index lookup.

Nothing here counts every delivery: the waiting ones and the failed ones are
found through ``deliveries_status`` and the outbox's backlog through
``outbox_due``, so the cost stays the same at a million deliveries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .db import Tx


@dataclass(frozen=True)
class Vitals:
    pending: int  # deliveries stored, not yet processed
    oldest_pending: str | None  # when the longest-waiting one was received
    failed: int  # deliveries whose processing failed (kept, retried at start)
    outbox: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, status) -> n


def read(db: Tx, *, outbox: bool = True) -> Vitals:
    """The figures; ``outbox=False`` leaves out the notices (readiness needs none)."""
    pending = db.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchone()[0]
    oldest = db.execute(
        "SELECT received_at FROM deliveries WHERE status = 'pending' ORDER BY id LIMIT 1"
    ).fetchone()
    failed = db.execute("SELECT count(*) FROM deliveries WHERE status = 'error'").fetchone()[0]
    backlog = (
        {
            (str(channel), str(status)): int(n)
            for channel, status, n in db.execute(
                "SELECT channel, status, count(*) FROM outbox"
                " WHERE status IN ('pending', 'parked') GROUP BY status, channel"
            ).fetchall()
        }
        if outbox
        else {}
    )
    return Vitals(int(pending), str(oldest[0]) if oldest else None, int(failed), backlog)


@dataclass(frozen=True)
class FilePages:
    total: int  # pages in the database file
    free: int  # pages inside the file that hold nothing (reused before the file grows)
    size: int  # bytes per page


def file_pages(db: Tx) -> FilePages:
    if db.dialect == "postgresql":  # the database's bytes, as one-byte "pages"
        size = db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        return FilePages(int(size), 0, 1)

    def pragma(name: str) -> int:
        return int(db.execute(f"PRAGMA {name}").fetchone()[0])

    return FilePages(pragma("page_count"), pragma("freelist_count"), pragma("page_size"))
