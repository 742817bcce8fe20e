"""Recovering missed webhook deliveries: ask GitHub to send again what never arrived.

GitHub keeps every delivery attempt of a hook (newest first, cursor pages) but does
not retry failures itself. A delivery (a guid) is missed when none of its attempts
was answered 2xx and pulsehook has not stored it either; its most recent attempt is
redelivered. What was asked is remembered (``recovery.py`` decides, a ``Ledger``
keeps it), so a delivery is asked for once, and again only when GitHub lists that
redelivery as failed, after a backoff. GitHub.com redelivers only the past 3 days'
deliveries (``window``); older missed ones are counted as expired, not asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

from ..clock import iso, parse_iso
from .api import Failure, GitHubClient, GitHubError, RateLimited, failure
from .recovery import Attempt, Outcome, Request, Step, answered, decide, succeeded

Json = dict[str, Any]

REDELIVERY_WINDOW = timedelta(days=3)  # GitHub.com's; GitHub Enterprise Server keeps 7
PER_PAGE = 100


@dataclass(frozen=True)
class HookRef:
    """A webhook: a repository's (``repo`` set) or an organisation's (``repo`` None)."""

    hook_id: int
    owner: str
    repo: str | None = None

    @property
    def deliveries(self) -> str:
        if self.repo is None:
            return f"/orgs/{quote(self.owner)}/hooks/{self.hook_id}/deliveries"
        return f"/repos/{quote(self.owner)}/{quote(self.repo)}/hooks/{self.hook_id}/deliveries"

    def __str__(self) -> str:
        where = f"{self.owner}/{self.repo}" if self.repo else f"organisation {self.owner}"
        return f"hook {self.hook_id} of {where}"

    @classmethod
    def of(cls, request: Request) -> HookRef:
        return cls(request.hook_id, request.owner, request.repo)


class Ledger(Protocol):
    """Where the requests are remembered (``github/backfill.py``: the store)."""

    async def open(self) -> list[Request]:
        """The requests not yet settled (requested or failed)."""

    async def recall(self, guids: list[str]) -> list[Request]:
        """The requests kept for any of ``guids``, settled ones included."""

    async def known(self, guids: list[str]) -> set[str]:
        """Which of ``guids`` pulsehook has stored."""

    async def save(self, requests: list[Request]) -> None:
        """Remember ``requests``, each replacing what was kept for its guid."""


@dataclass
class RecoveryReport:
    looked: list[HookRef] = field(default_factory=list)  # the hooks listed
    listed: int = 0  # delivery attempts since each hook's ``since``
    missed: int = 0  # guids never delivered and not stored
    requested: int = 0  # redeliveries asked for (and GitHub accepted)
    refused: int = 0  # redelivery requests GitHub refused (or that got no answer)
    failed: int = 0  # redeliveries GitHub attempted that failed again
    recovered: int = 0  # asked-for deliveries pulsehook now has
    expired: int = 0  # missed, but too old for GitHub to redeliver
    abandoned: int = 0  # failed after the last request allowed
    waiting: int = 0  # requests still open after this pass
    errors: list[Failure] = field(default_factory=list)
    guids: list[str] = field(default_factory=list)  # the guids asked for
    checked_at: str | None = None

    def summary(self) -> dict[str, Any]:
        """The figures (no names: safe to show anyone)."""
        return {
            "at": self.checked_at,
            "hooks": len(self.looked),
            "listed": self.listed,
            "missed": self.missed,
            "requested": self.requested,
            "refused": self.refused,
            "failed": self.failed,
            "recovered": self.recovered,
            "expired": self.expired,
            "abandoned": self.abandoned,
            "waiting": self.waiting,
            "errors": len(self.errors),
        }

    def count(self, news: tuple[Outcome, ...]) -> None:
        for outcome in news:
            if outcome is Outcome.FAILED:
                self.failed += 1
            elif outcome is Outcome.RECOVERED:
                self.recovered += 1
            elif outcome is Outcome.EXPIRED:
                self.expired += 1
            elif outcome is Outcome.ABANDONED:
                self.abandoned += 1


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = parse_iso(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def _attempts(client: GitHubClient, hook: HookRef, since: datetime) -> list[Attempt]:
    """The hook's attempts delivered at or after ``since``, following cursor pages."""
    found: list[Attempt] = []
    url: str | None = hook.deliveries
    params: dict[str, Any] | None = {"per_page": PER_PAGE}
    while url is not None:
        rsp = await client.get(url, params)
        if not rsp.ok or not isinstance(rsp.body, list):
            raise client.error(rsp)
        older = False
        for attempt in rsp.body:
            at = _when(attempt.get("delivered_at")) if isinstance(attempt, dict) else None
            if at is None or not isinstance(attempt.get("guid"), str):
                continue
            if at < since:
                older = True  # pages are newest first: the next ones are all older
                continue
            found.append((at, attempt))
        url, params = (None if older else rsp.link("next")), None
    return found


async def recover(
    client: GitHubClient,
    hooks: list[HookRef],
    ledger: Ledger,
    *,
    since: Mapping[HookRef, datetime],
    now: datetime,
    window: timedelta = REDELIVERY_WINDOW,
) -> RecoveryReport:
    """One pass over ``hooks``: each missed delivery listed since ``since[hook]`` (and
    each open request of those hooks) is decided on, asked for when due, remembered.

    What is asked is saved before it is asked (a crash in between leaves a request
    with no answer, asked again only after its backoff), then saved with GitHub's
    answer. An error on one hook is recorded and the others go on; RateLimited ends
    the pass, with what was asked so far saved.
    """
    report = RecoveryReport(checked_at=iso(now))
    by_guid: dict[str, tuple[HookRef, list[Attempt]]] = {}
    for hook in dict.fromkeys(hooks):
        start = since[hook] if since[hook].tzinfo else since[hook].replace(tzinfo=UTC)
        try:
            attempts = await _attempts(client, hook, start)
        except RateLimited:
            raise
        except GitHubError as exc:
            report.errors.append(failure(f"{hook}: listing deliveries", exc))
            continue
        report.looked.append(hook)
        report.listed += len(attempts)
        for at, attempt in attempts:
            by_guid.setdefault(attempt["guid"], (hook, []))[1].append((at, attempt))
    looked = set(report.looked)
    remembered = {r.guid: r for r in await ledger.open() if HookRef.of(r) in looked}
    undelivered = [
        g for g, (_, tries) in by_guid.items() if not any(succeeded(t) for _, t in tries)
    ]
    # A settled request is remembered too: what was given up on is not asked anew.
    if fresh := [g for g in undelivered if g not in remembered]:
        remembered.update((r.guid, r) for r in await ledger.recall(fresh))
    candidates = list(dict.fromkeys([*undelivered, *remembered]))
    stored = await ledger.known(candidates) if candidates else set()
    report.missed = sum(1 for g in undelivered if g not in stored)
    steps: list[Step] = []
    for guid in candidates:
        hook, tries = by_guid.get(guid) or (HookRef.of(remembered[guid]), [])
        step = decide(
            guid,
            remembered.get(guid),
            tries,
            hook=(hook.hook_id, hook.owner, hook.repo),
            stored=guid in stored,
            now=now,
            window=window,
        )
        if step is not None:
            steps.append(step)
            report.count(tuple(n for n in step.news if n is not Outcome.REQUESTED))
    await ledger.save([s.request for s in steps])
    done: list[Request] = []
    try:
        for step in steps:
            if step.ask is None and step.request.outcome is Outcome.REQUESTED:
                # Nothing GitHub lists to ask for: refused at once, as GitHub would.
                done.append(answered(step.request, None, "no attempt to redeliver", now))
                report.refused += 1
            elif step.ask is not None:
                done.append(await _ask(client, step, report, now))
    finally:
        await ledger.save(done)
    final = {**remembered, **{s.request.guid: s.request for s in steps}}
    final.update((r.guid, r) for r in done)
    report.waiting = sum(1 for r in final.values() if r.open)
    return report


async def _ask(client: GitHubClient, step: Step, report: RecoveryReport, now: datetime) -> Request:
    request = step.request
    hook = HookRef.of(request)
    try:
        rsp = await client.post(f"{hook.deliveries}/{step.ask}/attempts")
    except RateLimited:
        raise
    except GitHubError as exc:
        report.refused += 1
        report.errors.append(failure(f"{hook}: redelivering {request.guid}", exc))
        return answered(request, None, str(exc), now)
    if rsp.ok:
        report.requested += 1
        report.guids.append(request.guid)
        return answered(request, rsp.status, None, now)
    error = client.error(rsp)
    report.refused += 1
    report.errors.append(failure(f"{hook}: redelivering {request.guid}", error))
    return answered(request, rsp.status, str(error), now)
