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
from ..store import deliveries, marks, redeliveries, scans
from ..store.db import NORMAL, Readers, SqliteReaders, SqliteWriter, Tx, Writer
from ..store.deliveries import Delivery
from ..store.scans import Memory, Scanned
from ..telemetry import Telemetry
from .api import GitHubClient, GitHubError
from .budget import Share
from .graphs import PASS_SECONDS, GraphRefresher
from .recovery import Outcome, Request
from .redeliver import REDELIVERY_WINDOW, HookRef, RecoveryReport, recover
from .scan import Pace, Progress, ScanReport, scan

log = logging.getLogger(__name__)
# How far back recovery looks at a hook the first time: a day past what GitHub
# redelivers, so what was missed just before is counted as expired.
FIRST_LOOK = REDELIVERY_WINDOW + timedelta(days=1)
OVERLAP = timedelta(hours=1)  # listings start this long before the last look
SKEW = timedelta(minutes=10)  # GitHub's clock and ours may disagree this much
MIN_PAUSE = 1.0  # seconds between rounds, whatever the last one took
RECOVERY = "recovery"  # its marks in the store: when recovery last looked at a hook
RECOVERY_CHECK_SECONDS = 30.0  # how often recovery looks for new hooks, follow-ups, outages
FOLLOW_UP = timedelta(minutes=5)  # hooks with open requests: looked at again this often
OUTAGE_QUIET = timedelta(minutes=1)  # after 5xx answers stop this long: a pass


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


def _mark(hook: HookRef) -> str:
    return f"{RECOVERY}:{hook.deliveries}"


def _since(db: Tx, hooks: list[HookRef], now: datetime) -> dict[HookRef, datetime]:
    """Where each hook's listing starts: a little before its last look (deliveries
    GitHub was still retrying then), or ``FIRST_LOOK`` back for a hook never looked
    at; and early enough to show what came of each open request."""
    since: dict[HookRef, datetime] = {}
    for hook in hooks:
        last = marks.last_run(db, _mark(hook))
        since[hook] = now - FIRST_LOOK if last is None else last - OVERLAP
    for request in redeliveries.open_requests(db):
        hook = HookRef.of(request)
        if hook in since:
            asked = (request.last_asked_at or request.delivered_at) - SKEW
            since[hook] = min(since[hook], asked)
    return since


class RequestLedger:
    """The redelivery requests in the store (``store/redeliveries.py``)."""

    def __init__(self, writer: Writer, now: datetime) -> None:
        self._writer = writer
        self._now = now

    async def open(self) -> list[Request]:
        return await self._writer.run(redeliveries.open_requests, NORMAL)

    async def recall(self, guids: list[str]) -> list[Request]:
        return await self._writer.run(lambda db: redeliveries.recall(db, guids), NORMAL)

    async def known(self, guids: list[str]) -> set[str]:
        return await self._writer.run(lambda db: deliveries.known_guids(db, guids), NORMAL)

    async def save(self, requests: list[Request]) -> None:
        if requests:
            now = self._now
            await self._writer.run(lambda db: redeliveries.save(db, requests, now), NORMAL)


async def recover_missed(
    client: GitHubClient, writer: Writer, now: datetime, hooks: list[HookRef] | None = None
) -> RecoveryReport:
    """A recovery pass over ``hooks`` (all hooks seen when None), remembered in the
    store: each hook's last look, each request, and the pass's figures."""
    if hooks is None:
        hooks = await writer.run(hook_refs, NORMAL)
    since = await writer.run(lambda db: _since(db, hooks, now), NORMAL)
    report = await recover(client, hooks, RequestLedger(writer, now), since=since, now=now)
    figures = report.summary()

    def done(db: Tx) -> None:
        for hook in report.looked:
            marks.mark(db, _mark(hook), now)
        scans.save_state(db, redeliveries.LAST_RECOVERY, figures)

    await writer.run(done, NORMAL)
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
            log_pass(await recover_missed(client, writer, client.clock.now()), "scan")
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


def log_pass(report: RecoveryReport, why: str) -> None:
    """One line per recovery pass, and GitHub's errors after it."""
    note(
        log,
        logging.INFO if not report.errors else logging.WARNING,
        "redelivery pass",
        why=why,
        hooks=len(report.looked),
        listed=report.listed,
        missed=report.missed,
        requested=report.requested,
        recovered=report.recovered,
        failed_again=report.failed,
        refused=report.refused,
        expired=report.expired,
        abandoned=report.abandoned,
        waiting=report.waiting,
        errors=len(report.errors),
    )
    for error in report.errors[:20]:
        log.warning("redelivery: %s", error)


class Backfill:
    """The periodic scan and recovery inside the service.

    Recovery runs beside the scan rounds, not after them: a pass at start, one
    every ``interval``, one within ``recovery_check`` seconds of a hook first
    seen, a follow-up every ``FOLLOW_UP`` for hooks with open requests, and one
    once answers of 5xx (an outage GitHub saw) have stopped for ``OUTAGE_QUIET``.
    """

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
        recovery_check: float = RECOVERY_CHECK_SECONDS,
    ) -> None:
        self._writer = writer
        self._graph_pass = graph_pass
        self._recovery_check = recovery_check
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
        self.last_error: str | None = None
        self.graphs = GraphRefresher(writer, readers, self._clock, submit, pace)
        self._seen: set[HookRef] = set()  # hooks a pass has looked at (or tried to)
        self._looked_at: dict[HookRef, datetime] = {}
        self._full_at: datetime | None = None
        self._refused_at: datetime | None = None

    @property
    def scanning(self) -> bool:
        return bool(self._org or self._repos)

    def refused(self) -> None:
        """A delivery was answered 5xx (``Topic.REFUSED``): GitHub lists it as failed,
        so a pass follows once such answers stop."""
        self._refused_at = self._clock.now()

    async def once(self, client: GitHubClient) -> None:
        """One scan round."""
        if not self.scanning:
            return
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

    async def recovery_pass(
        self, client: GitHubClient, hooks: list[HookRef] | None, why: str
    ) -> RecoveryReport:
        """One recovery pass over ``hooks`` (all when None), counted and logged."""
        now = self._clock.now()
        if hooks is None:
            hooks = await self._writer.run(hook_refs, NORMAL)
            self._full_at = now
        self._seen.update(hooks)
        report = await recover_missed(client, self._writer, now, hooks)
        for hook in report.looked:
            self._looked_at[hook] = now
        for outcome, count in (
            ("requested", report.requested),
            ("refused", report.refused),
            ("failed", report.failed),
            ("recovered", report.recovered),
            ("expired", report.expired),
            ("abandoned", report.abandoned),
        ):
            if count:
                self._telemetry.redeliveries.labels(outcome).inc(count)
        log_pass(report, why)
        return report

    async def _due(self) -> tuple[list[HookRef] | None, str] | None:
        """The pass to run now, if any: its hooks (None: all) and why."""
        now = self._clock.now()
        if self._refused_at is not None and now - self._refused_at >= OUTAGE_QUIET:
            self._refused_at = None
            return None, "outage"
        if self._full_at is None or (now - self._full_at).total_seconds() >= self._interval:
            return None, "interval"
        hooks = await self._writer.run(hook_refs, NORMAL)
        new = [h for h in hooks if h not in self._seen]
        if new:
            return new, "new hook"
        waiting = await self._writer.run(redeliveries.open_requests, NORMAL)
        known = set(hooks)
        due = []
        for request in waiting:
            hook = HookRef.of(request)
            if hook not in known:
                continue
            if request.outcome is Outcome.FAILED:
                # Its next request is due: nothing to learn before that.
                if request.next_ask_at is None or now >= request.next_ask_at:
                    due.append(hook)
            elif (looked := self._looked_at.get(hook)) is None or now - looked >= FOLLOW_UP:
                due.append(hook)  # asked: has GitHub attempted it, and how did it go?
        return (list(dict.fromkeys(due)), "follow-up") if due else None

    async def recover_soon(self, client: GitHubClient) -> None:
        """Recovery passes: at start, then whenever ``_due`` says."""
        first = True
        while True:
            try:
                if first:
                    first = False
                    await self.recovery_pass(client, None, "start")
                elif (due := await self._due()) is not None:
                    await self.recovery_pass(client, *due)
            except GitHubError as exc:
                log.warning("redelivery pass failed: %s", exc)
            except Exception:  # never take the service down; try again next check
                log.exception("redelivery pass failed unexpectedly")
            await asyncio.sleep(self._recovery_check)

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
            beside = [
                asyncio.create_task(self.refresh_graphs(client)),
                asyncio.create_task(self.recover_soon(client)),
            ]
            try:
                if self.scanning:
                    await self._rounds(client)
                else:
                    await asyncio.gather(*beside)
            finally:
                for task in beside:
                    task.cancel()
                for task in beside:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _rounds(self, client: GitHubClient) -> None:
        while True:
            started = self._clock.now()
            try:
                await self.once(client)
                self.last_error = None
            except GitHubError as exc:
                self.last_error = str(exc)
                log.warning("GitHub scan failed: %s", exc)
            except Exception as exc:  # never take the service down; try again later
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("GitHub scan failed unexpectedly")
            # Rounds start on schedule: a round takes at most 90% of the interval.
            took = (self._clock.now() - started).total_seconds()
            await self._sleep(max(MIN_PAUSE, self._interval - took))
