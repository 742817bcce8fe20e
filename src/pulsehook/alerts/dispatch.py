"""The dispatcher: outbox rows -> transports (in threads) -> results recorded.

Sending never blocks receiving: transports run in worker threads, results go
through the single writer at normal priority. A transient failure is retried
with exponential backoff and jitter (at least ``Retry-After`` when the channel
says so); a permanent one (4xx other than 408/429, invalid configuration) or
one still failing after ``max_age`` is parked with its error, visible in the API.
A transport that raises has a bug, not a failing channel: the traceback is logged
once and the notice parked with the exception as its error, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock, iso, parse_iso
from ..instance import Alive
from ..logs import note
from ..notify.base import ChannelConfig, Message, SendResult, Transport
from ..notify.pace import Pacer
from ..notify.registry import kind_of, transport_for
from ..notify.result import scrub
from ..rules.model import RuleSet
from ..store import outbox, threads
from ..store.db import NORMAL, Tx, Writer
from ..telemetry import Telemetry
from .grouping import Tally, alerts_link, render_group

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


async def in_daemon_thread(
    transport: Transport, channel: ChannelConfig, message: Message
) -> SendResult:
    """Run one send in a thread of its own that never holds up the process's exit.

    The default executor's threads are joined when the process stops, so one send
    stuck on a slow channel would keep a stopping service alive until its timeout.
    A send abandoned this way was never recorded: its lease brings it back at the
    next start, as after a crash.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[SendResult] = loop.create_future()

    def settle(result: SendResult | None, error: BaseException | None) -> None:
        if future.done():
            return  # the send was given up (timed out, or the service is stopping)
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = transport(channel, message), None
        except BaseException as exc:  # noqa: BLE001 — handed to the awaiting coroutine
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="pulsehook-send", daemon=True).start()
    return await future


class Dispatcher:
    """Sends due notices, ``concurrency`` at a time, each channel at its own pace.

    A notice is claimed (leased) only when a send slot is free for it, so a
    crash leaves at most ``concurrency`` notices leased; the next process to
    start sees their owner is dead and sends them at once. A paced channel sends
    one notice at a time, no sooner than its rate allows; grouped notices that
    waited for it go out merged into one.
    """

    def __init__(
        self,
        writer: Writer,
        rules: RuleSet,
        clock: Clock,
        *,
        policy: RetryPolicy | None = None,
        concurrency: int = 4,
        rng: random.Random | None = None,
        instance: Alive | None = None,
        telemetry: Telemetry | None = None,
        public_url: str | None = None,
        recover_every: float | None = None,
    ) -> None:
        self._writer = writer
        self._telemetry = telemetry or Telemetry()
        self._rules = rules
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._concurrency = concurrency
        self._rng = rng or random.Random()
        self._instance = instance
        self._owner = instance.id if instance else f"{os.getpid()}-{secrets.token_hex(6)}"
        self._public_url = public_url
        # Replicas: a dead one's leases are looked for this often, not only at start.
        self._recover_every = recover_every
        self._recovered_at = 0.0
        self._pacer = Pacer()
        self._wake = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    def _message(self, item: outbox.Claimed, channel: ChannelConfig | None) -> Message | None:
        """A grouped notice's message, made now from its members (None: as queued)."""
        if item.members is None:
            return None
        tally = Tally.of(item.members.loaded, item.members.counts)
        rules = sorted({m.rule for m in tally.members} or {r for r, _ in tally.counts})
        return render_group(
            tally,
            kind=channel.kind if channel else "",
            key=item.row["group_key"] or f"notice-{item.row['id']}",
            alerts_url=alerts_link(self._public_url, rules),
            firing_now=item.firing,
        )

    @staticmethod
    def _thread_key(item: outbox.Claimed, channel: ChannelConfig | None) -> str | None:
        """The alert whose notices this channel threads (a Slack app's), else None."""
        if channel is None or item.members is not None or not item.row.get("alert_key"):
            return None
        kind = kind_of(channel.kind)
        if kind is None or kind.threads is None or not kind.threads(channel):
            return None
        return str(item.row["alert_key"])

    async def _send(self, item: outbox.Claimed) -> None:
        row = item.row
        channel = self._rules.channels.get(row["channel"])
        made = self._message(item, channel)
        message = made or outbox.message_from(row["message"])
        thread_key = self._thread_key(item, channel)
        if thread_key is not None and channel is not None and message.state != "firing":
            name = channel.name
            posted = await self._writer.run(lambda db: threads.find(db, name, thread_key), NORMAL)
            if posted is not None:
                # Handed to the transport only: the outbox keeps the message as queued.
                message = dataclasses.replace(message, thread=posted)
        if channel is None:
            result = SendResult(
                ok=False, permanent=True, error=f"channel {row['channel']!r} is not configured"
            )
        else:
            try:
                async with asyncio.timeout(self._policy.timeout):
                    result = await in_daemon_thread(transport_for(channel.kind), channel, message)
            except TimeoutError:
                result = SendResult(ok=False, error="timed out")
            except Exception as exc:  # noqa: BLE001 — a transport's bug: a retry fails alike
                result = self._fault(row, channel, exc)
        moment = self._clock.now()
        if channel is not None and channel.rate is not None:
            limited = result.retry_after if result.status == 429 else None
            self._pacer.finished(channel.name, moment, channel.rate, limited)
        outcome = decide(row, result, now=moment, policy=self._policy, rng=self._rng)

        def save(db: Tx) -> None:
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
                message=made,
            )
            if thread_key is not None and channel is not None and outcome["status"] == "sent":
                if message.state == "firing" and result.posted:
                    threads.remember(db, channel.name, thread_key, result.posted, iso(moment))
                elif message.state == "resolved":
                    threads.forget(db, channel.name, thread_key)

        await self._writer.run(save, NORMAL)
        self._told(item, outcome, moment)

    @staticmethod
    def _fault(row: dict[str, Any], channel: ChannelConfig, exc: Exception) -> SendResult:
        """A transport that raised: its traceback logged (the log's redactor masks the
        channel's credentials), the notice parked with the exception as its error."""
        error = scrub(f"{type(exc).__name__}: {exc}", channel) or type(exc).__name__
        note(
            log,
            logging.ERROR,
            "transport raised",
            trace=True,
            notice=row["id"],
            channel=row["channel"],
            error=error,
        )
        return SendResult(ok=False, permanent=True, error=f"transport raised {error}")

    def _told(self, item: outbox.Claimed, outcome: dict[str, Any], moment: datetime) -> None:
        """The log line and the counts for a send whose outcome is now stored."""
        row = item.row
        status = outcome["status"]
        name = {"sent": "sent", "pending": "retry", "parked": "parked"}.get(status, status)
        self._telemetry.notices.labels(row["channel"], name).inc()
        if item.merged:
            self._telemetry.notices.labels(row["channel"], "merged").inc(item.merged)
        fields: dict[str, Any] = {
            "notice": row["id"],
            "channel": row["channel"],
            "kind": row["kind"],
            "alert": row.get("alert_key"),
            "attempt": outcome["attempts"],
        }
        if item.members is not None:
            counts = item.members.counts.values()
            fields["alerts"] = sum(n for n, _ in counts) or len(item.members.loaded)
        if item.merged:
            fields["merged"] = item.merged
        if status == "sent":
            received = row.get("received_at")
            if received:
                # From the answer to the delivery that caused it to the channel's yes.
                waited = (moment - parse_iso(received)).total_seconds()
                self._telemetry.alert_latency.observe(max(0.0, waited))
                fields["latency_seconds"] = round(waited, 3)
            note(log, logging.INFO, "notice sent", **fields)
        elif status == "parked":
            note(log, logging.WARNING, "notice parked", **fields, error=outcome["error"])
        else:
            note(
                log,
                logging.WARNING,
                "notice failed, will retry",
                **fields,
                error=outcome["error"],
                retry_at=outcome["next_attempt_at"],
            )

    def _lanes(self, free: int, moment: datetime) -> dict[str, outbox.Lane]:
        """What each configured channel may send now (others: unpaced)."""
        lanes = {}
        for name, channel in self._rules.channels.items():
            kind = kind_of(channel.kind)
            incident = kind is not None and kind.incident
            if channel.rate is None:
                lanes[name] = outbox.Lane(slots=free, incident=incident)
            else:
                ready = self._pacer.ready(name, moment)
                lanes[name] = outbox.Lane(
                    slots=1 if ready else 0,
                    merge="group" if incident else "channel",
                    incident=incident,
                )
        return lanes

    async def _claim(self, free: int) -> outbox.Claim:
        """Take what is due and may be sent now, up to ``free`` notices; also say
        which channels wait for their pace and when the next notice falls due."""
        moment = self._clock.now()
        now, lease = iso(moment), iso(moment + timedelta(seconds=self._policy.timeout * 2))
        lanes = self._lanes(free, moment)
        return await self._writer.run(
            lambda db: outbox.claim(db, now, lease, free, owner=self._owner, lanes=lanes),
            NORMAL,
        )

    def _wait(self, claim: outbox.Claim, limit: float) -> float:
        """Seconds until there may be something to send: the next notice falls due,
        or a channel that has notices waiting may send again."""
        moment = self._clock.now()
        times = [parse_iso(claim.upcoming)] if claim.upcoming else []
        times += [t for c in claim.waiting if (t := self._pacer.ready_at(c)) is not None]
        if not times:
            return limit
        return max(0.05, min(limit, (min(times) - moment).total_seconds()))

    def _begin(self, item: outbox.Claimed) -> None:
        channel = self._rules.channels.get(item.row["channel"])
        if channel is not None and channel.rate is not None:
            self._pacer.started(channel.name)

    async def _round(self) -> outbox.Claim:
        """Send what may be sent now, ``concurrency`` at a time, and wait for it."""
        claim = await self._claim(self._concurrency)
        for item in claim.taken:
            self._begin(item)
        await asyncio.gather(*(self._send(item) for item in claim.taken))
        return claim

    async def run_once(self) -> int:
        """Send what may be sent now, ``concurrency`` at a time; return how many attempts."""
        return len((await self._round()).taken)

    async def drain(self, *, limit: float = 300.0) -> int:
        """Send everything due, waiting for the channels' pace; give up after ``limit``
        seconds (what is left is sent by the service). Return how many attempts."""
        attempts = 0
        deadline = asyncio.get_running_loop().time() + limit
        while asyncio.get_running_loop().time() < deadline:
            claim = await self._round()
            attempts += len(claim.taken)
            if not claim.taken and not claim.waiting:
                break
            if not claim.taken:
                await asyncio.sleep(self._wait(claim, 1.0) if claim.waiting else 0)
        return attempts

    async def recover(self) -> int:
        """Take back the leases of processes that died mid-send; return how many."""
        if self._instance is None:
            return 0
        instance = self._instance
        now = iso(self._clock.now())

        def job(db: Tx) -> int:
            dead = [o for o in outbox.lease_holders(db, now) if not instance.alive(o)]
            return sum(outbox.release_leases(db, owner, now) for owner in dead)

        taken = await self._writer.run(job, NORMAL)
        if taken:
            log.warning("%d notice(s) leased by a process that died: sending them now", taken)
        return taken

    def _start(self, item: outbox.Claimed) -> None:
        self._begin(item)
        task = asyncio.get_running_loop().create_task(self._send(item))
        self._sending.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._sending.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("sending notice %s failed", item.row["id"], exc_info=t.exception())
                channel = self._rules.channels.get(item.row["channel"])
                if channel is not None and channel.rate is not None:
                    self._pacer.finished(channel.name, self._clock.now(), channel.rate)
            self._wake.set()  # a slot is free

        task.add_done_callback(done)

    async def run(self) -> None:
        try:
            await self.recover()
        except Exception:
            log.exception("taking back dead processes' leases failed")
        try:
            await self._loop()
        finally:
            # Stopping: the sends under way finish and are recorded (bounded by
            # the send timeout), so a replica stopped for a rolling restart leaves
            # no notice that another would send again.
            if self._sending:
                await asyncio.wait(list(self._sending), timeout=self._policy.timeout + 1)
            for task in list(self._sending):
                task.cancel()

    async def _loop(self) -> None:
        while True:
            # Cleared before the work: a wake-up that comes during it is not lost.
            self._wake.clear()
            wait = 60.0
            try:
                if self._recover_every is not None:
                    wait = self._recover_every
                    if time.monotonic() - self._recovered_at >= self._recover_every:
                        self._recovered_at = time.monotonic()
                        await self.recover()
                free = self._concurrency - len(self._sending)
                if free > 0:
                    claim = await self._claim(free)
                    for item in claim.taken:
                        self._start(item)
                    # Sleep until the next notice falls due or a waiting channel may
                    # send again; a send that ends wakes the loop too.
                    wait = self._wait(claim, wait)
                # Otherwise every slot is taken: a send that ends wakes the loop.
            except Exception:
                log.exception("dispatcher pass failed; retrying shortly")
                wait = 1.0
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that comes as the wake-up does, and the loop would
                # outlive its service's shutdown.
                async with asyncio.timeout(wait):
                    await self._wake.wait()
