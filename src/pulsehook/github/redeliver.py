"""Recovering missed webhook deliveries: ask GitHub to send again what never arrived.

GitHub keeps every delivery attempt of a hook (newest first, cursor pages) but does
not retry failures itself. A delivery (a guid) is missed when none of its attempts
was answered 2xx and pulsehook has not stored it either; its most recent attempt is
redelivered, once per run. GitHub.com redelivers only the past 3 days' deliveries
(``window``); older missed ones are counted as expired, not asked for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from ..clock import iso, parse_iso
from .api import Failure, GitHubClient, GitHubError, RateLimited, failure

Json = dict[str, Any]
Attempt = tuple[datetime, Json]  # when delivered, the attempt as GitHub lists it
Known = Callable[[list[str]], Awaitable[set[str]]]

REDELIVERY_WINDOW = timedelta(days=3)
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


@dataclass
class RecoveryReport:
    listed: int = 0  # delivery attempts since ``since``
    missed: int = 0  # guids never delivered and not stored
    redelivered: int = 0  # redeliveries GitHub accepted
    failed: int = 0  # redeliveries GitHub refused (or that could not be asked)
    expired: int = 0  # missed, but too old for GitHub to redeliver
    errors: list[Failure] = field(default_factory=list)
    guids: list[str] = field(default_factory=list)  # the guids redelivered
    checked_at: str | None = None


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = parse_iso(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _number(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _succeeded(attempt: Json) -> bool:
    code = attempt.get("status_code")
    return isinstance(code, int) and 200 <= code < 300


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
    known: Known,
    *,
    since: datetime,
    now: datetime,
    window: timedelta = REDELIVERY_WINDOW,
) -> RecoveryReport:
    """Redeliver each missed delivery of ``hooks`` since ``since``, once.

    ``known(guids)`` answers which of ``guids`` pulsehook has stored. An error on one
    hook is recorded and the others go on; RateLimited ends the run.
    """
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    report = RecoveryReport(checked_at=iso(now))
    by_guid: dict[str, tuple[HookRef, list[Attempt]]] = {}
    for hook in dict.fromkeys(hooks):
        try:
            attempts = await _attempts(client, hook, since)
        except RateLimited:
            raise
        except GitHubError as exc:
            report.errors.append(failure(f"{hook}: listing deliveries", exc))
            continue
        report.listed += len(attempts)
        for at, attempt in attempts:
            by_guid.setdefault(attempt["guid"], (hook, []))[1].append((at, attempt))
    undelivered = [
        g for g, (_, tries) in by_guid.items() if not any(_succeeded(t) for _, t in tries)
    ]
    stored = await known(undelivered) if undelivered else set()
    missed = [g for g in undelivered if g not in stored]
    report.missed = len(missed)
    oldest = now - window
    for guid in missed:
        hook, tries = by_guid[guid]
        when, latest = max(tries, key=lambda t: (t[0], _number(t[1].get("id"))))
        if when < oldest:
            report.expired += 1
            continue
        try:
            rsp = await client.post(f"{hook.deliveries}/{latest.get('id')}/attempts")
        except RateLimited:
            raise
        except GitHubError as exc:
            report.failed += 1
            report.errors.append(failure(f"{hook}: redelivering {guid}", exc))
            continue
        if rsp.ok:
            report.redelivered += 1
            report.guids.append(guid)
        else:
            report.failed += 1
            report.errors.append(failure(f"{hook}: redelivering {guid}", client.error(rsp)))
    return report
