"""Summary items and their status, as pulseox computes it (pure).

An item is a workflow of a repository, a declared expectation, or a heartbeat.
Status: ERROR for a BAD report; MISSING when a scheduled item has not reported
within its schedule plus grace (or never reported); OK otherwise. Items without
a schedule are never MISSING.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..timing import next_due

STATUSES = ("ERROR", "MISSING", "OK")
CRON_SEPARATOR = ";"  # between a workflow's crons: never part of a cron
REPORTS = ("GOOD", "BAD", "NOT_REPORTED")
SUMMARY_PAGE = "/summary"  # the dashboard's page of the items
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def anchor(path: str) -> str:
    """An item's HTML id on the Summary page: readable, safe in a URL fragment
    unescaped, and unique (a short hash, since "a/b" and "a-b" slug alike)."""
    slug = _UNSAFE.sub("-", path).strip("-")[:80]
    digest = hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"item-{slug}-{digest}" if slug else f"item-{digest}"


def summary_link(public_url: str | None, path: str) -> str | None:
    """An item's row of the dashboard's Summary page under ``PULSEHOOK_PUBLIC_URL``
    (None without one): where a MISSING notice links, as the item has no page."""
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}{SUMMARY_PAGE}#{anchor(path)}"


@dataclass(frozen=True)
class Item:
    path: str  # unique: "owner/repo/path" for heartbeats, "owner/repo/actions/Workflow"
    owner: str
    repo: str  # the repository name (not owner/name), as a pulseox spec has it
    kind: str  # workflow | heartbeat
    link: str | None = None
    report: str = "NOT_REPORTED"
    note: str | None = None
    updated: datetime | None = None
    schedule: timedelta | str | None = None  # a duration or cron strings ("; " between)
    grace: timedelta = timedelta(0)
    tz: str | None = None  # the schedule's zone (a workflow file's: UTC); None: the summary's
    source: str | None = None  # the workflow file whose schedule it is expected by
    implicit: bool = False  # expected by that file's schedule, not by a declaration
    channels: tuple[str, ...] = ()  # an [[expect]]'s channels for its notices

    @property
    def crons(self) -> tuple[str, ...]:
        if not isinstance(self.schedule, str):
            return ()
        return tuple(c.strip() for c in self.schedule.split(CRON_SEPARATOR) if c.strip())

    @property
    def workflow(self) -> str | None:
        """The workflow's name, for an item of a repository's workflow."""
        marker = f"{self.full_repo}/actions/"
        return (
            self.path[len(marker) :]
            if self.kind == "workflow" and self.path.startswith(marker)
            else None
        )

    @property
    def full_repo(self) -> str:
        return f"{self.owner}/{self.repo}"

    @property
    def file(self) -> str:
        """The path within the repository, as a pulseox spec names it."""
        prefix = f"{self.full_repo}/"
        return self.path[len(prefix) :] if self.path.startswith(prefix) else self.path


def due(item: Item, tz: str = "UTC", *, created: datetime | None = None) -> datetime | None:
    """When the item turns MISSING unless it reports again; None if it never does.

    A duration counts from the last report; a cron expects a report by the
    first cron time after the last report (of several crons, the earliest). An
    item that never reported is due from ``created`` (when pulsehook first knew of it).
    """
    if item.schedule is None:
        return None
    since = item.updated or created
    if since is None:
        return None
    if isinstance(item.schedule, timedelta):
        return since + item.schedule + item.grace
    zone = item.tz or tz
    return min(next_due(cron, since, zone) for cron in item.crons) + item.grace


def status(item: Item, now: datetime, deadline: datetime | None) -> str:
    """The item's status at ``now``, given its deadline from ``due()``.

    A scheduled item that never reported is MISSING once its first period
    (counted from when it was declared) plus grace is over — not before.
    """
    if item.report == "BAD":
        return "ERROR"
    if item.schedule is not None and (deadline is None or now > deadline):
        return "MISSING"
    return "OK"


def reported(
    item: Item, report: str, note: str | None, at: datetime, link: str | None = None
) -> Item:
    """The item after a report; unknown report words count as BAD, as pulseox does."""
    word = report.upper() if report.upper() in REPORTS else "BAD"
    if word != report.upper():
        note = f"report {report!r} treated as bad" + (f": {note}" if note else "")
    return replace(item, report=word, note=note, updated=at, link=link or item.link)
