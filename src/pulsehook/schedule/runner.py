"""The scheduler loop: held notices and digests, woken at the next deadline; the
daily sweeps (rescore, retention) in short writer turns between the others'."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from ..alerts import digest, engine, lifecycle
from ..clock import Clock, iso
from ..facts import Fact
from ..rules.evaluate import Evaluator
from ..rules.model import RuleSet
from ..store import health as health_store
from ..store import marks, retention, sweeps
from ..store.db import NORMAL, Tx, Writer

log = logging.getLogger(__name__)

# The longest sleep. Changes made in this process wake the scheduler when they
# create a deadline; this bounds how late one made elsewhere (the CLI) is seen.
MAX_SLEEP = 30.0
RESCORE = "rescore"  # the daily sweep over every repository's score
# A rescore or retention chunk's share of the writer per turn; intake and processing
# take their turns between chunks (DESIGN §2: no turn long enough to be felt).
SWEEP_SECONDS = 0.005


def daily_due(db: Tx, name: str, now: datetime) -> bool:
    """True once per day per name (and at first sight); records the run."""
    last = marks.last_run(db, f"daily:{name}")
    if last is not None and now - last < timedelta(days=1):
        return False
    marks.mark(db, f"daily:{name}", now)
    return True


class Scheduler:
    def __init__(
        self,
        writer: Writer,
        rules: RuleSet,
        clock: Clock,
        *,
        timezone: str,
        on_notices: Callable[[], None],
        policy: engine.Policy | None = None,
        sweep_seconds: float = SWEEP_SECONDS,
        retention_days: int = 0,
    ) -> None:
        retention.check_days(retention_days)  # ConfigError: the service does not start
        self._evaluator = Evaluator()
        self._policy = policy or engine.Policy(timezone=timezone)
        self._writer = writer
        self._rules = rules
        self._clock = clock
        self._tz = timezone
        self._on_notices = on_notices
        self._wake = asyncio.Event()
        self._sweep_seconds = sweep_seconds
        self._sweeping = False  # a rescore is under way: the next pass comes at once
        self._retention_days = retention_days  # 0: everything is kept
        self._pruner = retention.Pruner(
            event_rules=frozenset(r.name for r in rules.rules if r.fact in lifecycle.EVENT_KINDS)
        )
        self._pruning = bool(retention_days)  # a run may be under way from before a restart
        self._pruning_since: float | None = None

    def wake(self) -> None:
        self._wake.set()

    async def tick(self) -> int:
        """Do what is due now; return how many notices were queued."""
        now = self._clock.now()

        def job(db: Tx) -> int:
            queued = engine.release_held(db, self._rules, now=now)
            queued += engine.release_unsilenced(db, self._rules, now=now, policy=self._policy)
            queued += engine.release_repeats(db, self._rules, now=now)
            queued += digest.run_due(db, self._rules, now=now, tz=self._tz)
            if daily_due(db, "health", now):
                # Scores age (activity) without any event: rescore everything
                # daily, a chunk per pass (see rescore_chunk).
                sweeps.start(db, RESCORE, iso(now))
            if self._retention_days and daily_due(db, "retention", now):
                # Daily, and at the first pass after the first start.
                self._pruning |= self._pruner.begin(db, days=self._retention_days, now=now)
            return queued

        queued = await self._writer.run(job, NORMAL)
        queued += await self.rescore_chunk()
        await self.retention_chunk()
        if queued:
            self._on_notices()
        return queued

    async def rescore_chunk(self) -> int:
        """One short writer turn of a running rescore: the next repositories'
        scores, the rules on what changed, and the sweep's place, committed
        together. At 10,000 repositories a rescore in one turn held the writer
        for 50 s; in turns of ``SWEEP_SECONDS`` intake and processing go on."""
        now = self._clock.now()

        def chunk(db: Tx) -> int:
            cursor = sweeps.position(db, RESCORE)
            if cursor is None:
                self._sweeping = False
                return 0
            last, done, changed = health_store.recompute_batch(
                db, after_id=cursor, now=now, budget=self._sweep_seconds
            )
            self._sweeping = bool(done)
            sweeps.advance(db, RESCORE, last, finished_at=None if done else iso(now))
            if not changed:
                return 0
            facts: list[Fact] = list(changed)
            return engine.evaluate(
                db, self._rules, facts, now=now, evaluator=self._evaluator, policy=self._policy
            ).queued

        return await self._writer.run(chunk, NORMAL)

    async def retention_chunk(self) -> None:
        """One short writer turn of a running retention run (store/retention/);
        a run cut short by a restart goes on from where it was."""
        if not self._pruning:
            return
        now = self._clock.now()
        self._pruning_since = self._pruning_since or time.monotonic()
        self._pruning = await self._writer.run(
            lambda db: self._pruner.step(db, now=now, budget=self._sweep_seconds), NORMAL
        )
        if self._pruner.finished:
            log.info(
                "retention (%d days): pruned %s; %d writer turns over %.1f s",
                self._retention_days,
                self._pruner.counts.line(),
                self._pruner.turns,
                time.monotonic() - self._pruning_since,
            )
        if not self._pruning:
            self._pruning_since = None

    async def seconds_to_next(self) -> float:
        now = self._clock.now()
        due = await self._writer.run(
            lambda db: engine.next_due(db, self._rules, now=now, timezone=self._tz), NORMAL
        )
        if self._sweeping or self._pruning:
            return 0.0  # the next chunk of a sweep, after the others' turns
        candidates: list[datetime] = [due] if due else []
        nxt = digest.next_run(self._rules, now=now, tz=self._tz)
        if nxt:
            candidates.append(nxt)
        if not candidates:
            return MAX_SLEEP
        return max(0.05, min(MAX_SLEEP, (min(candidates) - now).total_seconds()))

    async def run(self) -> None:
        while True:
            # Cleared before the work: a wake-up that comes during it is not lost.
            self._wake.clear()
            try:
                await self.tick()
                wait = await self.seconds_to_next()
            except Exception:
                log.exception("scheduler pass failed; retrying shortly")
                wait = MAX_SLEEP
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):  # not wait_for: see dispatch.py
                    await self._wake.wait()
