"""Publishing the summary files to a GitHub repository through the REST contents API.

``publish_files`` is one pass (GET each file's sha, PUT unless the remote file says
the same, its generation time aside: ``stable``) over the GitHub client, and never
raises for HTTP or network failures: the client reads GitHub's answers (rate
limits, ``Retry-After``, errors) and this module turns them into a PublishResult. The client neither
retries nor waits here.
``Publisher`` coalesces: the summary changes with every webhook, the repository gets at
most one commit per file per ``min_interval``, and failures are retried with backoff
(or after what GitHub said to wait) instead of being lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from ..clock import Clock, SystemClock
from ..github.api import GitHubClient, GitHubError, RateLimited
from ..github.contents import put_file, read_file

log = logging.getLogger(__name__)

BACKOFF_START = 5.0
BACKOFF_CAP = 600.0
MIN_RETRY = 1.0  # a "Retry-After: 0" must not turn a failing loop into a hot spin

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where the summary goes. kw_only: owner, repo and token are all strings."""

    api_url: str = "https://api.github.com"
    owner: str
    repo: str
    directory: str = ""  # path prefix inside the repository; "" for the root
    branch: str = "main"
    token: str = field(repr=False)  # repr=False: logging a Target must not leak it
    min_interval: timedelta = timedelta(seconds=60)

    @property
    def where(self) -> str:
        return f"{self.owner}/{self.repo}"

    def path(self, name: str) -> str:
        """Where ``name`` goes inside the repository."""
        return "/".join(p for p in (self.directory.strip("/"), name) if p)


@dataclass
class PublishResult:
    ok: bool
    changed: list[str] = field(default_factory=list)  # files written (a commit each)
    error: str | None = None
    retry_after: float | None = None  # seconds, when GitHub said how long to wait
    status: int | None = None  # of the last answer that mattered; None: no answer


def _failure(exc: GitHubError, target: Target, changed: list[str]) -> PublishResult:
    status = exc.status
    why = {
        401: "token rejected (bad, expired or revoked)",
        403: f"forbidden: does the token have contents:write on {target.where}?",
        404: f"{target.where} or branch {target.branch!r} not found, or not visible to the token",
    }.get(status or 0)
    if isinstance(exc, RateLimited):
        why = "rate limited"
    elif why is None and status is not None and status >= 400:
        why = "GitHub unavailable" if status >= 500 else "refused"
    return PublishResult(
        ok=False,
        changed=changed,
        error=f"{why}: {exc}" if why else str(exc),
        retry_after=exc.retry_after if isinstance(exc, RateLimited) else None,
        status=status,
    )


async def _write(github: GitHubClient, target: Target, name: str, body: bytes) -> int | None:
    """The status of the PUT that wrote the file, or None when it is already identical."""
    path = target.path(name)
    remote = await read_file(github, target.where, path, ref=target.branch)
    if remote is not None and _same(name, remote.content, body):
        return None  # the same content: a PUT would only commit a new generation time
    return await put_file(
        github,
        target.where,
        path,
        body,
        message=f"pulsehook: update {name}",
        branch=target.branch,
        sha=None if remote is None else remote.sha,
    )


def _same(name: str, remote: bytes | None, body: bytes) -> bool:
    if remote is None:
        return False  # too large to inline: written again
    if remote == body:
        return True
    try:
        return stable(name, remote.decode("utf-8")) == stable(name, body.decode("utf-8"))
    except UnicodeDecodeError:
        return False


async def _publish_one(github: GitHubClient, target: Target, name: str, body: bytes) -> int | None:
    try:
        return await _write(github, target, name, body)
    except GitHubError as exc:
        if exc.status not in (409, 422):
            raise
    # Another writer committed between our GET and PUT: once more, with the new sha.
    return await _write(github, target, name, body)


async def publish_files(
    client: httpx.AsyncClient, target: Target, files: dict[str, str], *, clock: Clock | None = None
) -> PublishResult:
    """Write ``files`` (name -> text) under ``target.directory``; stops at the first failure.

    ``clock`` turns ``x-ratelimit-reset`` (an epoch time) into ``retry_after`` seconds.
    """
    # No retries and no waiting in the client: the Publisher's loop owns the schedule.
    github = GitHubClient(
        base_url=target.api_url,
        token=target.token,
        http=client,
        clock=clock or SystemClock(),
        max_retries=0,
        max_wait=0.0,
    )
    changed: list[str] = []
    status: int | None = None
    try:
        for name, text in files.items():
            written = await _publish_one(github, target, name, text.encode("utf-8"))
            if written is not None:
                changed.append(name)
                status = written
    except GitHubError as exc:
        return _failure(exc, target, changed)
    return PublishResult(ok=True, changed=changed, status=status)


# The Metadata footer's generation time in the text forms (``- updated: …``).
_GENERATED = re.compile(r"^- updated: .*$", re.MULTILINE)


def stable(name: str, text: str) -> str:
    """The file as compared for publishing: without the time it was generated, which
    changes at every regeneration while nothing it says does. Only a change of
    content makes a commit; an idle service, or a restart, makes none."""
    if not name.endswith(".json"):
        return _GENERATED.sub("- updated:", text)
    try:
        document = json.loads(text)
    except ValueError:
        return text  # not ours: compared as it is
    if isinstance(document, dict):
        for part in ("summary", "previous_summary"):
            summary = document.get(part)
            if isinstance(summary, dict):
                summary.pop("updated", None)
                if isinstance(summary.get("text"), str):
                    summary["text"] = _GENERATED.sub("- updated:", summary["text"])
    return json.dumps(document, sort_keys=True)


def _digest(files: dict[str, str]) -> str:
    # JSON, not plain concatenation: {"a": "bc"} and {"ab": "c"} must differ.
    kept = {name: stable(name, text) for name, text in files.items()}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


class Publisher:
    """Coalesces offers into at most one publish per ``target.min_interval``.

    ``offer`` and the coroutines must be called on the event loop that runs ``run``.
    """

    def __init__(
        self,
        target: Target,
        clock: Clock,
        client_factory: Callable[[], httpx.AsyncClient] = lambda: httpx.AsyncClient(timeout=30),
        *,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.target = target
        self._clock = clock
        self._client_factory = client_factory
        self._sleep = sleep
        self.last_result: PublishResult | None = None
        self.published_count = 0  # successful passes: the repository then held the files
        self.last_published_at: datetime | None = None
        self._offered: dict[str, str] | None = None  # the latest offer, kept for publish_now
        self._published_digest: str | None = None
        self._wake = asyncio.Event()  # set: an offer the loop has not dealt with yet
        self._lock = asyncio.Lock()  # one pass at a time (the loop vs. publish_now)

    def offer(self, files: dict[str, str]) -> None:
        self._offered = dict(files)
        self._wake.set()

    def _until_allowed(self) -> float:
        if self.last_published_at is None:
            return 0.0
        due = self.last_published_at + self.target.min_interval
        return (due - self._clock.now()).total_seconds()

    async def run(self) -> None:
        backoff = BACKOFF_START
        while True:
            await self._wake.wait()
            wait = self._until_allowed()
            if wait > 0:
                await self._sleep(wait)  # offers meanwhile just replace self._offered
                continue
            self._wake.clear()  # before publishing: an offer made during the pass counts
            files = self._offered
            if files is None or _digest(files) == self._published_digest:
                continue
            try:
                result = await self._publish(files)
            except Exception as e:  # noqa: BLE001 — a bug must not end publishing for good
                result = PublishResult(ok=False, error=f"unexpected {type(e).__name__}")
            if result.ok:
                backoff = BACKOFF_START
                continue
            delay = backoff if result.retry_after is None else max(MIN_RETRY, result.retry_after)
            backoff = min(backoff * 2, BACKOFF_CAP)
            msg = "publishing the summary to %s failed (status %s): %s; retrying in %.0f s"
            log.warning(msg, self.target.where, result.status, result.error, delay)
            self._wake.set()  # still pending; whatever is offered by then is what gets retried
            await self._sleep(delay)

    async def publish_now(self) -> PublishResult:
        """Publish the latest offer now, ignoring the interval (``pulsehook summary publish``)."""
        if self._offered is None:
            return PublishResult(ok=False, error="nothing to publish: no summary offered yet")
        return await self._publish(self._offered)

    async def _publish(self, files: dict[str, str]) -> PublishResult:
        async with self._lock:
            async with self._client_factory() as client:
                result = await publish_files(client, self.target, files, clock=self._clock)
            self.last_result = result
            if result.ok:
                self.published_count += 1
                self.last_published_at = self._clock.now()
                self._published_digest = _digest(files)
                if result.changed:
                    log.info("published %s to %s", ", ".join(result.changed), self.target.where)
        return result
