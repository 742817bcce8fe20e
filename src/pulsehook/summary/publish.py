"""Publishing the summary files to a GitHub repository through the REST contents API.

``publish_files`` is one pass (GET each file's sha, PUT unless the remote bytes are
identical) and never raises for HTTP or network failures. ``Publisher`` coalesces: the
summary changes with every webhook, the repository gets at most one commit per file per
``min_interval``, and failures are retried with backoff instead of being lost.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

import httpx

from ..clock import Clock, SystemClock

log = logging.getLogger(__name__)

BACKOFF_START = 5.0
BACKOFF_CAP = 600.0
MIN_RETRY = 1.0  # a "Retry-After: 0" must not turn a failing loop into a hot spin
SHORT = 200  # characters of GitHub's answer kept in an error

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

    def url(self, name: str) -> str:
        path = "/".join(p for p in (self.directory.strip("/"), name) if p)
        base = self.api_url.rstrip("/")
        return f"{base}/repos/{self.owner}/{self.repo}/contents/{quote(path, safe='/')}"

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "pulsehook",  # GitHub refuses API requests without one
        }

    def scrub(self, text: str) -> str:
        """Error text can quote what was sent (an echoing proxy, an exception message)."""
        return text.replace(self.token, "***") if self.token else text


@dataclass
class PublishResult:
    ok: bool
    changed: list[str] = field(default_factory=list)  # files written (a commit each)
    error: str | None = None
    retry_after: float | None = None  # seconds, when GitHub said how long to wait
    status: int | None = None  # of the last answer that mattered; None: no answer


@dataclass(frozen=True)
class _Remote:
    sha: str | None  # None: the file does not exist (yet)
    content: bytes | None  # None: absent, or too large for the API to inline


def _retry_after(rsp: httpx.Response, clock: Clock) -> float | None:
    value = rsp.headers.get("retry-after")
    try:
        if value is not None:
            return max(0.0, float(value))  # GitHub sends delta-seconds
        if rsp.headers.get("x-ratelimit-remaining") == "0":
            reset = float(rsp.headers["x-ratelimit-reset"])  # epoch seconds
            return max(0.0, reset - clock.now().timestamp())
    except (KeyError, ValueError):
        pass
    return None


def _failure(rsp: httpx.Response, target: Target, clock: Clock) -> PublishResult:
    status = rsp.status_code
    retry_after = _retry_after(rsp, clock)
    why = {
        401: "token rejected (bad, expired or revoked)",
        403: f"forbidden: does the token have contents:write on {target.where}?",
        404: f"{target.where} or branch {target.branch!r} not found, or not visible to the token",
    }.get(status, "GitHub unavailable" if status >= 500 else "refused")
    if status == 429 or (status == 403 and retry_after is not None):
        why = "rate limited"
    try:
        detail = str(rsp.json().get("message") or "")
    except (ValueError, AttributeError):  # not JSON, or JSON that is not an object
        detail = rsp.text
    detail = " ".join(detail.split())[:SHORT]
    text = f"HTTP {status} on {rsp.request.method} {rsp.request.url.path}: {why}"
    error = target.scrub(f"{text} ({detail})" if detail else text)
    return PublishResult(ok=False, error=error, retry_after=retry_after, status=status)


async def _read(
    client: httpx.AsyncClient, target: Target, name: str, clock: Clock
) -> _Remote | PublishResult:
    rsp = await client.get(
        target.url(name), params={"ref": target.branch}, headers=target.headers()
    )
    if rsp.status_code == 404:
        # Also what a missing repository looks like; the PUT then fails with a clear error.
        return _Remote(None, None)
    if rsp.status_code != 200:
        return _failure(rsp, target, clock)
    data = rsp.json()
    if not isinstance(data, dict) or not isinstance(data.get("sha"), str):
        return PublishResult(ok=False, status=200, error=f"{name} is not a file in the repository")
    raw = data.get("content") if data.get("encoding") == "base64" else None
    # b64decode drops the newlines GitHub wraps the content with.
    return _Remote(data["sha"], base64.b64decode(raw) if isinstance(raw, str) else None)


async def _publish_one(
    client: httpx.AsyncClient, target: Target, name: str, body: bytes, clock: Clock
) -> int | PublishResult | None:
    """The status of the PUT that wrote the file, None when already identical, or why not."""
    for retry in (False, True):
        remote = await _read(client, target, name, clock)
        if isinstance(remote, PublishResult):
            return remote
        if remote.content == body:
            return None  # identical: a PUT would only add an empty commit
        payload = {
            "message": f"pulsehook: update {name}",
            "content": base64.b64encode(body).decode("ascii"),
            "branch": target.branch,
        }
        if remote.sha is not None:
            payload["sha"] = remote.sha
        rsp = await client.put(target.url(name), json=payload, headers=target.headers())
        if rsp.status_code in (200, 201):
            return rsp.status_code
        # 409/422: another writer committed between our GET and PUT; re-read the sha once.
        if retry or rsp.status_code not in (409, 422):
            break
    return _failure(rsp, target, clock)


async def publish_files(
    client: httpx.AsyncClient, target: Target, files: dict[str, str], *, clock: Clock | None = None
) -> PublishResult:
    """Write ``files`` (name -> text) under ``target.directory``; stops at the first failure.

    ``clock`` turns ``x-ratelimit-reset`` (an epoch time) into ``retry_after`` seconds.
    """
    clock = clock or SystemClock()
    changed: list[str] = []
    status: int | None = None
    try:
        for name, text in files.items():
            outcome = await _publish_one(client, target, name, text.encode("utf-8"), clock)
            if isinstance(outcome, PublishResult):
                outcome.changed = changed
                return outcome
            if outcome is not None:
                changed.append(name)
                status = outcome
    except (httpx.HTTPError, ValueError) as e:  # network failure, or an answer we can't read
        error = target.scrub(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        return PublishResult(ok=False, changed=changed, error=error)
    return PublishResult(ok=True, changed=changed, status=status)


def _digest(files: dict[str, str]) -> str:
    # JSON, not plain concatenation: {"a": "bc"} and {"ab": "c"} must differ.
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


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
