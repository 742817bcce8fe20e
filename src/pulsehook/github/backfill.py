"""Backfill and recovery wired to the store: scans feed the same intake as webhooks.

- ``run_scan``: one scan from the command line or Python; what it finds is
  stored and processed (rules included) in the same database.
- ``Backfill``: inside the service, a scan every ``PULSE_SCAN_INTERVAL``
  seconds (when an organisation or repositories are configured) and, at start
  and after each scan, asking GitHub to redeliver what never reached us.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ..clock import Clock, SystemClock, iso, parse_iso
from ..store import deliveries
from ..store.db import NORMAL, Writer
from ..store.deliveries import Delivery
from .api import GitHubClient, GitHubError
from .redeliver import HookRef, RecoveryReport, recover
from .scan import Progress, ScanReport, scan

log = logging.getLogger(__name__)
FIRST_LOOK = timedelta(days=3)  # how far back recovery looks the first time


def hook_refs(db: Database) -> list[HookRef]:
    """The hooks pulsehook has seen, with where they live (GitHub App hooks excluded:
    their deliveries are listed with the app's JWT, not a token)."""
    refs = []
    for row in db.query("SELECT hook_id, target, repo, org FROM hooks"):
        target = (row["target"] or "").lower()
        if target == "repository" and row["repo"] and "/" in row["repo"]:
            owner, _, name = row["repo"].partition("/")
            refs.append(HookRef(hook_id=row["hook_id"], owner=owner, repo=name))
        elif target == "organization" and row["org"]:
            refs.append(HookRef(hook_id=row["hook_id"], owner=row["org"]))
    return refs


def known_guids(db: Database, guids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(guids), 500):
        chunk = guids[start : start + 500]
        marks = ",".join("?" for _ in chunk)
        found |= {
            r["guid"]
            for r in db.query(f"SELECT guid FROM deliveries WHERE guid IN ({marks})", chunk)
        }
    return found


def _since(db: Database, now: datetime) -> datetime:
    row = next(db.query("SELECT last_run_at FROM schedule_marks WHERE name = 'recovery'"), None)
    if row is None:
        return now - FIRST_LOOK
    # A little overlap: deliveries GitHub was still retrying at the last look.
    return parse_iso(row["last_run_at"]) - timedelta(hours=1)


def _mark(db: Database, now: datetime) -> None:
    db.execute(
        "INSERT OR REPLACE INTO schedule_marks (name, last_run_at) VALUES ('recovery', ?)",
        (iso(now),),
    )


async def recover_missed(
    client: GitHubClient, writer: Writer, now: datetime
) -> RecoveryReport | None:
    hooks = await writer.run(hook_refs, NORMAL)
    if not hooks:
        return None
    since = await writer.run(lambda db: _since(db, now), NORMAL)

    async def known(guids: list[str]) -> set[str]:
        return await writer.run(lambda db: known_guids(db, guids), NORMAL)

    report = await recover(client, hooks, known, since=since, now=now)
    await writer.run(lambda db: _mark(db, now), NORMAL)
    return report


def run_scan(
    path: Path,
    *,
    org: str | None,
    repos: list[str] | None,
    token: str | None,
    api_url: str,
    now: datetime,
    progress: Progress | None = None,
    process: Callable[[Writer], Awaitable[Any]] | None = None,
) -> ScanReport:
    """Scan into the database at ``path``; ``process`` then handles what was stored."""

    async def go() -> ScanReport:
        writer = Writer(path)
        try:

            async def sink(batch: list[Delivery]) -> None:
                await writer.run(partial(deliveries.insert_batch, batch=batch), NORMAL)

            async with GitHubClient(base_url=api_url, token=token) as client:
                report = await scan(
                    client,
                    org=org,
                    repos=repos,
                    now=now,
                    sink=sink,
                    **({"progress": progress} if progress else {}),
                )
                with contextlib.suppress(GitHubError):
                    recovered = await recover_missed(client, writer, now)
                    if recovered is not None and recovered.redelivered:
                        log.info(
                            "asked GitHub to redeliver %d missed deliveries", recovered.redelivered
                        )
            if process is not None:
                await process(writer)
            return report
        finally:
            writer.close()

    return asyncio.run(go())


class Backfill:
    """The periodic scan and recovery inside the service."""

    def __init__(
        self,
        writer: Writer,
        clock: Clock | None,
        *,
        token: str | None,
        api_url: str,
        org: str | None,
        repos: list[str],
        interval: float,
        submit: Callable[[list[Delivery]], Awaitable[None]],
    ) -> None:
        self._writer = writer
        self._clock = clock or SystemClock()
        self._token = token
        self._api_url = api_url
        self._org = org
        self._repos = repos
        self._interval = interval
        self._submit = submit
        self.last_scan: ScanReport | None = None
        self.last_recovery: RecoveryReport | None = None
        self.last_error: str | None = None

    @property
    def scanning(self) -> bool:
        return bool(self._org or self._repos)

    async def once(self, client: GitHubClient) -> None:
        now = self._clock.now()
        if self.scanning:
            self.last_scan = await scan(
                client, org=self._org, repos=self._repos or None, now=now, sink=self._submit
            )
            log.info(
                "scan: %d repositories, %d findings, %d errors",
                len(self.last_scan.repos),
                self.last_scan.deliveries,
                len(self.last_scan.errors),
            )
        self.last_recovery = await recover_missed(client, self._writer, now)

    async def run(self) -> None:
        async with GitHubClient(
            base_url=self._api_url, token=self._token, clock=self._clock
        ) as client:
            while True:
                try:
                    await self.once(client)
                    self.last_error = None
                except GitHubError as exc:
                    self.last_error = str(exc)
                    log.warning("GitHub scan/recovery failed: %s", exc)
                except Exception as exc:  # never take the service down; try again later
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("GitHub scan/recovery failed unexpectedly")
                await asyncio.sleep(self._interval)
