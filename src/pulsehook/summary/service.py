"""Regenerating the summary: after changes (debounced) and at each deadline.

``regenerate`` runs on the writer: it computes every item's status, records
transitions (each one a ``spec`` fact for the rules, evaluated in the same
transaction) and stores the texts. The Summarizer then writes the files
atomically and offers them to the publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlite_utils import Database

from ..alerts import engine
from ..clock import Clock, iso
from ..facts import Fact, Spec
from ..rules.evaluate import Evaluator
from ..rules.model import RuleSet
from ..store.db import NORMAL, Writer
from . import items
from .model import status
from .render import Change, Snapshot, dashboard_json, text

log = logging.getLogger(__name__)
KEEP = 50  # summaries kept in the database
FILES = ("summary.md", "summary.org", "summary.md.json")


@dataclass(frozen=True)
class Generated:
    md: str
    org: str
    json: str
    changes: int
    queued: int  # notices queued by spec facts


@dataclass(frozen=True)
class Target:
    owner: str
    repo: str
    tz: str


def regenerate(
    db: Database,
    rules: RuleSet,
    *,
    now: datetime,
    target: Target,
    evaluator: Evaluator,
    policy: engine.Policy,
) -> Generated:
    at = iso(now)
    snapshot_items = []
    changes: list[Change] = []
    facts: list[Fact] = []
    for item, row in items.load_all(db):
        deadline = (
            datetime.fromisoformat(row["due_at"].replace("Z", "+00:00")) if row["due_at"] else None
        )
        current = status(item, now, deadline)
        snapshot_items.append((item, current))
        previous = row["status"]
        if current != previous:
            changes.append(Change(item, previous, current))
            db.execute(
                "UPDATE summary_items SET status = ?, status_since = ? WHERE path = ?",
                (current, at, item.path),
            )
            facts.append(
                Spec(
                    path=item.path,
                    status=current,
                    previous=previous,
                    note=item.note,
                    repo=item.full_repo,
                    url=item.link,
                    at=at,
                )
            )
    queued = engine.evaluate(db, rules, facts, now=now, evaluator=evaluator, policy=policy)
    snapshot = Snapshot(items=snapshot_items, changes=changes, generated=now)
    last = next(db.query("SELECT json FROM summaries ORDER BY id DESC LIMIT 1"), None)
    previous_model = json.loads(last["json"])["summary"] if last else None
    generated = Generated(
        md=text(snapshot, mode="md", tz=target.tz),
        org=text(snapshot, mode="org", tz=target.tz),
        json=dashboard_json(
            snapshot, previous_model, owner=target.owner, repo=target.repo, tz=target.tz
        ),
        changes=len(changes),
        queued=queued,
    )
    db.execute(
        "INSERT INTO summaries (generated_at, md, org, json, changes) VALUES (?, ?, ?, ?, ?)",
        (at, generated.md, generated.org, generated.json, generated.changes),
    )
    db.execute("DELETE FROM summaries WHERE id <= (SELECT max(id) FROM summaries) - ?", (KEEP,))
    return generated


def preview(db: Database, *, now: datetime, target: Target, mode: str = "md") -> str:
    """The summary as it stands now, without recording anything (for the CLI)."""
    snapshot_items = []
    changes: list[Change] = []
    for item, row in items.load_all(db):
        deadline = (
            datetime.fromisoformat(row["due_at"].replace("Z", "+00:00")) if row["due_at"] else None
        )
        current = status(item, now, deadline)
        snapshot_items.append((item, current))
        if current != row["status"]:
            changes.append(Change(item, row["status"], current))
    snapshot = Snapshot(items=snapshot_items, changes=changes, generated=now)
    if mode == "json":
        last = next(db.query("SELECT json FROM summaries ORDER BY id DESC LIMIT 1"), None)
        previous = json.loads(last["json"])["summary"] if last else None
        return dashboard_json(
            snapshot, previous, owner=target.owner, repo=target.repo, tz=target.tz
        )
    return text(snapshot, mode=mode, tz=target.tz)


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
        on_summary: Callable[[dict[str, str]], None] = lambda files: None,
        debounce: float = 0.25,
    ) -> None:
        self._writer = writer
        self._rules = rules
        self._clock = clock
        self._dir = data_dir
        self._target = target
        self._policy = policy
        self._evaluator = Evaluator()
        self._on_notices = on_notices
        self._on_summary = on_summary
        self._debounce = debounce
        self._wake = asyncio.Event()
        self.regenerations = 0

    def changed(self) -> None:
        self._wake.set()

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
        generated = await self._writer.run(
            lambda db: regenerate(
                db,
                self._rules,
                now=now,
                target=self._target,
                evaluator=self._evaluator,
                policy=self._policy,
            ),
            NORMAL,
        )
        self.regenerations += 1
        files = dict(zip(FILES, (generated.md, generated.org, generated.json), strict=True))
        for name, content in files.items():
            await asyncio.to_thread(write_atomically, self._dir / name, content)
        if generated.queued:
            self._on_notices()
        self._on_summary(files)
        return generated

    async def seconds_to_deadline(self) -> float:
        now = self._clock.now()
        deadline = await self._writer.run(lambda db: items.next_deadline(db, now), NORMAL)
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
                await asyncio.wait_for(self._wake.wait(), wait)
            if self._wake.is_set():
                # Debounce: let a burst of changes land before regenerating once.
                await asyncio.sleep(self._debounce)
            self._wake.clear()
