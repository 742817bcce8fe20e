"""Summary items: rows as items, reports and declarations, deadlines kept current.

The rows are store/summary.py's; here is what they mean: an item's schedule,
when it turns MISSING, and who may report it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..clock import parse_iso_or_none
from ..facts import PASSED_CONCLUSIONS, Build, WorkflowState
from ..github.workflow_files import ACTIVE
from ..rules.model import Expectation
from ..store import summary as store
from ..store.db import Tx
from ..store.summary import ItemRow
from ..timing import iso_duration, parse_duration, span
from .model import CRON_SEPARATOR, Item, due


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
        row["tz"],
        row["source"],
        row["declared_schedule"] is None and row["implicit_schedule"] is not None,
        row["channels"],
    )


def described(row: ItemRow) -> dict[str, Any]:
    """An item as the API and the dashboard show it: where its schedule comes from too."""
    item = from_row(row)
    return {
        "path": row["path"],
        "repo": item.full_repo,
        "kind": row["kind"],
        "workflow": item.workflow,
        "status": row["status"],
        "status_since": row["status_since"],
        "report": row["report"],
        "note": row["note"],
        "updated": row["updated"],
        "link": row["link"],
        "schedule": list(item.crons) if item.crons else row["schedule"],
        "timezone": item.tz,
        "grace_seconds": row["grace_s"],
        "due_at": row["due_at"],
        "implicit": item.implicit,
        "source": row["source"],
        "declared": bool(row["declared"]),
        "ignored": bool(row["ignored"]),
        "channels": list(item.channels),
    }


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
    tz: str | None = None,
    source: str | None = None,
    implicit: bool = False,
    channels: str | None = None,
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
        tz=tz,
        source=source,
        implicit=implicit,
        channels=tuple(json.loads(channels)) if channels else (),
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
    # A run of a watched workflow file reports that file's item, whatever its run is called.
    path = f"{build.repo}/actions/{build.workflow}"
    if build.workflow_path:
        path = store.watching(db, owner, name, build.workflow_path) or path
    return report_later(
        db,
        path=path,
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
    """Make the declared items match the rules: declarations set, dropped ones undeclared."""
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
            grace_s=None if e.grace is None else int(e.grace.total_seconds()),
            now=now,
            ignored=e.ignore,
            channels=json.dumps(list(e.channels)) if e.channels else None,
        )
        _refresh_due(db, e.item_path, tz)


def watch_workflow(db: Tx, fact: WorkflowState, *, now: datetime, tz: str) -> bool:
    """Keep the item a workflow file's schedule expects in step with the file and
    GitHub's state of it: an active scheduled workflow is expected at its crons (in
    UTC); a disabled or deleted one, one without a schedule, or one of an archived
    repository is expected no more (a disabled one is its own alert). Whether the
    item's schedule changed."""
    owner, _, name = fact.repo.partition("/")
    path = f"{fact.repo}/actions/{fact.workflow}"
    moved = store.watching(db, owner, name, fact.path)
    if moved is not None and moved != path:
        # Renamed in its file: the old name's item is expected no more.
        store.watch(
            db, path=moved, owner=owner, repo=name, source=fact.path, schedule=None, grace_s=0,
            now=now,
        )  # fmt: skip
        _refresh_due(db, moved, tz)
    expected = fact.state == ACTIVE and bool(fact.crons) and not fact.archived
    schedule = f"{CRON_SEPARATOR} ".join(fact.crons) if expected else None
    before = store.item(db, path)
    if before is None and schedule is None:
        return False
    if (
        before is not None
        and before["implicit_schedule"] == schedule
        and before["source"] == (fact.path if schedule else None)
        and (schedule is None or before["implicit_grace_s"] == fact.grace_s)
    ):
        return False
    store.watch(
        db,
        path=path,
        owner=owner,
        repo=name,
        source=fact.path,
        schedule=schedule,
        grace_s=fact.grace_s,
        now=now,
    )
    _refresh_due(db, path, tz)
    return True
