"""The dispatcher: outbox rows -> transports (in threads) -> results recorded.

Sending never blocks receiving: transports run in worker threads, results go
through the single writer at normal priority. A transient failure is retried
with exponential backoff and jitter (at least ``Retry-After`` when the channel
says so); a permanent one (4xx other than 408/429, invalid configuration) or
one still failing after ``max_age`` is parked with its error, visible in the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from ..clock import Clock, iso, parse_iso
from ..notify.base import SendResult
from ..notify.registry import transport_for
from ..rules.model import RuleSet
from ..store.db import NORMAL, Writer
from . import outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    base: timedelta = timedelta(seconds=10)
    cap: timedelta = timedelta(minutes=10)
    max_age: timedelta = timedelta(hours=24)
    timeout: float = 60.0  # per send, on top of the transport's own timeouts

    def delay(self, attempts: int, result: SendResult, rng: random.Random) -> timedelta:
        backoff = min(self.cap, self.base * (2 ** max(0, attempts - 1)))
        delay = backoff * rng.uniform(0.8, 1.2)
        if result.retry_after is not None:
            delay = max(delay, timedelta(seconds=min(result.retry_after, 3600)))
        return timedelta(seconds=delay.total_seconds())


def decide(
    row: dict[str, Any],
    result: SendResult,
    *,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
) -> dict[str, Any]:
    """What to record for one send attempt (pure)."""
    attempts = int(row["attempts"]) + 1
    base = {"attempts": attempts, "last_status": result.status, "response": result.response}
    if result.ok:
        return base | {
            "status": "sent",
            "next_attempt_at": iso(now),
            "error": None,
            "sent_at": iso(now),
        }
    created = parse_iso(row["created_at"])
    if result.permanent or now - created >= policy.max_age:
        why = (
            "permanent failure"
            if result.permanent
            else (f"gave up after {attempts} attempts over {policy.max_age}")
        )
        return base | {
            "status": "parked",
            "next_attempt_at": iso(now),
            "error": f"{why}: {result.error}",
            "sent_at": None,
        }
    when = now + policy.delay(attempts, result, rng)
    return base | {
        "status": "pending",
        "next_attempt_at": iso(when),
        "error": result.error,
        "sent_at": None,
    }


class Dispatcher:
    def __init__(
        self,
        writer: Writer,
        rules: RuleSet,
        clock: Clock,
        *,
        policy: RetryPolicy | None = None,
        concurrency: int = 4,
        rng: random.Random | None = None,
    ) -> None:
        self._writer = writer
        self._rules = rules
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._sem = asyncio.Semaphore(concurrency)
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def _send(self, row: dict[str, Any]) -> None:
        message = outbox.message_from(row["message"])
        channel = self._rules.channels.get(row["channel"])
        if channel is None:
            result = SendResult(
                ok=False, permanent=True, error=f"channel {row['channel']!r} is not configured"
            )
        else:
            async with self._sem:
                try:
                    result = await asyncio.wait_for(
                        asyncio.to_thread(transport_for(channel.kind), channel, message),
                        self._policy.timeout,
                    )
                except TimeoutError:
                    result = SendResult(ok=False, error="timed out")
        outcome = decide(row, result, now=self._clock.now(), policy=self._policy, rng=self._rng)
        if outcome["status"] == "parked":
            log.warning("notice %s to %s parked: %s", row["id"], row["channel"], outcome["error"])
        elif outcome["status"] == "pending":
            log.info(
                "notice %s to %s failed (%s); retry at %s",
                row["id"],
                row["channel"],
                outcome["error"],
                outcome["next_attempt_at"],
            )

        def save(db: Database) -> None:
            outbox.record(
                db,
                row["id"],
                status=outcome["status"],
                attempts=outcome["attempts"],
                next_attempt_at=outcome["next_attempt_at"],
                last_status=outcome["last_status"],
                error=outcome["error"],
                response=outcome["response"],
                sent_at=outcome["sent_at"],
            )

        await self._writer.run(save, NORMAL)

    async def run_once(self) -> int:
        """Send everything due now; return how many attempts were made."""
        moment = self._clock.now()
        now, lease = iso(moment), iso(moment + timedelta(seconds=self._policy.timeout * 2))
        rows = await self._writer.run(lambda db: outbox.claim(db, now, lease, 32), NORMAL)
        await asyncio.gather(*(self._send(row) for row in rows))
        return len(rows)

    async def run(self) -> None:
        while True:
            try:
                while await self.run_once():
                    pass
                upcoming = await self._writer.run(outbox.next_attempt, NORMAL)
            except Exception:
                log.exception("dispatcher pass failed; retrying shortly")
                upcoming = None
            wait = 60.0
            if upcoming:
                due = parse_iso(upcoming)
                wait = max(0.05, min(wait, (due - self._clock.now()).total_seconds()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
