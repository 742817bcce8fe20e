"""``summary_items``: the status summary's items, their reports, deadlines and last status.

The one module that writes the table. It stores and reads rows; what a row means
(the item, its schedule, when it turns MISSING, who may report it) is decided in
summary/items.py. Times are ISO-8601 UTC strings in the table, datetimes here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypedDict, cast

from ..clock import iso, parse_iso, parse_iso_or_none
from .db import Tx, present


class ItemRow(TypedDict):
    """A row of ``summary_items``, as stored."""

    path: str
    owner: str
    repo: str
    kind: str  # "workflow" | "heartbeat"
    link: str | None
    report: str
    note: str | None
    updated: str | None
    schedule: str | None  # an ISO-8601 duration or a cron string; None: never MISSING
    grace_s: int
    declared: int  # 1: from an expectation in rules/
    created_at: str
    due_at: str | None
    status: str | None  # as of the last summary
    status_since: str | None
    started_at: str | None  # a heartbeat's /start not yet ended by a report
    run_seconds: float | None  # its last run's time, /start to report
    # ``schedule`` and ``grace_s`` are what holds: the declaration's, else the
    # workflow file's (``settle``). Their sources:
    implicit_schedule: str | None  # the workflow file's crons, "; "-separated
    implicit_grace_s: int | None
    source: str | None  # that workflow file
    declared_schedule: str | None
    declared_grace_s: int | None  # None: the declaration gave none
    ignored: int  # 1: an [[expect]] said ignore = true
    channels: str | None  # an [[expect]]'s channels (JSON list); None: the rules'
    tz: str | None  # the schedule's zone; None: the summary's


def all_items(db: Tx) -> list[ItemRow]:
    """Every item, by path."""
    return cast(list[ItemRow], list(db.query("SELECT * FROM summary_items ORDER BY path")))


def item(db: Tx, path: str) -> ItemRow | None:
    row = next(db.query("SELECT * FROM summary_items WHERE path = ?", (path,)), None)
    return cast(ItemRow | None, row)


def existing(db: Tx, paths: Iterable[str]) -> set[str]:
    """Which of ``paths`` are summary items (in one query per bounded chunk)."""
    return present(db, "summary_items", "path", paths)


def kind_and_declared(db: Tx, path: str) -> tuple[str, bool] | None:
    """The item's kind and whether rules/ declare it; None for no item at ``path``."""
    row = next(db.query("SELECT kind, declared FROM summary_items WHERE path = ?", (path,)), None)
    return None if row is None else (str(row["kind"]), bool(row["declared"]))


def set_due(db: Tx, path: str, due: datetime | None) -> None:
    db.execute(
        "UPDATE summary_items SET due_at = ? WHERE path = ?",
        (iso(due) if due else None, path),
    )


def record_report(
    db: Tx,
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
) -> Callable[[], bool]:
    """Store a report for an item (creating it). A report older than the stored
    one loses, and the same report again changes nothing. Returns what says
    whether the row changed: read only when called, so that on PostgreSQL the
    statement's answer may come along with a later read's."""
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
    return lambda: bool(cursor.rowcount)


def start_run(db: Tx, *, path: str, owner: str, repo: str, now: datetime) -> None:
    """A heartbeat's run began (``/start``): the item exists from now, its report
    and deadline unchanged; the next report measures the run from here."""
    db.execute(
        "INSERT INTO summary_items (path, owner, repo, kind, created_at, started_at)"
        " VALUES (?, ?, ?, 'heartbeat', ?, ?)"
        " ON CONFLICT(path) DO UPDATE SET started_at = excluded.started_at",
        (path, owner, repo, iso(now), iso(now)),
    )


def finish_run(db: Tx, path: str, now: datetime) -> float | None:
    """The run time of the run a report ends (seconds since its ``/start``), kept on
    the item; None when no run was started."""
    row = next(db.query("SELECT started_at FROM summary_items WHERE path = ?", (path,)), None)
    if row is None or row["started_at"] is None:
        return None
    seconds = max(0.0, (now - parse_iso(row["started_at"])).total_seconds())
    db.execute(
        "UPDATE summary_items SET started_at = NULL, run_seconds = ? WHERE path = ?",
        (seconds, path),
    )
    return seconds


def declared_paths(db: Tx) -> list[str]:
    """The paths of the items rules/ declared, as last synced."""
    return [str(r["path"]) for r in db.query("SELECT path FROM summary_items WHERE declared = 1")]


def undeclare(db: Tx, path: str) -> None:
    """The item is no longer declared: what its workflow file says (if anything) holds."""
    db.execute(
        "UPDATE summary_items SET declared = 0, declared_schedule = NULL,"
        " declared_grace_s = NULL, ignored = 0, channels = NULL WHERE path = ?",
        (path,),
    )
    settle(db, path)


def declare(
    db: Tx,
    *,
    path: str,
    owner: str,
    repo: str,
    kind: str,
    note: str | None,
    schedule: str | None,
    grace_s: int | None,
    now: datetime,
    ignored: bool = False,
    channels: str | None = None,
) -> None:
    """Create a declared item, or set an existing one's declaration (its report stays)."""
    db.execute(
        "INSERT INTO summary_items (path, owner, repo, kind, note, declared_schedule,"
        " declared_grace_s, ignored, channels, declared, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)"
        " ON CONFLICT(path) DO UPDATE SET declared_schedule = excluded.declared_schedule,"
        " declared_grace_s = excluded.declared_grace_s, ignored = excluded.ignored,"
        " channels = excluded.channels, declared = 1",
        (path, owner, repo, kind, note, schedule, grace_s, int(ignored), channels, iso(now)),
    )
    settle(db, path)


def watch(
    db: Tx,
    *,
    path: str,
    owner: str,
    repo: str,
    source: str,
    schedule: str | None,
    grace_s: int,
    now: datetime,
) -> None:
    """What a workflow file's schedule expects of its item (None: nothing, any longer)."""
    db.execute(
        "INSERT INTO summary_items (path, owner, repo, kind, implicit_schedule,"
        " implicit_grace_s, source, created_at) VALUES (?, ?, ?, 'workflow', ?, ?, ?, ?)"
        " ON CONFLICT(path) DO UPDATE SET implicit_schedule = excluded.implicit_schedule,"
        " implicit_grace_s = excluded.implicit_grace_s, source = excluded.source",
        (
            path,
            owner,
            repo,
            schedule,
            grace_s if schedule else None,
            source if schedule else None,
            iso(now),
        ),
    )
    settle(db, path)


def settle(db: Tx, path: str) -> None:
    """Set the schedule that holds: none when ignored, else the declaration's, else the
    workflow file's (in UTC, as GitHub runs it); a declared grace wins either way."""
    db.execute(
        "UPDATE summary_items SET"
        " schedule = CASE WHEN ignored = 1 THEN NULL"
        " ELSE coalesce(declared_schedule, implicit_schedule) END,"
        " grace_s = CASE WHEN declared_schedule IS NOT NULL THEN coalesce(declared_grace_s, 0)"
        " ELSE coalesce(declared_grace_s, implicit_grace_s, 0) END,"
        " tz = CASE WHEN declared_schedule IS NULL AND implicit_schedule IS NOT NULL"
        " THEN 'UTC' END"
        " WHERE path = ?",
        (path,),
    )


def watching(db: Tx, owner: str, repo: str, source: str) -> str | None:
    """The path of the item a repository's workflow file expects, if one does."""
    row = next(
        db.query(
            "SELECT path FROM summary_items WHERE owner = ? AND repo = ? AND source = ?",
            (owner, repo, source),
        ),
        None,
    )
    return None if row is None else str(row["path"])


def next_due(db: Tx, now: datetime) -> datetime | None:
    """The earliest deadline after ``now``: when the next item would turn MISSING."""
    row = next(
        db.query("SELECT min(due_at) AS at FROM summary_items WHERE due_at > ?", (iso(now),)), None
    )
    return parse_iso_or_none(row["at"]) if row and row["at"] else None


def set_status(db: Tx, path: str, *, previous: str | None, current: str, at: datetime) -> bool:
    """Compare-and-set the item's status: False (nothing written) if it is no longer
    ``previous``."""
    cursor = db.execute(
        "UPDATE summary_items SET status = ?, status_since = ? WHERE path = ? AND status IS ?",
        (current, iso(at), path, previous),
    )
    return bool(cursor.rowcount)


def reset_reported(db: Tx) -> None:
    """Forget what builds reported, for a replay to report it again: undeclared
    workflow items go, declared ones keep their schedule and lose their report."""
    db.execute(
        "DELETE FROM summary_items WHERE kind = 'workflow' AND declared = 0 AND source IS NULL"
    )
    db.execute(
        "UPDATE summary_items SET report = 'NOT_REPORTED', note = NULL, updated = NULL,"
        " link = NULL WHERE kind = 'workflow'"
    )


def listing(
    db: Tx,
    *,
    status: str | None = None,
    repo: str | None = None,
    implicit: bool | None = None,
    limit: int = 500,
) -> list[ItemRow]:
    """Items by path, as of the last summary: of a status, a repository ("owner/name"),
    and those a workflow file's schedule expects (``implicit``) or not."""
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if repo is not None:
        owner, _, name = repo.partition("/")
        where.append("owner = ? AND repo = ?")
        params += [owner, name]
    if implicit is not None:
        where.append(
            "(declared_schedule IS NULL AND implicit_schedule IS NOT NULL)"
            if implicit
            else "NOT (declared_schedule IS NULL AND implicit_schedule IS NOT NULL)"
        )
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = db.query(f"SELECT * FROM summary_items{clause} ORDER BY path LIMIT ?", [*params, limit])
    return cast(list[ItemRow], list(rows))
