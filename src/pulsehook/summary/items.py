"""Summary items: rows as items, reports and declarations, deadlines kept current.

The rows are store/summary.py's; here is what they mean: an item's schedule,
when it turns MISSING, and who may report it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..clock import parse_iso_or_none
from ..facts import PASSED_CONCLUSIONS, Build
from ..rules.model import Expectation
from ..store import summary as store
from ..store.db import Tx
from ..store.summary import ItemRow
from ..timing import iso_duration, parse_duration, span
from .model import Item, due


@dataclass(frozen=True)
class Heartbeat:
    """What a stored heartbeat did: began a run, or ended one that took this long."""

    started: bool = False
    run_seconds: float | None = None


START = "START"  # a heartbeat's /start: not a report, the beginning of a timed run


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


def from_row(row: ItemRow) -> Item:
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


def _refresh_due(db: Tx, path: str, tz: str) -> None:
    row = store.item(db, path)
    if row is None:
        return
    store.set_due(db, path, due(from_row(row), tz, created=parse_iso_or_none(row["created_at"])))


def report_later(
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
    tz: str,
) -> Callable[[], bool]:
    """Store a report for an item (creating it); older reports than the stored
    one lose. Calling what is returned says whether the report changed the
    item, and moves its deadline if so. The caller may go on in between (on
    PostgreSQL, the store's answer then comes along with the caller's next read
    instead of costing a round trip)."""
    changed = store.record_report(
        db,
        path=path,
        owner=owner,
        repo=repo,
        kind=kind,
        report=report,
        note=note,
        at=at,
        link=link,
        now=now,
    )

    def settle() -> bool:
        if not changed():
            return False
        _refresh_due(db, path, tz)
        return True

    return settle


def _workflow_path(path: str) -> bool:
    """Whether ``path`` is in the workflow items' namespace, ``owner/repo/actions/...``."""
    parts = path.split("/", 3)
    return len(parts) > 3 and parts[2].lower() == "actions"


def kept_by_webhooks(db: Tx, path: str) -> bool:
    """Whether webhooks (and CI reports) keep the item at ``path``, so no heartbeat may
    change it.

    Heartbeats own the items they created and the heartbeat items declared in
    rules/; every workflow item (made from builds, or declared with ``workflow``)
    is the webhooks'. So is any new path under a repository's ``actions/``, where
    workflow items live: a heartbeat cannot claim one before the first build
    does, nor put a look-alike next to it (``Actions/``).
    """
    found = store.kind_and_declared(db, path)
    if found is None:
        return _workflow_path(path)
    kind, declared = found
    if kind != "heartbeat":
        return True
    return _workflow_path(path) and not declared


def record_heartbeat(
    db: Tx,
    *,
    path: str,
    owner: str,
    repo: str,
    report: str,
    note: str | None,
    now: datetime,
    tz: str,
) -> Heartbeat | None:
    """Store a heartbeat report for its item; None (nothing changed) if webhooks keep it.

    ``report`` is GOOD, BAD or START: a run began, to be timed by the next report.

    The check and the write share the caller's transaction: no build can land between.
    """
    if kept_by_webhooks(db, path):
        return None
    if report == START:
        store.start_run(db, path=path, owner=owner, repo=repo, now=now)
        return Heartbeat(started=True)
    ran = store.finish_run(db, path, now)
    if ran is not None:
        # The run time goes in the note: the summary's files and pulseox show it.
        spent = f"ran {span(ran)}"
        note = f"{note} ({spent})" if note else spent
    report_later(
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
    )()
    return Heartbeat(run_seconds=ran)


def record_build(db: Tx, build: Build, *, now: datetime, tz: str) -> bool:
    """A completed default-branch run is the report of its workflow's item:
    whether it changed the item."""
    return report_build_later(db, build, now=now, tz=tz)()


def report_build_later(db: Tx, build: Build, *, now: datetime, tz: str) -> Callable[[], bool]:
    """``record_build`` in two steps (``report_later``): call what is returned to
    know whether the item changed."""
    if not build.counts_on_default_branch:
        return lambda: False
    owner, _, name = build.repo.partition("/")
    at = parse_iso_or_none(build.completed_at) or now
    return report_later(
        db,
        path=f"{build.repo}/actions/{build.workflow}",
        owner=owner,
        repo=name,
        kind="workflow",
        report="GOOD" if build.status in PASSED_CONCLUSIONS else "BAD",
        note=f"{build.status} ({build.event})" if build.event else build.status,
        at=at,
        link=build.url,
        now=now,
        tz=tz,
    )


def sync_expectations(
    db: Tx, expectations: tuple[Expectation, ...], *, now: datetime, tz: str
) -> None:
    """Make the declared items match the rules: schedules set, dropped ones undeclared."""
    declared = {e.item_path for e in expectations}
    for path in store.declared_paths(db):
        if path not in declared:
            store.undeclare(db, path)
            _refresh_due(db, path, tz)
    for e in expectations:
        store.declare(
            db,
            path=e.item_path,
            owner=e.owner,
            repo=e.repo,
            kind="workflow" if e.workflow else "heartbeat",
            note=e.note,
            schedule=_schedule_text(e.schedule),
            grace_s=int(e.grace.total_seconds()),
            now=now,
        )
        _refresh_due(db, e.item_path, tz)
