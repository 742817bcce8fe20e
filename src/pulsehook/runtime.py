"""``Runtime``: the one place that builds pulsehook's parts and wires them together.

The server, ``pulsehook worker`` and every command that touches the store build
a Runtime from the settings and the rules. What each of them runs is a choice
of background loops (``start(loops)``), never a second copy of the wiring, so a
retry policy, a timezone or a wake-up cannot be set in one place and forgotten
in another.

Wake-ups go through ``events``: a part announces what it committed, the parts
that act on it subscribe. Results travel as return values and wake-ups, not as
counters on a shared object.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Collection, Coroutine
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from .alerts.dispatch import Dispatcher, RetryPolicy
from .alerts.engine import Policy
from .clock import Clock, SystemClock, iso
from .errors import ConfigError
from .events import Events, Topic
from .github.backfill import Backfill
from .github.scan import DEFAULT_SHARE, Pace
from .ingest import (
    CHUNK_SECONDS,
    CHUNK_SECONDS_POSTGRES,
    Alerting,
    Worker,
    clear_derived,
    process_chunk,
)
from .instance import Alive, Instance
from .intake import Intake
from .rules.load import load_rules
from .rules.model import RuleSet
from .schedule.runner import Scheduler
from .settings import Settings
from .store import deliveries
from .store.db import Readers, SqliteReaders, SqliteWriter, Tx, Writer
from .store.deliveries import Delivery
from .store.postgres import PostgresReaders, PostgresWriter
from .store.replicas import Listener, Presence
from .summary.publish import Publisher
from .summary.publish import Target as PublishTarget
from .summary.service import Summarizer
from .summary.service import Target as SummaryTarget
from .telemetry import Telemetry

log = logging.getLogger(__name__)
T = TypeVar("T")

# Every background loop, in the order they start. ``serve`` runs them all (unless
# --no-worker), ``pulsehook worker`` too; one-off commands run none and call parts.
LOOPS = ("worker", "dispatcher", "scheduler", "summary", "publisher", "backfill")
# What one replica does for all: held notices, digests, rescoring and deadlines, the
# summary and its publishing, the scan and redelivery recovery.
SINGLETONS = ("scheduler", "summary", "publisher", "backfill")
LEAD_SECONDS = 1.0  # how often a replica tries for the lead, and the leader checks it holds it
RECOVER_SECONDS = 2.0  # replicas: how often a dead replica's leases are looked for
REPLAY_CHUNK = 500  # deliveries per replay transaction
ROUND_SHARE_OF_INTERVAL = 0.9  # of PULSE_SCAN_INTERVAL a scan round may take


def load_rule_set(settings: Settings) -> RuleSet:
    """The rule set, or RulesInvalid; a missing default directory means no rules."""
    if not settings.rules_dir.exists():
        log.warning("rules directory %s does not exist: no alert rules", settings.rules_dir)
        return RuleSet()
    return load_rules(settings.rules_dir, os.environ)


def publish_target(settings: Settings) -> PublishTarget | None:
    """Where to publish the summary, or None; ConfigError if half configured."""
    if not settings.publish_repo:
        return None
    owner, _, repo = settings.publish_repo.partition("/")
    if not owner or not repo:
        raise ConfigError("PULSEHOOK_PUBLISH_REPO must be 'owner/repo'")
    if settings.github_token is None:
        raise ConfigError("publishing the summary needs GITHUB_TOKEN")
    return PublishTarget(
        api_url=settings.github_api_url,
        owner=owner,
        repo=repo,
        directory=settings.publish_directory,
        branch=settings.publish_branch,
        token=settings.github_token.get_secret_value(),
        min_interval=timedelta(seconds=settings.publish_interval_seconds),
    )


def scan_pace(settings: Settings) -> Pace:
    """A round ends in time for the next one to start on schedule."""
    return Pace(
        share=DEFAULT_SHARE if settings.scan_share is None else settings.scan_share,
        cycle=timedelta(hours=settings.scan_cycle_hours),
        seconds=ROUND_SHARE_OF_INTERVAL * settings.scan_interval,
        schedule_grace=timedelta(seconds=settings.schedule_grace_seconds),
        inactivity_warning_days=settings.inactivity_warning_days,
    )


def published(files: dict[str, str]) -> dict[str, str]:
    """What goes to GitHub: the pair pulseox itself writes (text and JSON)."""
    return {name: files[name] for name in ("summary.md", "summary.md.json")}


def open_store(settings: Settings) -> tuple[Writer, Readers]:
    """The writer and readers of the configured store, migrated to the latest schema."""
    url = settings.postgres_url
    if url is not None:
        writer: Writer = PostgresWriter(url, busy_timeout_ms=settings.busy_timeout_ms)
        try:
            return writer, PostgresReaders(url)
        except BaseException:
            writer.close()
            raise
    return (
        SqliteWriter(
            settings.db_path,
            synchronous=settings.synchronous,
            busy_timeout_ms=settings.busy_timeout_ms,
        ),
        SqliteReaders(settings.db_path, busy_timeout_ms=settings.busy_timeout_ms),
    )


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


class _Loop(Protocol):
    def run(self) -> Coroutine[Any, Any, None]: ...


class Runtime:
    """The store, its writer and readers, and every part that works on them.

    Building one opens (and migrates) the database; nothing runs until
    ``start``. ``stop`` (or leaving ``async with``) ends the loops and closes
    the store.
    """

    def __init__(self, settings: Settings, *, rules: RuleSet, clock: Clock | None = None) -> None:
        self.settings = settings
        self.rules = rules
        self.clock: Clock = clock or SystemClock()
        self.events = Events()
        self.telemetry = Telemetry()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.listener: Listener | None = None
        target = publish_target(settings)  # ConfigError before anything is opened
        self.writer, self.readers = open_store(settings)
        self.presence: Presence | None = None
        self.instance: Alive = self._instance()
        self.policy = Policy.of(settings)
        self.dispatcher = Dispatcher(
            self.writer,
            rules,
            self.clock,
            instance=self.instance,
            recover_every=RECOVER_SECONDS if self.presence is not None else None,
            telemetry=self.telemetry,
            public_url=settings.public_url,
            policy=RetryPolicy(
                base=timedelta(seconds=settings.retry_base_seconds),
                cap=timedelta(seconds=settings.retry_cap_seconds),
                max_age=timedelta(seconds=settings.retry_max_age_seconds),
            ),
        )
        notices = self.events.publisher(Topic.NOTICES)
        self.scheduler = Scheduler(
            self.writer,
            rules,
            self.clock,
            timezone=settings.timezone,
            on_notices=notices,
            policy=self.policy,
            retention_days=settings.retention_days,
        )
        self.publisher = Publisher(target, self.clock) if target else None
        publisher = self.publisher
        self.summarizer = Summarizer(
            self.writer,
            rules,
            self.clock,
            data_dir=settings.data_dir,
            target=SummaryTarget(
                owner=settings.summary_owner,
                repo=settings.summary_repo,
                tz=settings.timezone,
                public_url=settings.public_url,
            ),
            policy=self.policy,
            on_notices=notices,
            debounce=settings.summary_debounce_seconds,
            readers=self.readers,
            on_summary=(lambda files: publisher.offer(published(files)))
            if publisher is not None
            else (lambda _files: None),
        )
        self.intake = Intake(
            self.writer,
            batch_max=settings.batch_max,
            on_commit=self.events.publisher(Topic.DELIVERIES),
        )
        self.worker = Worker(
            self.writer,
            self.clock,
            alerting=Alerting(rules=rules, policy=self.policy),
            on_notices=notices,
            on_held=self.events.publisher(Topic.DEADLINES),
            on_summary=self.events.publisher(Topic.STATE),
            chunk_seconds=CHUNK_SECONDS_POSTGRES if settings.postgres_url else CHUNK_SECONDS,
            telemetry=self.telemetry,
        )
        self.backfill = self._backfill()

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> Runtime:
        """A runtime with the rules from the settings' rules directory (RulesInvalid if bad)."""
        return cls(settings, rules=load_rule_set(settings), clock=clock)

    def _backfill(self) -> Backfill | None:
        settings = self.settings
        if not (settings.github_token or settings.scan_org or settings.scan_repo_list()):
            return None
        intake = self.intake

        async def submit(batch: list[Delivery]) -> None:
            await asyncio.gather(*(intake.submit(d) for d in batch))

        return Backfill(
            self.writer,
            self.readers,
            self.clock,
            submit=submit,
            api_url=settings.github_api_url,
            token=settings.github_token.get_secret_value() if settings.github_token else None,
            org=settings.scan_org,
            repos=settings.scan_repo_list(),
            interval=settings.scan_interval,
            pace=scan_pace(settings),
            telemetry=self.telemetry,
            graph_pass=settings.graph_refresh_seconds,
            recovery_check=settings.recovery_check_seconds,
        )

    def _instance(self) -> Alive:
        """This process in leases: a file lock on one host's data directory, or,
        on PostgreSQL, a session every replica can see (``store.replicas``)."""
        url = self.settings.postgres_url
        if url is None:
            return Instance(self.settings.data_dir)
        try:
            self.presence = Presence(url, f"{os.getpid()}-{secrets.token_hex(6)}")
        except BaseException:
            self.writer.close()
            self.readers.close()
            raise
        presence = self.presence
        self.events.relay = lambda topic: presence.notify(topic.value)
        return presence

    def _subscribe(self) -> None:
        events = self.events
        events.subscribe(Topic.DELIVERIES, self.worker.wake)
        events.subscribe(Topic.NOTICES, self.dispatcher.wake)
        # A firing notice sets a reminder's deadline only under a rule that repeats.
        if any(r.repeat_interval is not None for r in self.rules.rules):
            events.subscribe(Topic.NOTICES, self.scheduler.wake)
        events.subscribe(Topic.DEADLINES, self.scheduler.wake)
        events.subscribe(Topic.STATE, self.summarizer.changed)
        if self.backfill is not None:
            events.subscribe(Topic.REFUSED, self.backfill.refused)

    async def start(self, loops: Collection[str] = LOOPS) -> None:
        """Start the named background loops (those configured: no publisher, no publishing)."""
        parts: dict[str, _Loop | None] = {
            "worker": self.worker,
            "dispatcher": self.dispatcher,
            "scheduler": self.scheduler,
            "summary": self.summarizer,
            "publisher": self.publisher,
            "backfill": self.backfill,
        }
        if unknown := sorted(set(loops) - set(parts)):
            raise ValueError(f"no loop named {unknown[0]!r}; the loops are {', '.join(LOOPS)}")
        if loops:
            self._subscribe()
        # Replicas share one database: the singletons run on the leader only.
        led = [n for n in SINGLETONS if n in loops and parts[n] is not None]
        if self.presence is None:
            led = []
        for name in LOOPS:
            if name in loops and name not in led and (part := parts[name]) is not None:
                self.tasks[name] = asyncio.create_task(part.run(), name=f"pulsehook-{name}")
        if led:
            self.tasks["leader"] = asyncio.create_task(
                self._lead({n: p for n in led if (p := parts[n]) is not None}),
                name="pulsehook-leader",
            )
        if self.presence is not None and loops:
            self._listen()
        # Everything built so far lives as long as the process: out of the
        # collector's way, so its full collections stay short under load.
        gc.freeze()
        # Each delivery's parsed payload is hundreds of short-lived containers: the
        # default threshold (700) ran a young-generation collection every request or two.
        gc.set_threshold(50_000, 20, 20)

    def _listen(self) -> None:
        """Wake-ups from the other replicas, handed to this loop's events hub."""
        url = self.settings.postgres_url
        assert url is not None and self.presence is not None
        loop = asyncio.get_running_loop()
        known = {t.value: t for t in Topic}

        def heard(topic: str) -> None:
            if (found := known.get(topic)) is not None:
                loop.call_soon_threadsafe(self.events.deliver, found)

        self.listener = Listener(url, self.presence.id, heard)
        self.listener.start()

    async def _lead(self, parts: dict[str, _Loop]) -> None:
        """Run ``parts`` while this replica holds the leader lock; another takes
        over within ``LEAD_SECONDS`` of this one dying or losing its session."""
        presence = self.presence
        assert presence is not None
        running: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                leading = await asyncio.to_thread(presence.lead)
                if leading and not running:
                    log.info("leading the replicas: running %s", ", ".join(parts))
                    for name, part in parts.items():
                        running[name] = asyncio.create_task(part.run(), name=f"pulsehook-{name}")
                    # Listed with the others while it leads: a loop that ends is a
                    # bug, and readiness names it (``stopped``).
                    self.tasks.update(running)
                elif not leading and running:
                    log.warning("no longer leading: stopping %s", ", ".join(running))
                    await _cancel(list(running.values()))
                    for name in running:
                        self.tasks.pop(name, None)
                    running.clear()
                await asyncio.sleep(LEAD_SECONDS)
        finally:
            await _cancel(list(running.values()))
            presence.resign()

    async def stop(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.close()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        self.writer.close()
        self.readers.close()
        self.instance.close()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def worker_running(self) -> bool:
        task = self.tasks.get("worker")
        return task is not None and not task.done()

    def stopped(self) -> list[str]:
        """The background loops that ended: each is a bug, logged when it happened."""
        return [name for name, task in self.tasks.items() if task.done()]

    # One-off work for the commands: the same parts, run once and waited for.

    async def write(self, fn: Callable[[Tx], T]) -> T:
        """One writer transaction."""
        return await self.writer.run(fn)

    async def read(self, fn: Callable[[Tx], T]) -> T:
        """One read on a reader's snapshot."""
        return await self.readers.run(fn)

    async def process_waiting(self) -> int:
        """Process every stored delivery waiting, as the worker does (rules, alerts, health)."""
        return await self.worker.drain()

    async def send_waiting(self) -> None:
        """Send every notice due now, with the service's retry policy and pacing."""
        await self.dispatcher.drain()

    async def replay(self) -> tuple[int, int, dict[str, int]]:
        """Rebuild derived state from the stored deliveries: (done, total, by status).

        Rules are not evaluated: the alerts of the past are history, not news.
        """
        total = await self.write(clear_derived)
        after, done, tz = 0, 0, self.settings.timezone
        while True:
            now = iso(self.clock.now())

            def chunk(db: Tx, a: int = after, n: str = now) -> tuple[int, int]:
                last, count, _ = process_chunk(
                    db, after_id=a, now=n, statuses=("pending",), limit=REPLAY_CHUNK, tz=tz
                )
                return last, count

            after, count = await self.write(chunk)
            if not count:
                break
            done += count
        return done, total, await self.read(deliveries.counts)


def run_once(settings: Settings, work: Callable[[Runtime], Awaitable[T]], **kw: Any) -> T:
    """Build a runtime, run ``work`` on it without background loops, stop it."""

    async def go() -> T:
        async with Runtime(settings, **kw) as runtime:
            return await work(runtime)

    return asyncio.run(go())
