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
from .ingest import Alerting, Worker, clear_derived, process_chunk
from .instance import Instance
from .intake import Intake
from .rules.load import load_rules
from .rules.model import RuleSet
from .schedule.runner import Scheduler
from .settings import Settings
from .store import deliveries
from .store.db import SqliteReaders, SqliteWriter, Tx
from .store.deliveries import Delivery
from .summary.publish import Publisher
from .summary.publish import Target as PublishTarget
from .summary.service import Summarizer
from .summary.service import Target as SummaryTarget
from .telemetry import Telemetry
from .timing import parse_duration

log = logging.getLogger(__name__)
T = TypeVar("T")

# Every background loop, in the order they start. ``serve`` runs them all (unless
# --no-worker), ``pulsehook worker`` too; one-off commands run none and call parts.
LOOPS = ("worker", "dispatcher", "scheduler", "summary", "publisher", "backfill")
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
    )


def published(files: dict[str, str]) -> dict[str, str]:
    """What goes to GitHub: the pair pulseox itself writes (text and JSON)."""
    return {name: files[name] for name in ("summary.md", "summary.md.json")}


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
        target = publish_target(settings)  # ConfigError before anything is opened
        self.writer = SqliteWriter(
            settings.db_path,
            synchronous=settings.synchronous,
            busy_timeout_ms=settings.busy_timeout_ms,
        )
        self.readers = SqliteReaders(settings.db_path, busy_timeout_ms=settings.busy_timeout_ms)
        self.instance = Instance(settings.data_dir)
        self.policy = Policy(
            flap=parse_duration(settings.flap_interval), timezone=settings.timezone
        )
        self.dispatcher = Dispatcher(
            self.writer,
            rules,
            self.clock,
            instance=self.instance,
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
                owner=settings.summary_owner, repo=settings.summary_repo, tz=settings.timezone
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
        )

    def _subscribe(self) -> None:
        events = self.events
        events.subscribe(Topic.DELIVERIES, self.worker.wake)
        events.subscribe(Topic.NOTICES, self.dispatcher.wake)
        # A firing notice sets a reminder's deadline only under a rule that repeats.
        if any(r.repeat_interval is not None for r in self.rules.rules):
            events.subscribe(Topic.NOTICES, self.scheduler.wake)
        events.subscribe(Topic.DEADLINES, self.scheduler.wake)
        events.subscribe(Topic.STATE, self.summarizer.changed)

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
        for name in LOOPS:
            if name in loops and (part := parts[name]) is not None:
                self.tasks[name] = asyncio.create_task(part.run(), name=f"pulsehook-{name}")
        # Everything built so far lives as long as the process: out of the
        # collector's way, so its full collections stay short under load.
        gc.freeze()
        # Each delivery's parsed payload is hundreds of short-lived containers: the
        # default threshold (700) ran a young-generation collection every request or two.
        gc.set_threshold(50_000, 20, 20)

    async def stop(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.close()

    def close(self) -> None:
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
