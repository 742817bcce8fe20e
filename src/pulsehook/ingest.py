"""The one place that wires the data flow.

receive: a verified delivery is committed (grouped with whatever else arrived
meanwhile, on the single writer) before the sender gets its answer.
process: the worker reads pending deliveries in arrival order, in chunks of
one transaction, and per delivery normalizes, applies the facts to the state
tables and marks the delivery — so a crash leaves it pending, a bug (a
normalizer's included) leaves it marked ``error`` with the reason (the chunk is
done again with a savepoint per delivery), to be tried again at the next
start, and neither stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import orjson

from .alerts import engine
from .clock import Clock, iso, parse_iso
from .errors import NormalizerFailed, StorageUnavailable, UnsupportedEvent
from .facts import Build, Fact, WorkflowState
from .github.normalize import normalize, snapshot
from .logs import note
from .rules.evaluate import Evaluator
from .rules.model import RuleSet
from .store import deliveries, state
from .store import health as health_store
from .store import silences as silence_store
from .store import summary as summary_store
from .store.db import NORMAL, Tx, Writer, savepoint
from .summary import items as summary_items
from .telemetry import Telemetry, event_label

log = logging.getLogger(__name__)

PROCESS_CHUNK = 64  # deliveries per processing transaction at most ...
# ... and at most this long: intake takes its turn on the writer between chunks,
# so a chunk's length is what a sender may wait on top of its own commit.
CHUNK_SECONDS = 0.01
# On PostgreSQL every read is a round trip, and a chunk's own reads (the claim,
# silences, scores) would outweigh ten milliseconds' worth of deliveries: a
# chunk may hold the writer longer, for a few more milliseconds on an answer.
CHUNK_SECONDS_POSTGRES = 0.03
# Replicas: deliveries another one's turn held back are looked at again after
# 50 ms, then 100 and 200 ms while that one keeps its turn. Meanwhile the
# replica does not answer wake-ups: the holder of the turn takes what arrives
# (every replica hears of every delivery), and a claim that cannot win would
# cost both writers a transaction.
DEFER_SECONDS, DEFER_LAST = 0.05, 0.2
# After the store failed, processing tries again after 1 s, doubling up to 30 s.
RETRY_FIRST, RETRY_LAST = 1.0, 30.0


@dataclass(frozen=True)
class Alerting:
    """What rule evaluation needs; absent during replay (alerts are history)."""

    rules: RuleSet
    policy: engine.Policy
    evaluator: Evaluator = field(default_factory=Evaluator)


@dataclass
class News:
    """What one chunk's transaction did that others must hear of once it commits.

    Made for each chunk and handed back with its result: a chunk rolled back
    takes its news with it.
    """

    outcome: engine.Outcome = field(default_factory=engine.Outcome)
    summary_changes: int = 0  # summary items reported
    failed: list[str] = field(default_factory=list)  # events whose processing failed
    # Deliveries left for a moment: another replica is processing their repository.
    deferred: int = 0

    def absorb(self, other: News) -> None:
        """Add what another part of the same transaction did."""
        self.outcome += other.outcome
        self.summary_changes += other.summary_changes
        self.failed.extend(other.failed)
        self.deferred += other.deferred


def _record_hook(db: Tx, row: dict[str, Any], payload: Any) -> None:
    """Every delivery names its hook: keep where it lives, for missed-delivery recovery."""
    target = row["hook_target"]
    data = payload if isinstance(payload, dict) else {}
    repo = data.get("repository") if target == "repository" else None
    org = data.get("organization") if target == "organization" else None
    deliveries.record_hook(
        db,
        hook_id=row["hook_id"],
        events=None,
        content_type=None,
        target=target,
        repo=repo.get("full_name") if isinstance(repo, dict) else None,
        org=org.get("login") if isinstance(org, dict) else None,
        ping_at=None,
        delivery_at=row["received_at"],
    )


def process_one(
    db: Tx,
    row: dict[str, Any],
    *,
    now: str,
    alerting: Alerting | None = None,
    clock_now: datetime | None = None,
    tz: str = "UTC",
    processed: list[int] | None = None,
    news: News | None = None,
    active_silences: list[dict[str, Any]] | None = None,
    careful: bool = True,
) -> list[Fact]:
    """Process one stored delivery inside the caller's transaction.

    Facts, state, alerts and outbox rows of one delivery commit together. With
    ``processed``, a delivery that went through is added to it for the caller
    to mark with the others of its transaction, instead of marked here.

    ``careful`` (the default) guards the delivery's writes with a savepoint and
    waits for each of its statements before it ends, so a failure is this
    delivery's and is kept as its ``error``. Not careful, a failure of its writes
    raises instead: on PostgreSQL a statement's failure may come to light only
    at a later delivery's read, and the caller must start over carefully.
    """
    facts: list[Fact] = []
    error: str | None = None
    # Reading and normalizing write nothing: what fails there fails alone.
    try:
        payload = orjson.loads(deliveries.decode_payload(row["payload"]))
        facts = normalize(row["event"], payload)
    except NormalizerFailed as exc:  # a bug, not a payload to ignore
        status, error, facts = "error", _failed(row, str(exc), news), []
    except UnsupportedEvent as exc:
        status, error, facts = "ignored", str(exc), []
    except Exception as exc:  # noqa: BLE001 — a bug must not stop the worker; kept as error
        status, error = "error", _failed(row, f"{type(exc).__name__}: {exc}", news)
        facts = []
    else:
        apply = partial(
            _apply,
            db,
            row,
            payload,
            facts,
            now=now,
            alerting=alerting,
            clock_now=clock_now,
            tz=tz,
            news=news,
            active_silences=active_silences,
        )
        status = "processed"
        if not careful:
            facts = apply()
        else:
            with savepoint(db, "delivery") as step:
                try:
                    facts = apply()
                    db.flush()  # a statement of this delivery's that failed fails it, here
                except Exception as exc:  # noqa: BLE001 — a bug must not stop the worker
                    step.rollback(exc)
                    status, error = "error", _failed(row, f"{type(exc).__name__}: {exc}", news)
                    facts = []
    if status == "processed" and processed is not None:
        processed.append(row["id"])
    else:
        deliveries.mark(db, row["id"], status, error=error, at=now)
    return facts


def _apply(
    db: Tx,
    row: dict[str, Any],
    payload: Any,
    facts: list[Fact],
    *,
    now: str,
    alerting: Alerting | None,
    clock_now: datetime | None,
    tz: str,
    news: News | None,
    active_silences: list[dict[str, Any]] | None,
) -> list[Fact]:
    """A delivery's facts into the state tables, the summary and the rules."""
    if row["hook_id"] is not None:
        _record_hook(db, row, payload)
    # The repository as the payload shows it first, then the facts, in one call.
    seen = snapshot(payload)
    applied = state.apply(db, [seen, *facts] if seen else facts, now=now)
    facts = [f for f in applied if f is not seen]
    moment = clock_now or parse_iso(now)
    # Whether each report changed its item is asked after the rules have read
    # the store: their read brings the answers along.
    reported = [
        summary_items.report_build_later(db, f, now=moment, tz=tz)
        for f in facts
        if isinstance(f, Build)
    ]
    watched = sum(
        summary_items.watch_workflow(db, f, now=moment, tz=tz)
        for f in facts
        if isinstance(f, WorkflowState)
    )
    if alerting is not None and clock_now is not None:
        outcome = engine.evaluate(
            db,
            alerting.rules,
            facts,
            now=clock_now,
            evaluator=alerting.evaluator,
            policy=alerting.policy,
            active_silences=active_silences,
            received_at=row["received_at"],
        )
        if news is not None:
            news.outcome += outcome
    changes = watched + sum(changed() for changed in reported)
    if news is not None:
        news.summary_changes += changes
    return facts


def _failed(row: dict[str, Any], error: str, news: News | None) -> str:
    """Log a delivery's failure with the traceback being handled; return the reason."""
    note(
        log,
        logging.ERROR,
        "delivery processing failed",
        trace=True,
        id=row["id"],
        delivery=row["guid"],
        event=row["event"],
        error=error,
    )
    if news is not None:
        news.failed.append(row["event"])
    return error


def processing_lag(waiting_since: str | None, now: datetime) -> float:
    """Seconds the next waiting delivery has waited (0 when none waits)."""
    if waiting_since is None:
        return 0.0
    return max(0.0, (now - parse_iso(waiting_since)).total_seconds())


def process_chunk(
    db: Tx,
    *,
    after_id: int,
    now: str,
    statuses: tuple[str, ...],
    limit: int = PROCESS_CHUNK,
    budget: float | None = None,
    alerting: Alerting | None = None,
    clock_now: datetime | None = None,
    tz: str = "UTC",
    news: News | None = None,
) -> tuple[int, int, list[Fact]]:
    """Process the deliveries after ``after_id``: (last id seen, how many, facts).

    With a ``budget`` (seconds), stops after the delivery that used it up; the
    rest wait for the next chunk. What the caller must announce after the
    commit (alert changes, notices, failures) is added to ``news``.
    """
    rows, deferred = deliveries.claim(db, after_id=after_id, limit=limit, statuses=statuses)
    if news is not None:
        news.deferred += deferred
    # Read once per chunk: nothing else writes while the chunk holds the writer.
    active = silence_store.load(db, clock_now) if alerting and clock_now and rows else None

    def run(careful: bool, news: News) -> tuple[list[Fact], list[int], int]:
        """The chunk's rows until the budget is spent: facts, processed ids, rows done."""
        facts: list[Fact] = []
        processed: list[int] = []
        stop = None if budget is None else time.perf_counter() + budget
        done = 0
        for row in rows:
            done += 1
            facts.extend(
                process_one(
                    db,
                    row,
                    now=now,
                    alerting=alerting,
                    clock_now=clock_now,
                    tz=tz,
                    processed=processed,
                    news=news,
                    active_silences=active,
                    careful=careful,
                )
            )
            if stop is not None and time.perf_counter() >= stop:
                break
        return facts, processed, done

    # The chunk at full speed first, no statement waited for unless read; if
    # anything fails, it is undone and done again, each delivery in a savepoint
    # of its own and waited for, so only the one at fault is kept as an error.
    attempt = News()
    try:
        with savepoint(db, "chunk"):
            facts, processed, done = run(False, attempt)
            db.flush()
    except Exception:
        if not db.in_transaction:  # the store undid the transaction itself (SQLite)
            raise
        attempt = News()
        facts, processed, done = run(True, attempt)
    rows = rows[:done]
    if news is not None:
        news.absorb(attempt)
    deliveries.mark_processed(db, processed, at=now)
    # Scores move with the facts that feed them — once per repository per chunk,
    # not per delivery — and a change of score is itself a fact for the rules.
    moment = clock_now or parse_iso(now)
    touched = sorted({r for f in facts if isinstance(r := getattr(f, "repo_id", None), int)})
    scores = [s for r in touched if (s := health_store.recompute(db, r, moment)) is not None]
    if scores and alerting is not None and clock_now is not None:
        outcome = engine.evaluate(
            db,
            alerting.rules,
            list(scores),
            now=clock_now,
            evaluator=alerting.evaluator,
            policy=alerting.policy,
            active_silences=active,
        )
        if news is not None:
            news.outcome += outcome
    facts.extend(scores)
    return (rows[-1]["id"] if rows else after_id), len(rows), facts


def clear_derived(db: Tx) -> int:
    """Forget all derived state and mark every delivery pending again."""
    state.reset(db)
    summary_store.reset_reported(db)  # workflow items come from builds
    return deliveries.reset_all(db)


class Worker:
    """Processes committed deliveries off the request path, in arrival order.

    It runs whenever the writer is free: chunks of at most ``CHUNK_SECONDS``
    take turns with intake's group commits on the writer, so at any rate both
    advance and neither waits for the other to go quiet.
    """

    def __init__(
        self,
        writer: Writer,
        clock: Clock,
        *,
        alerting: Alerting | None = None,
        on_notices: Callable[[], None] = lambda: None,
        on_held: Callable[[], None] = lambda: None,
        on_summary: Callable[[], None] = lambda: None,
        chunk_seconds: float = CHUNK_SECONDS,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._writer = writer
        self._telemetry = telemetry or Telemetry()
        self._clock = clock
        self._alerting = alerting
        self._on_notices = on_notices
        self._on_held = on_held
        self._on_summary = on_summary
        self._chunk_seconds = chunk_seconds
        self._wake = asyncio.Event()
        self._deferred = False  # a pass left deliveries to another replica's turn
        self.lag = 0.0  # seconds the next waiting delivery has waited, as of the last chunk

    def wake(self) -> None:
        self._wake.set()

    async def drain(self, statuses: tuple[str, ...] = ("pending",)) -> int:
        """Process everything currently waiting; return how many deliveries were seen."""
        after_id, seen, fetch = 0, 0, PROCESS_CHUNK
        while True:
            moment = self._clock.now()
            now = iso(moment)

            def job(
                db: Tx,
                start: int = after_id,
                now: str = now,
                moment: datetime = moment,
                limit: int = fetch,
            ) -> tuple[int, int, str | None, News]:
                news = News()
                last, count, _facts = process_chunk(
                    db,
                    after_id=start,
                    limit=limit,
                    budget=self._chunk_seconds,
                    now=now,
                    statuses=statuses,
                    alerting=self._alerting,
                    clock_now=moment,
                    tz=self._alerting.policy.timezone if self._alerting else "UTC",
                    news=news,
                )
                return last, count, deliveries.next_received_at(db, last), news

            # A chunk rolled back raises here, and its news is gone with it.
            after_id, count, waiting_since, news = await self._writer.run(job, NORMAL)
            # Fetch about what the budget allows: rows read and left over are waste.
            fetch = max(8, min(PROCESS_CHUNK, 2 * count))
            self.lag = processing_lag(waiting_since, moment)
            self._deferred = self._deferred or news.deferred > 0
            self._announce(news)
            if not count:
                return seen
            seen += count

    def _announce(self, news: News) -> None:
        """Tell what the last chunk committed, and wake whoever must act on it."""
        if self._alerting is None:
            return
        outcome = news.outcome
        telemetry = self._telemetry
        for event in news.failed:  # each logged, with its traceback, as it failed
            telemetry.processing_errors.labels(event_label(event)).inc()
        for change in outcome.changes:
            telemetry.alert_changes.labels(change.rule, change.kind).inc()
            note(
                log,
                logging.INFO,
                f"alert {change.kind}",
                rule=change.rule,
                repo=change.repo,
                alert=change.key,
            )
        for rule, error in outcome.errors:
            telemetry.rule_errors.labels(rule).inc()
            note(log, logging.WARNING, "rule evaluation failed", rule=rule, error=error)
        if outcome.queued:
            self._on_notices()
        if outcome.held:
            self._on_held()
        if news.summary_changes:
            self._on_summary()

    async def run(self) -> None:
        # Deliveries left pending by a crash, and those a bug failed on, get
        # another go at every start.
        retry = 0.0 if await self._safe_drain(("pending", "error")) else RETRY_FIRST
        defer = 0.0
        while True:
            if self._deferred and not retry:
                # Another replica had their repository: look again soon.
                defer = min(DEFER_LAST, 2 * defer) if defer else DEFER_SECONDS
                self._deferred = False
                await asyncio.sleep(defer)
                self._wake.clear()
                ok = await self._safe_drain(("pending",))
                retry = 0.0 if ok else RETRY_FIRST
                continue
            defer = 0.0
            if retry:
                # The store failed (disk full, locked): no delivery may come to
                # wake the worker while intake fails too, so it tries again itself.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(retry):
                        await self._wake.wait()
            else:
                await self._wake.wait()
            self._wake.clear()
            ok = await self._safe_drain(("pending",))
            retry = 0.0 if ok else min(RETRY_LAST, max(RETRY_FIRST, 2 * retry))

    async def _safe_drain(self, statuses: tuple[str, ...]) -> bool:
        """One pass; False when the store failed and the pass must be tried again."""
        try:
            await self.drain(statuses)
        except StorageUnavailable as exc:
            log.warning("processing paused, the store failed: %s; trying again", exc)
            return False
        except Exception:
            log.exception("worker pass failed; it resumes at the next delivery")
        return True
