"""Backfill and recovery wired to the store: scans feed the same intake as webhooks.

- ``scan_round``: one scan from the command line (in the runtime, which then
  processes what it stored, rules included) or Python (``run_scan``).
- ``Backfill``: inside the service, a scan round every ``PULSE_SCAN_INTERVAL``
  seconds (when an organisation or repositories are configured) and, at start
  and after each round, asking GitHub to redeliver what never reached us.
- ``GraphRefresher`` (``github/graphs.py``), inside ``Backfill``: dependency
  graphs read again soon after a push changed a manifest.
- ``StoreLedger``: the scan's memory in the store, read beside the writer and
  written in one short writer turn per repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from ..clock import Clock, SystemClock, iso
from ..logs import note
from ..store import deliveries, marks, scans
from ..store.db import NORMAL, Readers, SqliteReaders, SqliteWriter, Tx, Writer
from ..store.deliveries import Delivery
from ..store.scans import Memory, Scanned
from ..telemetry import Telemetry
from .api import GitHubClient, GitHubError
from .budget import Share
from .graphs import PASS_SECONDS, GraphRefresher
from .redeliver import HookRef, RecoveryReport, recover
from .scan import Pace, Progress, ScanReport, scan

log = logging.getLogger(__name__)
FIRST_LOOK = timedelta(days=3)  # how far back recovery looks the first time
MIN_PAUSE = 1.0  # seconds between rounds, whatever the last one took
RECOVERY = "recovery"  # its mark in the store: when recovery last looked


class StoreLedger:
    """The scan's ledger in the store (``store/scans.py``)."""

    def __init__(self, writer: Writer, readers: Readers) -> None:
        self._writer = writer
        self._readers = readers

    async def scanned(self) -> Mapping[int, Scanned]:
        return await self._readers.run(scans.ledger)

    async def memory(self, repo_id: int) -> Memory:
        return await self._readers.run(lambda db: scans.memory(db, repo_id))

    async def record(self, done: Scanned, memory: Memory, share: Share) -> None:
        saved = share.dump()

        def write(db: Tx) -> None:
            scans.record(db, done, memory)
            scans.save_state(db, scans.SHARE, saved)

        await self._writer.run(write, NORMAL)

    async def share(self) -> Any:
        return await self._readers.run(lambda db: scans.state(db, scans.SHARE))

    async def keep(self, share: Share) -> None:
        saved = share.dump()
        await self._writer.run(lambda db: scans.save_state(db, scans.SHARE, saved), NORMAL)

    async def report(self, report: ScanReport, at: datetime) -> None:
        figures = {"at": iso(at), **report.summary()}
        await self._writer.run(lambda db: scans.save_state(db, scans.LAST_ROUND, figures), NORMAL)


def hook_refs(db: Tx) -> list[HookRef]:
    """The hooks pulsehook has seen, with where they live (GitHub App hooks excluded:
    their deliveries are listed with the app's JWT, not a token)."""
    refs = []
    for row in deliveries.hooks(db):
        target = (row["target"] or "").lower()
        if target == "repository" and row["repo"] and "/" in row["repo"]:
            owner, _, name = row["repo"].partition("/")
            refs.append(HookRef(hook_id=row["hook_id"], owner=owner, repo=name))
        elif target == "organization" and row["org"]:
            refs.append(HookRef(hook_id=row["hook_id"], owner=row["org"]))
    return refs


def _since(db: Tx, now: datetime) -> datetime:
    last = marks.last_run(db, RECOVERY)
    if last is None:
        return now - FIRST_LOOK
    # A little overlap: deliveries GitHub was still retrying at the last look.
    return last - timedelta(hours=1)


async def recover_missed(
    client: GitHubClient, writer: Writer, now: datetime
) -> RecoveryReport | None:
    hooks = await writer.run(hook_refs, NORMAL)
    if not hooks:
        return None
    since = await writer.run(lambda db: _since(db, now), NORMAL)

    async def known(guids: list[str]) -> set[str]:
        return await writer.run(lambda db: deliveries.known_guids(db, guids), NORMAL)

    report = await recover(client, hooks, known, since=since, now=now)
    await writer.run(lambda db: marks.mark(db, RECOVERY, now), NORMAL)
    return report


async def scan_round(
    writer: Writer,
    readers: Readers,
    *,
    org: str | None,
    repos: list[str] | None,
    token: str | None,
    api_url: str,
    pace: Pace,
    clock: Clock | None = None,
    progress: Progress | None = None,
) -> ScanReport:
    """One scan round into the store, then a recovery pass; what it stored waits for
    processing like any delivery."""
    ledger = StoreLedger(writer, readers)

    async def sink(batch: list[Delivery]) -> None:
        await writer.run(partial(deliveries.insert_batch, batch=batch), NORMAL)

    async with GitHubClient(base_url=api_url, token=token, clock=clock) as client:
        report = await scan(
            client,
            org=org,
            repos=repos,
            ledger=ledger,
            sink=sink,
            pace=pace,
            **({"progress": progress} if progress else {}),
        )
        await ledger.report(report, client.clock.now())
        with contextlib.suppress(GitHubError):
            recovered = await recover_missed(client, writer, client.clock.now())
            if recovered is not None and recovered.redelivered:
                log.info("asked GitHub to redeliver %d missed deliveries", recovered.redelivered)
    return report


def run_scan(
    path: Path,
    *,
    org: str | None,
    repos: list[str] | None,
    token: str | None,
    api_url: str,
    pace: Pace,
    clock: Clock | None = None,
) -> ScanReport:
    """One round into the database at ``path``, stored and left for processing (for
    ``EcosystemMonitor.scan``; ``pulsehook scan`` runs ``scan_round`` in the runtime)."""

    async def go() -> ScanReport:
        writer, readers = SqliteWriter(path), SqliteReaders(path)
        try:
            return await scan_round(
                writer, readers, org=org, repos=repos, token=token, api_url=api_url,
                pace=pace, clock=clock,
            )  # fmt: skip
        finally:
            writer.close()
            readers.close()

    return asyncio.run(go())


class Backfill:
    """The periodic scan and recovery inside the service."""

    def __init__(
        self,
        writer: Writer,
        readers: Readers,
        clock: Clock | None,
        *,
        token: str | None,
        api_url: str,
        org: str | None,
        repos: list[str],
        interval: float,
        pace: Pace,
        submit: Callable[[list[Delivery]], Awaitable[None]],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        telemetry: Telemetry | None = None,
        graph_pass: float = PASS_SECONDS,
    ) -> None:
        self._writer = writer
        self._graph_pass = graph_pass
        self._telemetry = telemetry or Telemetry()
        self.ledger = StoreLedger(writer, readers)
        self._clock = clock or SystemClock()
        self._token = token
        self._api_url = api_url
        self._org = org
        self._repos = repos
        self._interval = interval
        self._pace = pace
        self._submit = submit
        self._sleep = sleep
        self.last_scan: ScanReport | None = None
        self.last_recovery: RecoveryReport | None = None
        self.last_error: str | None = None
        self.graphs = GraphRefresher(writer, readers, self._clock, submit)

    @property
    def scanning(self) -> bool:
        return bool(self._org or self._repos)

    async def once(self, client: GitHubClient) -> None:
        if self.scanning:
            report = await scan(
                client,
                org=self._org,
                repos=self._repos or None,
                ledger=self.ledger,
                sink=self._submit,
                pace=self._pace,
            )
            self.last_scan = report
            await self.ledger.report(report, self._clock.now())
            behind: dict[str, Any] = {f"behind_{why}": n for why, n in report.behind.items()}
            note(
                log,
                logging.INFO if not report.errors else logging.WARNING,
                "scan round",
                scanned=len(report.repos),
                listed=report.listed,
                findings=report.deliveries,
                errors=len(report.errors),
                backlog=report.backlog,
                **behind,
                rate_limit_spent=report.spent,
                rate_limit_share=report.allowed,
                stopped=report.stopped,
            )
            for error in report.errors[:20]:
                log.warning("scan: %s", error)
        recovery = await recover_missed(client, self._writer, self._clock.now())
        self.last_recovery = recovery
        if recovery is not None:
            for outcome, count in (
                ("requested", recovery.redelivered),
                ("refused", recovery.failed),
                ("expired", recovery.expired),
            ):
                if count:
                    self._telemetry.redeliveries.labels(outcome).inc(count)
            note(
                log,
                logging.INFO if not recovery.errors else logging.WARNING,
                "redelivery round",
                listed=recovery.listed,
                missed=recovery.missed,
                requested=recovery.redelivered,
                refused=recovery.failed,
                expired=recovery.expired,
                errors=len(recovery.errors),
            )
            for error in recovery.errors[:20]:
                log.warning("redelivery: %s", error)

    async def refresh_graphs(self, client: GitHubClient) -> None:
        """Every ``graph_pass`` seconds, the dependency graphs pushes asked for."""
        while True:
            await asyncio.sleep(self._graph_pass)
            try:
                await self.graphs.once(client)
            except GitHubError as exc:
                log.warning("dependency graph refresh failed: %s", exc)
            except Exception:  # never take the service down; try again next pass
                log.exception("dependency graph refresh failed unexpectedly")

    async def run(self) -> None:
        async with GitHubClient(
            base_url=self._api_url, token=self._token, clock=self._clock, sleep=self._sleep
        ) as client:
            refresher = asyncio.create_task(self.refresh_graphs(client))
            try:
                await self._rounds(client)
            finally:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher

    async def _rounds(self, client: GitHubClient) -> None:
        while True:
            started = self._clock.now()
            try:
                await self.once(client)
                self.last_error = None
            except GitHubError as exc:
                self.last_error = str(exc)
                log.warning("GitHub scan/recovery failed: %s", exc)
            except Exception as exc:  # never take the service down; try again later
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("GitHub scan/recovery failed unexpectedly")
            # Rounds start on schedule: a round takes at most 90% of the interval.
            took = (self._clock.now() - started).total_seconds()
            await self._sleep(max(MIN_PAUSE, self._interval - took))
