"""What to do about each missed delivery, given what was asked before: pure.

pulsehook remembers every redelivery it asks GitHub for (a ``Request`` per guid,
kept in ``store/redeliveries.py``), so a delivery is asked for once, and again only
when GitHub's own list shows that the redelivery failed too (or GitHub refused the
request, or no answer was recorded), after a backoff, up to ``MAX_ASKS`` times.
A delivery GitHub accepted to redeliver but has not yet attempted is waited for,
never asked twice. Once pulsehook has the delivery, it is never asked for again.

``decide`` takes one guid's remembered request, GitHub's attempts and ``now``, and
says what to remember and whether to ask; ``answered`` records GitHub's answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

# After the first, second and third request failed: how long before the next.
BACKOFF = (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))
MAX_ASKS = len(BACKOFF) + 1

Json = dict[str, Any]
Attempt = tuple[datetime, Json]  # when delivered, the attempt as GitHub lists it


class Outcome(StrEnum):
    REQUESTED = "requested"  # asked; GitHub's new attempt not listed yet
    FAILED = "failed"  # the redelivery failed or was refused: asked again after the backoff
    RECOVERED = "recovered"  # pulsehook has the delivery
    EXPIRED = "expired"  # older than GitHub redelivers
    ABANDONED = "abandoned"  # asked MAX_ASKS times, failed each time


OPEN = frozenset({Outcome.REQUESTED, Outcome.FAILED})


@dataclass(frozen=True)
class Request:
    """What pulsehook remembers of one missed delivery."""

    guid: str
    hook_id: int
    owner: str
    repo: str | None  # None: an organisation's hook
    event: str | None
    delivered_at: datetime  # GitHub's first attempt
    outcome: Outcome
    asks: int = 0
    delivery_id: int | None = None  # the attempt last asked to be redelivered
    first_asked_at: datetime | None = None
    last_asked_at: datetime | None = None
    answer: int | None = None  # GitHub's HTTP status to the last request; None: unrecorded
    next_ask_at: datetime | None = None  # when failed: not asked again before this
    settled_at: datetime | None = None  # recovered, expired or abandoned: when
    error: str | None = None  # why GitHub refused the last request

    @property
    def open(self) -> bool:
        return self.outcome in OPEN


@dataclass(frozen=True)
class Step:
    """``decide``'s answer: what to remember, the attempt to ask for, and what
    changed this pass (``Outcome`` values, in order)."""

    request: Request
    ask: int | None = None
    news: tuple[Outcome, ...] = ()


def attempt_id(attempt: Json) -> int:
    value = attempt.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def succeeded(attempt: Json) -> bool:
    code = attempt.get("status_code")
    return isinstance(code, int) and 200 <= code < 300


def _accepted(answer: int | None) -> bool:
    return answer is not None and 200 <= answer < 300


def backoff(asks: int) -> timedelta:
    """How long after its ``asks``-th request a failed delivery is asked for again."""
    return BACKOFF[min(max(asks, 1), len(BACKOFF)) - 1]


def _asking(old: Request, ask: int | None, now: datetime) -> Request:
    return replace(
        old,
        outcome=Outcome.REQUESTED,
        asks=old.asks + 1,
        delivery_id=ask,
        first_asked_at=old.first_asked_at or now,
        last_asked_at=now,
        answer=None,
        next_ask_at=None,
        error=None,
    )


def _settled(old: Request, outcome: Outcome, now: datetime) -> Request:
    return replace(old, outcome=outcome, settled_at=now, next_ask_at=None)


def decide(
    guid: str,
    old: Request | None,
    tries: Sequence[Attempt],
    *,
    hook: tuple[int, str, str | None],
    stored: bool,
    now: datetime,
    window: timedelta,
) -> Step | None:
    """What to do about ``guid``, never delivered as far as ``tries`` (its attempts
    listed this pass, possibly none) say; None when there is nothing to remember.

    ``stored``: pulsehook has the delivery. ``window``: how far back GitHub redelivers.
    """
    if stored:
        if old is None or old.outcome is Outcome.RECOVERED:
            return None
        return Step(_settled(old, Outcome.RECOVERED, now), news=(Outcome.RECOVERED,))
    if old is not None and not old.open:
        return None  # settled: never asked for again
    latest = max(tries, key=lambda t: (t[0], attempt_id(t[1])), default=None)
    if old is None:
        return None if latest is None else _first(guid, tries, latest, hook, now, window)
    return _again(old, tries, latest, now, window)


def _first(
    guid: str,
    tries: Sequence[Attempt],
    latest: Attempt,
    hook: tuple[int, str, str | None],
    now: datetime,
    window: timedelta,
) -> Step:
    """A missed delivery seen for the first time: asked for, unless too old."""
    hook_id, owner, repo = hook
    event = latest[1].get("event")
    fresh = Request(
        guid=guid,
        hook_id=hook_id,
        owner=owner,
        repo=repo,
        event=event if isinstance(event, str) else None,
        delivered_at=min(at for at, _ in tries),
        outcome=Outcome.REQUESTED,
    )
    if fresh.delivered_at < now - window:
        return Step(_settled(fresh, Outcome.EXPIRED, now), news=(Outcome.EXPIRED,))
    ask = attempt_id(latest[1])
    return Step(_asking(fresh, ask, now), ask=ask, news=(Outcome.REQUESTED,))


def _again(
    old: Request,
    tries: Sequence[Attempt],
    latest: Attempt | None,
    now: datetime,
    window: timedelta,
) -> Step | None:
    """An open request: waited for, asked again, or settled."""
    first = min([old.delivered_at, *(at for at, _ in tries)])
    too_old = first < now - window
    newer = [t for _, t in tries if attempt_id(t) > (old.delivery_id or 0)]
    if any(succeeded(t) for t in newer):
        return None  # GitHub says it arrived: it is being stored, nothing to ask
    last = old.last_asked_at or old.delivered_at
    # GitHub's list or its answer says the redelivery failed; or no answer was
    # recorded (a crash between asking and saving) and its backoff has passed.
    failed = bool(newer) or (old.answer is not None and not _accepted(old.answer))
    if not failed and not (old.answer is None and now >= last + backoff(old.asks)):
        if too_old:  # accepted, never attempted, and now past GitHub's reach
            return Step(_settled(old, Outcome.EXPIRED, now), news=(Outcome.EXPIRED,))
        return None  # GitHub accepted it: waited for, not asked again
    news: tuple[Outcome, ...] = (Outcome.FAILED,) if old.outcome is Outcome.REQUESTED else ()
    if old.asks >= MAX_ASKS:
        return Step(_settled(old, Outcome.ABANDONED, now), news=(*news, Outcome.ABANDONED))
    if too_old:
        return Step(_settled(old, Outcome.EXPIRED, now), news=(*news, Outcome.EXPIRED))
    due = last + backoff(old.asks)
    if now >= due:
        ask = attempt_id(latest[1]) if latest is not None else old.delivery_id
        return Step(_asking(old, ask, now), ask=ask, news=(*news, Outcome.REQUESTED))
    if old.outcome is Outcome.FAILED and old.next_ask_at == due:
        return None  # already waiting for its next turn
    return Step(replace(old, outcome=Outcome.FAILED, next_ask_at=due), news=news)


def answered(request: Request, status: int | None, error: str | None, now: datetime) -> Request:
    """``request`` after GitHub answered its redelivery request with ``status``
    (None: no answer came, as when the connection failed)."""
    if status is not None and 200 <= status < 300:
        return replace(request, answer=status, error=None)
    if request.asks >= MAX_ASKS:
        return replace(
            request,
            answer=status,
            error=error,
            outcome=Outcome.ABANDONED,
            settled_at=now,
            next_ask_at=None,
        )
    return replace(
        request,
        answer=status if status is not None else 0,
        error=error,
        outcome=Outcome.FAILED,
        next_ask_at=(request.last_asked_at or now) + backoff(request.asks),
    )
