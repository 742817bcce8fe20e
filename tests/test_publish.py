"""Publishing the summary against a loopback stand-in for GitHub's contents API.

The stand-in enforces the rules that matter (auth, sha on update, 409 on a stale sha);
the Publisher runs as a real asyncio task, with a fake sleep that moves a FrozenClock.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pulsehook.clock import FrozenClock
from pulsehook.summary import render
from pulsehook.summary.model import Item
from pulsehook.summary.publish import (
    BACKOFF_CAP,
    Publisher,
    PublishResult,
    Target,
    publish_files,
    stable,
)
from pulsehook.summary.render import Snapshot

from .conftest import free_port, live

TOKEN = "ghp_S3cretT0kenNeverShown"
OWNER, REPO, BRANCH, DIRECTORY = "acme", "status", "main", "pulse"
FILES = {"summary.md": "# Status\n\nall OK\n", "summary.org": "* Status\nall OK\n"}


def blob_sha(content: bytes) -> str:
    """What git calls the file: sha1 over a "blob <size>" header and the bytes."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


@dataclass
class Call:
    method: str
    path: str
    status: int
    sha_sent: str | None = None  # PUT: the sha in the body
    sha_answered: str | None = None  # GET: the sha in the answer
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeGitHub:
    """The contents API of one repository and branch, kept in a dict (path -> bytes)."""

    url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    race: bytes | None = None  # another writer commits this just before our next PUT
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, status: int, count: int = 1, headers: dict[str, str] | None = None) -> None:
        """The next ``count`` requests answer ``status`` (with these headers)."""
        with self.lock:
            self.failures.extend([(status, headers or {})] * count)

    def text(self, name: str) -> str:
        with self.lock:
            return self.files[f"{DIRECTORY}/{name}"].decode()

    def puts(self) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == "PUT"]

    def record(self, request: Request, status: int, **kw: Any) -> None:
        path = request.path_params["path"]
        self.calls.append(Call(request.method, path, status, headers=dict(request.headers), **kw))

    async def contents(self, request: Request) -> Response:
        body = await request.json() if request.method == "PUT" else None
        with self.lock:
            return self.answer(request, body)

    def answer(self, request: Request, body: dict[str, Any] | None) -> Response:
        path = request.path_params["path"]
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {TOKEN}":
            self.record(request, 401)
            # Echoes what it got, so a client that quotes answers would leak the token.
            return JSONResponse({"message": f"Bad credentials ({auth})"}, status_code=401)
        if self.failures:
            status, headers = self.failures.pop(0)
            self.record(request, status)
            return JSONResponse({"message": "scripted"}, status_code=status, headers=headers)
        params = request.path_params
        branch = body.get("branch") if body else request.query_params.get("ref")
        if (params["owner"], params["repo"], branch) != (OWNER, REPO, BRANCH):
            self.record(request, 404)
            return JSONResponse({"message": "Not Found"}, status_code=404)
        if body is None:
            if path not in self.files:
                self.record(request, 404)
                return JSONResponse({"message": "Not Found"}, status_code=404)
            content = self.files[path]
            self.record(request, 200, sha_answered=blob_sha(content))
            encoded = base64.encodebytes(content).decode()  # wrapped, as GitHub does
            return JSONResponse(
                {"sha": blob_sha(content), "content": encoded, "encoding": "base64"}
            )
        if self.race is not None:
            self.files[path], self.race = self.race, None
        sent = body.get("sha")
        current = blob_sha(self.files[path]) if path in self.files else None
        if current is not None and sent != current:
            self.record(request, 409, sha_sent=sent)
            return JSONResponse({"message": f"{path} does not match {sent}"}, status_code=409)
        new = base64.b64decode(body["content"])
        self.files[path] = new
        status = 201 if current is None else 200
        self.record(request, status, sha_sent=sent)
        return JSONResponse({"content": {"path": path, "sha": blob_sha(new)}}, status_code=status)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    gh = FakeGitHub()
    route = "/repos/{owner}/{repo}/contents/{path:path}"
    app = Starlette(routes=[Route(route, gh.contents, methods=["GET", "PUT"])])
    with live(app) as server:
        gh.url = server.url
        yield gh


def target(gh: FakeGitHub, **kw: Any) -> Target:
    options: dict[str, Any] = {
        "api_url": gh.url,
        "owner": OWNER,
        "repo": REPO,
        "directory": DIRECTORY,
        "token": TOKEN,
        **kw,
    }
    return Target(**options)


class FakeSleep:
    """Records each wait and moves the clock instead of sleeping; ``during`` runs once."""

    def __init__(self, clock: FrozenClock, during: Callable[[], None] | None = None) -> None:
        self.clock = clock
        self.calls: list[float] = []
        self.during = during

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))
        during, self.during = self.during, None
        if during is not None:
            during()
        await asyncio.sleep(0)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=30))


async def publish(gh: FakeGitHub, files: dict[str, str], **kw: Any) -> PublishResult:
    clock = kw.pop("clock", None)
    async with httpx.AsyncClient(timeout=10) as client:
        return await publish_files(client, target(gh, **kw), files, clock=clock)


@contextlib.asynccontextmanager
async def running(publisher: Publisher) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(publisher.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)


async def until(check: Callable[[], bool], task: asyncio.Task[None]) -> None:
    async def poll() -> None:
        while not check():
            if task.done():
                task.result()  # surfaces the loop's exception
                raise AssertionError("the publisher loop ended")
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout=10)


async def settle() -> None:
    """Let the loop handle what it was just given (it needs no I/O to skip an offer)."""
    for _ in range(20):
        await asyncio.sleep(0)


def test_create_then_update_carries_the_sha(github: FakeGitHub) -> None:
    async def scenario() -> None:
        first = await publish(github, FILES)
        assert first == PublishResult(ok=True, changed=["summary.md", "summary.org"], status=201)
        old_sha = blob_sha(FILES["summary.md"].encode())

        second = await publish(github, {**FILES, "summary.md": "# Status\n\nCI failed\n"})
        assert second == PublishResult(ok=True, changed=["summary.md"], status=200)

        assert github.text("summary.md") == "# Status\n\nCI failed\n"
        assert github.text("summary.org") == FILES["summary.org"]
        creates, update = github.puts()[:2], github.puts()[2]
        assert [c.sha_sent for c in creates] == [None, None]
        get = github.calls[github.calls.index(update) - 1]  # the GET just before that PUT
        assert get.method == "GET"
        assert get.path == update.path == "pulse/summary.md"
        assert update.sha_sent == get.sha_answered == old_sha
        assert update.headers["accept"] == "application/vnd.github+json"
        assert update.headers["x-github-api-version"] == "2022-11-28"
        assert update.headers["user-agent"]

    run(scenario)


def test_identical_remote_content_is_not_written(github: FakeGitHub) -> None:
    async def scenario() -> None:
        await publish(github, FILES)
        before = len(github.calls)
        again = await publish(github, FILES)
        assert again.ok and again.changed == []
        assert [c.method for c in github.calls[before:]] == ["GET", "GET"]

    run(scenario)


def test_concurrent_writer_gets_one_retry_with_the_new_sha(github: FakeGitHub) -> None:
    async def scenario() -> None:
        await publish(github, FILES)
        github.race = b"someone else's edit\n"
        result = await publish(github, {"summary.md": "mine\n"})
        assert result.ok and result.changed == ["summary.md"]
        assert github.text("summary.md") == "mine\n"
        stale, fresh = github.puts()[-2:]
        assert (stale.status, fresh.status) == (409, 200)
        assert fresh.sha_sent == blob_sha(b"someone else's edit\n")

    run(scenario)


def test_publisher_skips_content_it_already_published(github: FakeGitHub) -> None:
    async def scenario() -> None:
        clock = FrozenClock()
        publisher = Publisher(target(github), clock, sleep=FakeSleep(clock))
        async with running(publisher) as task:
            publisher.offer(FILES)
            await until(lambda: publisher.published_count == 1, task)
            calls = len(github.calls)

            clock.advance(timedelta(minutes=5))
            publisher.offer(dict(FILES))  # equal content, a new dict
            await settle()
            assert len(github.calls) == calls  # not even a GET
            assert publisher.published_count == 1

            publisher.offer({**FILES, "summary.md": "changed\n"})
            await until(lambda: publisher.published_count == 2, task)
            assert github.text("summary.md") == "changed\n"

    run(scenario)


def test_5xx_is_retried_with_exponential_backoff(
    github: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        clock = FrozenClock()
        start = clock.now()
        sleep = FakeSleep(clock)
        publisher = Publisher(target(github), clock, sleep=sleep)
        github.fail(502, count=2)
        async with running(publisher) as task:
            publisher.offer(FILES)
            await until(lambda: publisher.published_count == 1, task)
        assert sleep.calls == [5.0, 10.0]
        assert publisher.last_published_at == start + timedelta(seconds=15)
        assert publisher.last_result is not None and publisher.last_result.ok
        assert github.text("summary.md") == FILES["summary.md"]
        assert len(github.puts()) == 2  # once per file, after the failures

    with caplog.at_level(logging.WARNING, logger="pulsehook"):
        run(scenario)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("502" in w for w in warnings)


def test_backoff_is_capped(github: FakeGitHub) -> None:
    async def scenario() -> None:
        clock = FrozenClock()
        sleep = FakeSleep(clock)
        publisher = Publisher(target(github), clock, sleep=sleep)
        github.fail(503, count=9)
        async with running(publisher) as task:
            publisher.offer(FILES)
            await until(lambda: publisher.published_count == 1, task)
        assert sleep.calls == [5, 10, 20, 40, 80, 160, 320, BACKOFF_CAP, BACKOFF_CAP]

    run(scenario)


def test_newer_offer_during_backoff_replaces_the_pending_one(github: FakeGitHub) -> None:
    async def scenario() -> None:
        clock = FrozenClock()
        newer = {**FILES, "summary.md": "newer\n"}
        # The fake sleep makes the offer while the loop is backing off.
        publisher = Publisher(
            target(github), clock, sleep=FakeSleep(clock, during=lambda: publisher.offer(newer))
        )
        github.fail(502)
        async with running(publisher) as task:
            publisher.offer(FILES)
            await until(lambda: publisher.published_count == 1, task)
            await settle()
        assert publisher.published_count == 1
        assert github.text("summary.md") == "newer\n"
        assert len(github.puts()) == 2

    run(scenario)


def test_at_most_one_publish_per_interval(github: FakeGitHub) -> None:
    async def scenario() -> None:
        clock = FrozenClock()
        start = clock.now()
        sleep = FakeSleep(clock)
        publisher = Publisher(target(github), clock, sleep=sleep)
        async with running(publisher) as task:
            await settle()  # the loop is waiting for an offer
            for n in range(3):  # a burst
                publisher.offer({"summary.md": f"burst {n}\n"})
            await until(lambda: publisher.published_count == 1, task)
            await settle()
            assert publisher.published_count == 1
            assert len(github.puts()) == 1
            assert github.text("summary.md") == "burst 2\n"
            assert sleep.calls == []

            clock.advance(timedelta(seconds=20))
            publisher.offer({"summary.md": "later\n"})  # within the interval: waits 40 s more
            await until(lambda: publisher.published_count == 2, task)
            assert sleep.calls == [40.0]
            assert publisher.last_published_at == start + timedelta(seconds=60)

            clock.advance(timedelta(seconds=61))
            publisher.offer({"summary.md": "after the interval\n"})  # no wait at all
            await until(lambda: publisher.published_count == 3, task)
            assert sleep.calls == [40.0]
            assert github.text("summary.md") == "after the interval\n"

    run(scenario)


def test_rate_limit_gives_retry_after_from_the_reset(github: FakeGitHub) -> None:
    async def scenario() -> None:
        clock = FrozenClock()
        reset = str(int(clock.now().timestamp()) + 120)
        rate_limited = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset}
        github.fail(403, headers=rate_limited)
        result = await publish(github, FILES, clock=clock)
        assert not result.ok and result.status == 403
        assert result.retry_after == 120.0
        assert result.error is not None and "rate limited" in result.error

        github.fail(429, headers={"retry-after": "30"})
        result = await publish(github, FILES, clock=clock)
        assert (result.status, result.retry_after) == (429, 30.0)

        # The loop waits what GitHub said, not its own backoff.
        sleep = FakeSleep(clock)
        publisher = Publisher(target(github), clock, sleep=sleep)
        github.fail(403, headers=rate_limited)
        async with running(publisher) as task:
            publisher.offer(FILES)
            await until(lambda: publisher.published_count == 1, task)
        assert sleep.calls == [120.0]

    run(scenario)


def test_auth_and_missing_repository_are_reported(github: FakeGitHub) -> None:
    async def scenario() -> None:
        denied = await publish(github, FILES, token="ghp_wrong")
        assert (denied.ok, denied.status) == (False, 401)
        assert denied.error is not None and "token rejected" in denied.error

        missing = await publish(github, FILES, repo="nope")
        assert (missing.ok, missing.status) == (False, 404)
        assert missing.error is not None and "acme/nope" in missing.error

    run(scenario)


def test_the_token_never_shows(github: FakeGitHub, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "ghp_Wr0ngTokenAlsoSecret"
    errors: list[str | None] = []

    async def failing_loop(where: Target) -> None:
        assert wrong not in repr(where) and TOKEN not in repr(where)
        clock = FrozenClock()
        sleep = FakeSleep(clock)
        publisher = Publisher(where, clock, sleep=sleep)
        async with running(publisher) as task:
            publisher.offer(FILES)
            await until(lambda: bool(sleep.calls), task)  # failed, logged, backing off
        assert publisher.last_result is not None
        errors.append(publisher.last_result.error)

    async def scenario() -> None:
        await failing_loop(target(github, token=wrong))
        await failing_loop(target(github, api_url=closed))
        github.fail(502)
        errors.append((await publish(github, FILES)).error)

    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with caplog.at_level(logging.DEBUG):
        run(scenario)
    assert all(errors) and len(errors) == 3
    assert "401" in str(errors[0]) and "***" in str(errors[0])  # the echo was scrubbed
    assert "Connect" in str(errors[1])
    for text in [*map(str, errors), caplog.text, *(str(r.args) for r in caplog.records)]:
        assert wrong not in text and TOKEN not in text
    assert any("401" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_publish_now_ignores_the_interval(github: FakeGitHub) -> None:
    async def scenario() -> None:
        clock = FrozenClock()
        publisher = Publisher(target(github), clock, sleep=FakeSleep(clock))
        nothing = await publisher.publish_now()
        assert not nothing.ok and nothing.error is not None

        publisher.offer(FILES)
        assert (await publisher.publish_now()).changed == ["summary.md", "summary.org"]
        publisher.offer({**FILES, "summary.md": "right away\n"})
        now = await publisher.publish_now()  # the clock has not moved
        assert now.ok and now.changed == ["summary.md"]
        assert github.text("summary.md") == "right away\n"
        assert publisher.published_count == 2 and publisher.last_result == now

    run(scenario)


def _generated(at: datetime, previous: str | None = None) -> tuple[dict[str, str], str]:
    """The summary files as the service renders them at ``at``, for one item whose
    content does not change; and the JSON's summary part, the next one's previous."""
    item = Item(
        path="acme/api/actions/CI",
        owner="acme",
        repo="api",
        kind="workflow",
        report="GOOD",
        note="success (push)",
        updated=datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
    )
    snapshot = Snapshot(items=[(item, "OK")], generated=at)
    body = render.text(snapshot, mode="md")
    document, part = render.dashboard_json(snapshot, previous, owner="acme", repo="status")
    return {"summary.md": body, "summary.md.json": document}, part


def test_a_new_generation_time_alone_is_not_a_commit(github: FakeGitHub) -> None:
    # The service's second and third regenerations of an unchanged summary: each
    # carries the one before as its previous_summary (the first has none).
    _, part = _generated(datetime(2026, 3, 2, 11, 0, tzinfo=UTC))
    first, part = _generated(datetime(2026, 3, 2, 12, 0, tzinfo=UTC), previous=part)
    later, _ = _generated(datetime(2026, 3, 2, 13, 0, tzinfo=UTC), previous=part)
    assert first != later  # the files do differ: their generation times
    assert all(stable(n, first[n]) == stable(n, later[n]) for n in first)

    async def scenario() -> None:
        written = await publish(github, first)
        assert sorted(written.changed) == ["summary.md", "summary.md.json"]
        commits = len(github.puts())
        # A restart, an idle hour: the same content, generated again. No commit.
        again = await publish(github, later)
        assert again.ok and again.changed == [] and len(github.puts()) == commits
        # The Publisher does not even look again.
        clock = FrozenClock()
        publisher = Publisher(target(github), clock, sleep=FakeSleep(clock))
        async with running(publisher) as task:
            publisher.offer(first)
            await until(lambda: publisher.published_count == 1, task)
            calls = len(github.calls)
            clock.advance(timedelta(minutes=5))
            publisher.offer(later)
            await settle()
            assert len(github.calls) == calls
        # What an item says did change: a commit.
        changed = {**first, "summary.md": first["summary.md"].replace("success", "failure")}
        assert (await publish(github, changed)).changed == ["summary.md"]

    run(scenario)


def test_stable_leaves_what_is_not_a_summary_alone() -> None:
    assert stable("summary.md.json", "not json {") == "not json {"
    assert stable("summary.md", "- updated: x\n- note") == "- updated:\n- note"
    assert stable("summary.org", "* Metadata\n- updated: 2026") == "* Metadata\n- updated:"
