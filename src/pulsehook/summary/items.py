"""The summary_items table: reading and writing items, keeping deadlines current."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from ..clock import iso, parse_iso_or_none
from ..facts import Build
from ..rules.model import Expectation
from ..timing import iso_duration, parse_duration
from .model import Item, due


def _schedule_text(schedule: timedelta | str | None) -> str | None:
    if schedule is None:
        return None
    return iso_duration(schedule) if isinstance(schedule, timedelta) else schedule


def _schedule(text: str | None) -> timedelta | str | None:
    # Stored as written by _schedule_text: ISO durations start with "P"; anything
    # else is a cron string, validated when the rules were loaded.
    if text is None:
        return None
    return parse_duration(text) if text.startswith("P") else text


def from_row(row: Any) -> Item:
    return cached_item(
        row["path"],
        row["owner"],
        row["repo"],
        row["kind"],
        row["link"],
        row["report"],
        row["note"],
        row["updated"],
        row["schedule"],
        row["grace_s"],
    )


@functools.lru_cache(maxsize=65536)
def cached_item(
    path: str,
    owner: str,
    repo: str,
    kind: str,
    link: str | None,
    report: str,
    note: str | None,
    updated: str | None,
    schedule: str | None,
    grace_s: int,
) -> Item:
    # Cached: the same row gives the same (immutable) item, without re-parsing. Every
    # version of a row is an entry: the summarizer bounds the cache (service.py).
    return Item(
        path=path,
        owner=owner,
        repo=repo,
        kind=kind,
        link=link,
        report=report,
        note=note,
        updated=parse_iso_or_none(updated),
        schedule=_schedule(schedule),
        grace=timedelta(seconds=grace_s),
    )


def load_all(db: Database) -> list[tuple[Item, Any]]:
    """Every item with its row (``sqlite3.Row``: read by column name)."""
    cursor = db.conn.execute("SELECT * FROM summary_items ORDER BY path")
    return [(from_row(r), r) for r in cursor.fetchall()]


def _refresh_due(db: Database, path: str, tz: str) -> None:
    row = next(db.query("SELECT * FROM summary_items WHERE path = ?", (path,)), None)
    if row is None:
        return
    deadline = due(from_row(row), tz, created=parse_iso_or_none(row["created_at"]))
    db.execute(
        "UPDATE summary_items SET due_at = ? WHERE path = ?",
        (iso(deadline) if deadline else None, path),
    )


def record_report(
    db: Database,
    *,
    path: str,
    owner: str,
    repo: str,
    kind: str,
    report: str,
    note: str | None,
    at: datetime,
    link: str | None,
    now: datetime,
    tz: str,
) -> bool:
    """Store a report for an item (creating it); older reports than the stored one lose."""
    cursor = db.execute(
        "INSERT INTO summary_items (path, owner, repo, kind, link, report, note, updated,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET"
        " report = excluded.report, note = excluded.note, updated = excluded.updated,"
        " link = coalesce(excluded.link, summary_items.link)"
        " WHERE coalesce(summary_items.updated, '') <= excluded.updated"
        # The same report again (a redelivery, a scan) changes nothing: no refresh.
        " AND (summary_items.updated IS NOT excluded.updated"
        " OR summary_items.report IS NOT excluded.report"
        " OR summary_items.note IS NOT excluded.note"
        " OR summary_items.link IS NOT coalesce(excluded.link, summary_items.link))",
        (path, owner, repo, kind, link, report, note, iso(at), iso(now)),
    )
    if cursor.rowcount:
        _refresh_due(db, path, tz)
    return bool(cursor.rowcount)


def _workflow_path(path: str) -> bool:
    """Whether ``path`` is in the workflow items' namespace, ``owner/repo/actions/...``."""
    parts = path.split("/", 3)
    return len(parts) > 3 and parts[2].lower() == "actions"


def kept_by_webhooks(db: Database, path: str) -> bool:
    """Whether webhooks (and CI reports) keep the item at ``path``, so no heartbeat may
    change it.

    Heartbeats own the items they created and the heartbeat items declared in
    rules/; every workflow item (made from builds, or declared with ``workflow``)
    is the webhooks'. So is any new path under a repository's ``actions/``, where
    workflow items live: a heartbeat cannot claim one before the first build
    does, nor put a look-alike next to it (``Actions/``).
    """
    row = next(db.query("SELECT kind, declared FROM summary_items WHERE path = ?", (path,)), None)
    if row is None:
        return _workflow_path(path)
    if row["kind"] != "heartbeat":
        return True
    return _workflow_path(path) and not row["declared"]


def record_heartbeat(
    db: Database,
    *,
    path: str,
    owner: str,
    repo: str,
    report: str,
    note: str | None,
    now: datetime,
    tz: str,
) -> bool:
    """Store a heartbeat report for its item; False (nothing changed) if webhooks keep it.

    The check and the write share the caller's transaction: no build can land between.
    """
    if kept_by_webhooks(db, path):
        return False
    record_report(
        db,
        path=path,
        owner=owner,
        repo=repo,
        kind="heartbeat",
        report=report,
        note=note,
        at=now,
        link=None,
        now=now,
        tz=tz,
    )
    return True


def record_build(db: Database, build: Build, *, now: datetime, tz: str) -> bool:
    """A completed default-branch run is the report of its workflow's item."""
    if not build.counts_on_default_branch:
        return False
    owner, _, name = build.repo.partition("/")
    at = parse_iso_or_none(build.completed_at) or now
    return record_report(
        db,
        path=f"{build.repo}/actions/{build.workflow}",
        owner=owner,
        repo=name,
        kind="workflow",
        report="GOOD" if build.status == "success" else "BAD",
        note=f"{build.status} ({build.event})" if build.event else build.status,
        at=at,
        link=build.url,
        now=now,
        tz=tz,
    )


def sync_expectations(
    db: Database, expectations: tuple[Expectation, ...], *, now: datetime, tz: str
) -> None:
    """Make the declared items match the rules: schedules set, dropped ones undeclared."""
    declared = {e.item_path for e in expectations}
    for row in list(db.query("SELECT path FROM summary_items WHERE declared = 1")):
        if row["path"] not in declared:
            db.execute(
                "UPDATE summary_items SET declared = 0, schedule = NULL, grace_s = 0"
                " WHERE path = ?",
                (row["path"],),
            )
            _refresh_due(db, row["path"], tz)
    for e in expectations:
        db.execute(
            "INSERT INTO summary_items (path, owner, repo, kind, note, schedule, grace_s,"
            " declared, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)"
            " ON CONFLICT(path) DO UPDATE SET schedule = excluded.schedule,"
            " grace_s = excluded.grace_s, declared = 1",
            (
                e.item_path,
                e.owner,
                e.repo,
                "workflow" if e.workflow else "heartbeat",
                e.note,
                _schedule_text(e.schedule),
                int(e.grace.total_seconds()),
                iso(now),
            ),
        )
        _refresh_due(db, e.item_path, tz)


def next_deadline(db: Database, now: datetime) -> datetime | None:
    """The next time an item would turn MISSING: when the summary must be redone."""
    row = next(
        db.query("SELECT min(due_at) AS at FROM summary_items WHERE due_at > ?", (iso(now),)), None
    )
    return parse_iso_or_none(row["at"]) if row and row["at"] else None
