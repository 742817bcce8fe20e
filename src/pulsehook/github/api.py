"""A small client for GitHub's REST API: pagination, ETags and rate limits.

One request at a time (GitHub asks integrations not to make concurrent requests).
GETs are conditional: the last ETag seen for a URL is sent as ``If-None-Match`` and
a 304 (which costs no rate limit) hands back the body remembered with it; a caller
that keeps its own ETags (the scan's ledger) passes ``etag=`` and ``cache=False`` and
gets the 304 itself. A metered client (``metered``) stops before a request that would
spend more than the meter's share of the rate limit. Rate limits (primary, secondary,
``Retry-After``) are waited out with the injected clock and sleep, never past
``max_wait`` nor more than ``max_retries`` times; past those, and at once without a
token (60 requests an hour), RateLimited says how long to wait. A caller that keeps
its own retry schedule (publishing) sets both to 0. The token is only ever put in the
Authorization header: never in a log line or error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx

from ..clock import Clock, SystemClock
from ..errors import PulsehookError
from ..retry_after import parse_retry_after
from .budget import Share
from .response import SHORT, Response, decode

log = logging.getLogger(__name__)

API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
UNAUTHENTICATED_LIMIT = "GitHub API rate limit exceeded — set GITHUB_TOKEN"
SECONDARY_WAIT = 60.0  # GitHub: without retry-after, wait at least a minute
RESET_MARGIN = 1.0  # the reset epoch is rounded down; a second more avoids one wasted retry
SERVER_BACKOFF = 2.0  # 502/503/504: 2 s, then 4 s, ...

Sleep = Callable[[float], Awaitable[None]]


class GitHubError(PulsehookError):
    """A GitHub API request failed; ``status`` is the HTTP status, if there was an answer."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(GitHubError):
    """The rate limit cannot be waited out here: every further request would fail too.

    ``retry_after``: seconds until GitHub takes requests again, as far as it said.
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class Failure(str):
    """An error as a report lists it: its text, and ``status``, the HTTP status GitHub
    answered (None: no answer, or not an HTTP failure). A str: it reads as its text."""

    status: int | None

    def __new__(cls, text: str, status: int | None = None) -> Failure:
        made = super().__new__(cls, text)
        made.status = status
        return made


def failure(where: str, exc: Exception) -> Failure:
    """``where: exc`` as a report's error, with GitHub's status when ``exc`` carries one."""
    return Failure(f"{where}: {exc}", exc.status if isinstance(exc, GitHubError) else None)


class GitHubClient:
    def __init__(
        self,
        *,
        base_url: str = API_URL,
        token: str | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        max_wait: float = 900.0,
        max_retries: int = 3,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token or None
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._clock: Clock = clock or SystemClock()
        self._sleep: Sleep = sleep or asyncio.sleep
        self._meter: Share | None = None
        self._meter_until: float | None = None  # epoch: how long a metered block may wait
        self._memory: dict[str, tuple[str, Any, str | None]] = {}  # url -> etag, body, link
        self._lock = asyncio.Lock()
        self._blocked_until: float | None = None  # epoch: the budget is spent until then
        self.max_wait = max_wait
        self.max_retries = max_retries
        self.requests = 0  # answers received, 304s included
        self.not_modified = 0  # of which 304
        self.graphql_requests = 0  # of which GraphQL queries

    @property
    def clock(self) -> Clock:
        """The clock rate-limit waits (and a scan round's times) are measured with."""
        return self._clock

    def __repr__(self) -> str:  # never the token
        return f"GitHubClient({self.base_url!r}, token={'set' if self._token else 'none'})"

    async def __aenter__(self) -> GitHubClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            # Links come from GitHub's answers; never send the token to another host.
            if httpx.URL(path).netloc != httpx.URL(self.base_url).netloc:
                raise GitHubError(f"refusing to follow a link to another host: {path[:SHORT]}")
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "pulsehook",
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _remember(self, url: str, rsp: httpx.Response, body: Any) -> None:
        etag = rsp.headers.get("etag")
        if rsp.status_code == 200 and etag:
            self._memory[url] = (etag, body, rsp.headers.get("link"))

    @contextlib.contextmanager
    def metered(self, share: Share, *, wait_until: float | None = None) -> Iterator[Share]:
        """Within the block, every request counts against ``share`` (ShareSpent past it).

        ``wait_until`` (epoch): a request that finds the share spent waits for the
        window's reset when that comes before then, instead of giving up. GitHub
        names the reset in whole seconds, so a round that starts just before the
        window its predecessor opened is over would otherwise scan nothing.
        """
        previous = self._meter, self._meter_until
        self._meter, self._meter_until = share, wait_until
        try:
            yield share
        finally:
            self._meter, self._meter_until = previous

    async def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        etag: str | None = None,
        cache: bool = True,
    ) -> Response:
        """GET ``path`` (or a full URL from a Link header); any status comes back as is.

        ``cache=False``: nothing is looked up or remembered here; with ``etag`` the
        request is conditional and a 304 comes back as such, without a body.
        """
        return await self._request("GET", path, params=params, etag=etag, cache=cache)

    async def post(self, path: str, json: Any = None) -> Response:
        return await self._request("POST", path, json=json)

    async def put(self, path: str, json: Any = None) -> Response:
        return await self._request("PUT", path, json=json)

    @property
    def graphql_url(self) -> str:
        """GitHub's GraphQL endpoint beside this REST API (``/api/graphql`` on GHES)."""
        if self.base_url.endswith("/api/v3"):
            return self.base_url.removesuffix("/v3") + "/graphql"
        return f"{self.base_url}/graphql"

    async def graphql(self, request: dict[str, Any]) -> Response:
        """POST a GraphQL ``{"query", "variables"}``; the answer as is (errors in its body)."""
        rsp = await self._request("POST", self.graphql_url, json=request)
        self.graphql_requests += 1
        return rsp

    async def paginate(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        cache: bool = True,
    ) -> AsyncIterator[Any]:
        """Every item of every page, following ``Link: <...>; rel="next"`` as given.

        ``key``: where the list is when pages are objects (``workflow_runs``).
        Raises GitHubError for an answer other than 2xx.
        """
        url: str | None = path
        query = params
        while url is not None:
            rsp = await self.get(url, query, cache=cache)
            if not rsp.ok:
                raise self.error(rsp)
            items = rsp.body.get(key) if key and isinstance(rsp.body, dict) else rsp.body
            if not isinstance(items, list):
                raise GitHubError(f"GET {rsp.url}: expected a list", status=rsp.status)
            for item in items:
                yield item
            url, query = rsp.link("next"), None  # the next link carries the whole query

    def error(self, rsp: Response) -> GitHubError:
        """The error for an answer the caller cannot use."""
        text = f"HTTP {rsp.status} on {httpx.URL(rsp.url).raw_path.decode()}"
        return GitHubError(
            self._scrub(f"{text}: {rsp.message}" if rsp.message else text), status=rsp.status
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        etag: str | None = None,
        cache: bool = True,
    ) -> Response:
        async with self._lock:
            request = self._http.build_request(
                method, self._url(path), params=params, json=json, headers=self._headers()
            )
            url = str(request.url)
            cached = self._memory.get(url) if method == "GET" and cache else None
            if cached is not None:
                request.headers["If-None-Match"] = cached[0]
            elif etag is not None:
                request.headers["If-None-Match"] = etag
            retries = 0
            while True:
                await self._wait_for_budget()
                if self._meter is not None:
                    await self._wait_for_share(self._meter)
                    self._meter.before(self._clock.now().timestamp())
                try:
                    rsp = await self._http.send(request)
                except httpx.HTTPError as exc:
                    reason = self._scrub(f"{type(exc).__name__}: {exc}")
                    raise GitHubError(f"{method} {request.url.path}: {reason}") from exc
                self.requests += 1
                if self._meter is not None:
                    self._meter.after(rsp.status_code, rsp.headers, self._clock.now().timestamp())
                self._note_budget(rsp)
                log.debug("%s %s -> %s", method, request.url.path, rsp.status_code)
                if rsp.status_code == 304 and cached is None:
                    self.not_modified += 1
                    return Response(304, None, rsp.headers, url)
                if rsp.status_code == 304 and cached is not None:
                    self.not_modified += 1
                    link = rsp.headers.get("link") or cached[2]
                    headers = httpx.Headers(rsp.headers)
                    if link:
                        headers["link"] = link
                    return Response(200, cached[1], headers, url, cached=True)
                body = decode(rsp)
                wait = self._retry_wait(rsp, body, retries)
                if wait is None:
                    if method == "GET" and cache:
                        self._remember(url, rsp, body)
                    return Response(rsp.status_code, body, rsp.headers, url)
                retries += 1
                log.warning(
                    "GitHub answered %s on %s; retrying in %.0f s (%d/%d)",
                    rsp.status_code,
                    request.url.path,
                    wait,
                    retries,
                    self.max_retries,
                )
                await self._sleep(wait)

    def _retry_wait(self, rsp: httpx.Response, body: Any, retries: int) -> float | None:
        """Seconds to wait before retrying, None to answer; RateLimited if it cannot be."""
        status = rsp.status_code
        if status in (502, 503, 504):
            return SERVER_BACKOFF * 2**retries if retries < self.max_retries else None
        if status not in (403, 429):
            return None
        if rsp.headers.get("x-ratelimit-resource") == "graphql":
            return None  # the caller reads the same another way rather than wait for GraphQL
        message = str(body.get("message") or "") if isinstance(body, dict) else ""
        header = rsp.headers.get("retry-after")
        primary = rsp.headers.get("x-ratelimit-remaining") == "0"
        secondary = "secondary rate limit" in message.lower()
        if not (header is not None or primary or secondary or status == 429):
            return None  # a plain refusal (no access, a feature disabled)
        said = parse_retry_after(header, self._clock.now())
        reset = self._until_reset(rsp) if primary and said is None else None
        if said is not None:
            wait = said
        elif reset is not None:
            said, wait = reset, reset + RESET_MARGIN
        else:
            said = wait = SECONDARY_WAIT * 2**retries
        if self._token is None:
            raise RateLimited(UNAUTHENTICATED_LIMIT, status=status, retry_after=said)
        if retries >= self.max_retries:
            raise RateLimited(
                f"GitHub API rate limit exceeded: still limited after {retries} retries"
                if retries
                else f"GitHub API rate limit exceeded: try again in {said:.0f} s",
                status=status,
                retry_after=said,
            )
        self._check_wait(wait, status, said)
        return wait

    def _until_reset(self, rsp: httpx.Response) -> float | None:
        """Seconds until the window GitHub named in ``x-ratelimit-reset`` (an epoch) is over."""
        try:
            reset = float(rsp.headers["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return None
        return max(0.0, reset - self._clock.now().timestamp())

    def _check_wait(self, wait: float, status: int | None, said: float) -> None:
        if wait > self.max_wait:
            raise RateLimited(
                f"GitHub API rate limit exceeded: it resets in {wait:.0f} s,"
                f" longer than the {self.max_wait:.0f} s allowed to wait",
                status=status,
                retry_after=said,
            )

    def _note_budget(self, rsp: httpx.Response) -> None:
        """After the last request of the budget, the next one waits for the reset."""
        if rsp.headers.get("x-ratelimit-resource", "core") != "core":
            return  # GraphQL's points (or search's) spent do not stop REST requests
        if rsp.status_code < 400 and rsp.headers.get("x-ratelimit-remaining") == "0":
            try:
                self._blocked_until = float(rsp.headers["x-ratelimit-reset"])
            except (KeyError, ValueError):
                self._blocked_until = None

    async def _wait_for_share(self, share: Share) -> None:
        now = self._clock.now().timestamp()
        if share.window is None or self._meter_until is None or share.allowance(now) != 0:
            return
        resume = share.window + RESET_MARGIN
        if resume <= self._meter_until:
            log.info("scan share spent; waiting %.0f s for the rate-limit reset", resume - now)
            await self._sleep(max(0.0, resume - now))

    async def _wait_for_budget(self) -> None:
        if self._blocked_until is None:
            return
        wait = self._blocked_until - self._clock.now().timestamp()
        self._blocked_until = None
        if wait <= 0:
            return
        if self._token is None:
            raise RateLimited(UNAUTHENTICATED_LIMIT, retry_after=wait)
        self._check_wait(wait + RESET_MARGIN, None, wait)
        wait += RESET_MARGIN
        log.warning("GitHub rate limit spent; waiting %.0f s for the reset", wait)
        await self._sleep(wait)
