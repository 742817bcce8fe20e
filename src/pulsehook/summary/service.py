"""Regenerating the summary: after changes (debounced) and at each deadline.

``regenerate`` runs on the writer: it computes every item's status, records
transitions (each one a ``spec`` fact for the rules, evaluated in the same
transaction) and renders the texts. The Summarizer keeps the latest in memory
(served over HTTP) and nothing older, writes the files atomically and offers them
to the publisher. The files carry the previous summary across restarts.

The per-item caches (parsed rows, rendered lines, spec documents: items.py and
render.py) are keyed by an item's whole value, so every version of an item, note
included, is an entry of its own until the cache's 65,536 are full. After each
regeneration the Summarizer empties any that holds more than ``VERSIONS`` times
what the current summary needs (``CACHE_FLOOR`` at least): a cache then keeps
about the current version of each item and the one before, and the next
regeneration rebuilds the rest once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..alerts import engine
from ..clock import Clock, iso, parse_iso_or_none
from ..facts import Fact, Spec
from ..rules.evaluate import Evaluator
from ..rules.model import RuleSet
from ..store import summary as store
from ..store.db import NORMAL, Readers, Tx, Writer
from . import items, render
from .model import Item, status, summary_link
from .render import Change, Snapshot, dashboard_json, text

log = logging.getLogger(__name__)

# While changes keep coming, wait this many times the last regeneration's length
# between regenerations: they take at most a twentieth of the time.
SHARE = 19.0
FILES = ("summary.md", "summary.org", "summary.md.json")

# Cached entries per item a summary needs at most (its markdown and org lines).
ENTRIES_PER_ITEM = 2
VERSIONS = 2  # a cache past this many times what the summary needs is emptied
CACHE_FLOOR = 256  # ... or past this, for a small summary: emptying is not free
CACHES: dict[str, functools._lru_cache_wrapper[Any]] = {
    "items": items.cached_item,
    "entries": render.entry,
    "specs": render.spec,
    "spec_json": render.spec_json,
    "times": render.fmt_time,
}


def cache_limit(count: int) -> int:
    """The most entries a per-item cache keeps after a summary of ``count`` items."""
    return VERSIONS * ENTRIES_PER_ITEM * count + CACHE_FLOOR


def bound_caches(count: int) -> list[str]:
    """Empty the per-item caches past ``cache_limit(count)``; their names."""
    limit = cache_limit(count)
    emptied = [name for name, cache in CACHES.items() if cache.cache_info().currsize > limit]
    for name in emptied:
        CACHES[name].cache_clear()
    return emptied


@dataclass(frozen=True)
class Generated:
    md: str
    org: str
    json: str
    summary_part: str  # the "summary" of the JSON: the next one's previous_summary
    changes: int
    queued: int  # notices queued or held by spec facts: the senders must look
    items: int = 0  # how many the summary lists

    def files(self) -> dict[str, str]:
        return dict(zip(FILES, (self.md, self.org, self.json), strict=True))


@dataclass(frozen=True)
class Target:
    owner: str
    repo: str
    tz: str
    public_url: str | None = None  # the dashboard's address: MISSING notices link there


def snapshot_of(db: Tx, now: datetime) -> tuple[list[tuple[Item, str]], list[Change]]:
    """Every item's status now, and which differ from the last summary."""
    current: list[tuple[Item, str]] = []
    changes: list[Change] = []
    for row in store.all_items(db):
        item = items.from_row(row)
        state = status(item, now, parse_iso_or_none(row["due_at"]))
        current.append((item, state))
        if state != row["status"]:
            changes.append(Change(item, row["status"], state))
    return current, changes


def record(
    db: Tx,
    rules: RuleSet,
    changes: list[Change],
    *,
    now: datetime,
    evaluator: Evaluator,
    policy: engine.Policy,
    public_url: str | None = None,
) -> tuple[list[Change], int]:
    """Store the status changes a snapshot found, and tell the rules: (the changes
    stored, notices queued or held). Compare-and-set: a change whose item moved
    meanwhile (the snapshot was read outside this transaction) is left to the
    next regeneration."""
    at = iso(now)
    applied: list[Change] = []
    facts: list[Fact] = []
    for c in changes:
        if not store.set_status(db, c.item.path, previous=c.previous, current=c.current, at=now):
            continue
        applied.append(c)
        facts.append(
            Spec(
                path=c.item.path,
                status=c.current,
                previous=c.previous,
                note=c.item.note,
                repo=c.item.full_repo,
                # A MISSING item has no run to show (that is the news): its notice
                # links the item's row of the Summary page, when the dashboard has an address.
                url=(summary_link(public_url, c.item.path) if c.current == "MISSING" else None)
                or c.item.link,
                at=at,
                implicit=c.item.implicit,
                workflow=c.item.workflow,
                source=c.item.source,
                channels=c.item.channels,
            )
        )
    if not facts:
        return applied, 0
    outcome = engine.evaluate(db, rules, facts, now=now, evaluator=evaluator, policy=policy)
    # Held notices need the scheduler as queued ones need the dispatcher: both are woken.
    return applied, outcome.queued + outcome.held


def compose(
    current: list[tuple[Item, str]],
    changes: list[Change],
    *,
    now: datetime,
    target: Target,
    queued: int = 0,
    previous: str | None = None,
) -> Generated:
    """The summary files of a snapshot (pure)."""
    snapshot = Snapshot(items=current, changes=changes, generated=now)
    md = text(snapshot, mode="md", tz=target.tz)
    document, summary_part = dashboard_json(
        snapshot, previous, owner=target.owner, repo=target.repo, tz=target.tz, body=md
    )
    return Generated(
        md=md,
        org=text(snapshot, mode="org", tz=target.tz),
        json=document,
        summary_part=summary_part,
        changes=len(changes),
        queued=queued,
        items=len(current),
    )


def regenerate(
    db: Tx,
    rules: RuleSet,
    *,
    now: datetime,
    target: Target,
    evaluator: Evaluator,
    policy: engine.Policy,
    previous: str | None = None,
) -> Generated:
    """Snapshot, record and render in one transaction (the CLI, tests)."""
    current, changes = snapshot_of(db, now)
    applied, queued = record(
        db,
        rules,
        changes,
        now=now,
        evaluator=evaluator,
        policy=policy,
        public_url=target.public_url,
    )
    return compose(current, applied, now=now, target=target, queued=queued, previous=previous)


def preview(
    db: Tx, *, now: datetime, target: Target, mode: str = "md", previous: str | None = None
) -> str:
    """The summary as it stands now, without recording anything (for the CLI)."""
    current, changes = snapshot_of(db, now)
    snapshot = Snapshot(items=current, changes=changes, generated=now)
    if mode == "json":
        return dashboard_json(
            snapshot, previous, owner=target.owner, repo=target.repo, tz=target.tz
        )[0]
    return text(snapshot, mode=mode, tz=target.tz)


def previous_summary(data_dir: Path) -> str | None:
    """The ``summary`` part of the summary.md.json on disk, if there is a valid one."""
    try:
        document = json.loads((data_dir / "summary.md.json").read_text(encoding="utf-8"))
        return json.dumps(document["summary"], separators=(",", ":"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_atomically(path: Path, content: str) -> None:
    """Readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class Summarizer:
    def __init__(
        self,
        writer: Writer,
        rules: RuleSet,
        clock: Clock,
        *,
        data_dir: Path,
        target: Target,
        policy: engine.Policy,
        on_notices: Callable[[], None],
        on_summary: Callable[[dict[str, str]], None] = lambda _files: None,
        debounce: float = 0.25,
        readers: Readers | None = None,
    ) -> None:
        self._writer = writer
        self._readers = readers
        self._rules = rules
        self._clock = clock
        self._dir = data_dir
        self._target = target
        self.target = target
        self._policy = policy
        self._evaluator = Evaluator()
        self._on_notices = on_notices
        self._on_summary = on_summary
        self._debounce = debounce
        self._wake = asyncio.Event()
        self.latest: Generated | None = None
        self.regenerations = 0
        self.last_seconds = 0.0  # how long the last regeneration took
        self.caches_emptied = 0  # times a per-item cache outgrew its bound

    def changed(self) -> None:
        self._wake.set()

    def cache_entries(self) -> dict[str, int]:
        """How many entries each per-item cache holds now."""
        return {name: cache.cache_info().currsize for name, cache in CACHES.items()}

    def cache_limit(self) -> int:
        """The most any per-item cache keeps after the latest summary."""
        return cache_limit(self.latest.items if self.latest else 0)

    async def setup(self) -> None:
        now = self._clock.now()
        await self._writer.run(
            lambda db: items.sync_expectations(
                db, self._rules.expectations, now=now, tz=self._target.tz
            ),
            NORMAL,
        )

    async def regenerate(self) -> Generated:
        now = self._clock.now()
        previous = (
            self.latest.summary_part
            if self.latest
            else await asyncio.to_thread(previous_summary, self._dir)
        )
        started = time.perf_counter()
        # Only the changes take a writer turn: reading every item and rendering
        # the files (hundreds of milliseconds at 10,000 items) happen beside it.
        if self._readers is not None:
            current, changes = await self._readers.run(lambda db: snapshot_of(db, now))
        else:
            current, changes = await self._writer.run(lambda db: snapshot_of(db, now), NORMAL)
        queued = 0
        if changes:
            changes, queued = await self._writer.run(
                lambda db: record(
                    db,
                    self._rules,
                    changes,
                    now=now,
                    evaluator=self._evaluator,
                    policy=self._policy,
                    public_url=self._target.public_url,
                ),
                NORMAL,
            )
        generated = await asyncio.to_thread(
            compose,
            current,
            changes,
            now=now,
            target=self._target,
            queued=queued,
            previous=previous,
        )
        self.latest = generated
        self.regenerations += 1
        self.last_seconds = time.perf_counter() - started
        self.caches_emptied += len(bound_caches(generated.items))
        for name, content in generated.files().items():
            await asyncio.to_thread(write_atomically, self._dir / name, content)
        if generated.queued:
            self._on_notices()
        self._on_summary(generated.files())
        return generated

    async def seconds_to_deadline(self) -> float:
        now = self._clock.now()
        deadline = await self._writer.run(lambda db: store.next_due(db, now), NORMAL)
        if deadline is None:
            return 3600.0
        # A moment past the deadline, so the item is strictly late when looked at.
        return max(0.05, min(3600.0, (deadline - now).total_seconds() + 0.05))

    async def run(self) -> None:
        await self.setup()
        while True:
            try:
                await self.regenerate()
                wait = await self.seconds_to_deadline()
            except Exception:
                log.exception("summary regeneration failed; retrying shortly")
                wait = 5.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):  # not wait_for: see dispatch.py
                    await self._wake.wait()
            if self._wake.is_set():
                # Debounce: let a burst of changes land before regenerating once —
                # and, while changes keep coming, spend at most a twentieth of the
                # time regenerating (a large summary takes tens of milliseconds).
                await asyncio.sleep(max(self._debounce, SHARE * self.last_seconds))
            self._wake.clear()
