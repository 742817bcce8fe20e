"""Missed-delivery recovery asks once and remembers it: the decisions (pure), passes
against the GitHub stand-in on a real store across restarts, and the service, which
looks at a hook soon after first seeing it and shows what came of each request."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pulsehook.app import create_app
from pulsehook.clock import FrozenClock, iso
from pulsehook.github.api import GitHubClient
from pulsehook.github.backfill import FIRST_LOOK, recover_missed
from pulsehook.github.recovery import (
    BACKOFF,
    MAX_ASKS,
    Outcome,
    Request,
    answered,
    decide,
)
from pulsehook.github.redeliver import REDELIVERY_WINDOW, HookRef, RecoveryReport
from pulsehook.runtime import open_store
from pulsehook.settings import Settings
from pulsehook.store import redeliveries
from pulsehook.store.db import NORMAL, Writer
from pulsehook.store.deliveries import Delivery, insert_batch

from . import stores
from .conftest import API_TOKEN, AUTH, SECRET, deliver, drained, live, payload, wait_for
from .github_standin import TOKEN, FakeGitHub, attempt, standin

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HOOKS = [HookRef(77, "acme", "api"), HookRef(88, "acme")]
HOOK = (77, "acme", "api")
MISSED = "/repos/acme/api/hooks/77/deliveries/1009/attempts"  # g-missed's only attempt


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=60))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- the decisions -------------------------------------------------------------------


def tried(did: int, when: datetime, code: int, guid: str = "g") -> tuple[datetime, Any]:
    return when, attempt(did, guid, iso(when), code)


def first(when: datetime = NOW - timedelta(hours=1)) -> Request:
    step = decide(
        "g", None, [tried(1, when, 502)], hook=HOOK, stored=False, now=NOW,
        window=REDELIVERY_WINDOW,
    )  # fmt: skip
    assert step is not None and step.ask == 1 and step.news == (Outcome.REQUESTED,)
    return answered(step.request, 202, None, NOW)


def again(old: Request, tries: list[Any], now: datetime, stored: bool = False) -> Any:
    return decide("g", old, tries, hook=HOOK, stored=stored, now=now, window=REDELIVERY_WINDOW)


def test_a_missed_delivery_is_asked_for_once_then_waited_for() -> None:
    asked = first()
    assert (asked.outcome, asked.asks, asked.answer, asked.delivery_id) == (
        Outcome.REQUESTED, 1, 202, 1,
    )  # fmt: skip
    assert asked.first_asked_at == asked.last_asked_at == NOW
    # Accepted and not yet attempted: never asked again, however long it takes...
    for later in (timedelta(minutes=6), timedelta(hours=3), timedelta(days=1)):
        assert again(asked, [], NOW + later) is None
    # ...until GitHub could no longer send it.
    gone = again(asked, [], NOW + REDELIVERY_WINDOW)
    assert gone.request.outcome is Outcome.EXPIRED and gone.news == (Outcome.EXPIRED,)


def test_a_failed_redelivery_is_asked_again_after_each_backoff_up_to_the_cap() -> None:
    request, did, now = first(), 1, NOW
    asks_at = [now]
    while True:
        did += 1
        failed_at = now + timedelta(seconds=30)
        tries = [tried(did, failed_at, 502)]
        seen = again(request, tries, failed_at)
        if request.asks == MAX_ASKS:
            assert seen.request.outcome is Outcome.ABANDONED
            assert seen.news == (Outcome.FAILED, Outcome.ABANDONED)
            break
        due = now + BACKOFF[request.asks - 1]
        assert seen.request.outcome is Outcome.FAILED and seen.request.next_ask_at == due
        assert seen.ask is None and seen.news == (Outcome.FAILED,)
        # Waiting for its turn: nothing new to remember.
        assert again(seen.request, tries, due - timedelta(seconds=1)) is None
        step = again(seen.request, tries, due)
        assert step.ask == did and step.news == (Outcome.REQUESTED,)
        request, now = answered(step.request, 202, None, due), due
        asks_at.append(now)
    assert len(asks_at) == MAX_ASKS
    gaps = [b - a for a, b in itertools.pairwise(asks_at)]
    assert gaps == list(BACKOFF)
    # Settled: never asked for again.
    assert again(seen.request, [tried(99, now, 502)], now + timedelta(days=1)) is None


def test_a_refused_request_and_an_unrecorded_answer_wait_their_backoff() -> None:
    step = decide(
        "g", None, [tried(1, NOW, 502)], hook=HOOK, stored=False, now=NOW,
        window=REDELIVERY_WINDOW,
    )  # fmt: skip
    assert step is not None
    refused = answered(step.request, 422, "HTTP 422: Validation Failed", NOW)
    assert refused.outcome is Outcome.FAILED and refused.next_ask_at == NOW + BACKOFF[0]
    assert refused.error == "HTTP 422: Validation Failed"
    assert again(refused, [], NOW + BACKOFF[0] - timedelta(seconds=1)) is None
    assert again(refused, [], NOW + BACKOFF[0]).ask == 1
    # Saved as asked, then the process died before GitHub's answer was saved: it may
    # or may not have been asked, so it is asked again only after its backoff.
    unrecorded = step.request
    assert unrecorded.answer is None
    assert again(unrecorded, [], NOW + timedelta(minutes=4)) is None
    assert again(unrecorded, [], NOW + BACKOFF[0]).request.asks == 2
    # No answer at all (the connection failed) counts as a refusal.
    lost = answered(step.request, None, "connection reset", NOW)
    assert lost.outcome is Outcome.FAILED and lost.answer == 0


def test_stored_deliveries_settle_and_old_ones_expire() -> None:
    asked = first()
    done = again(asked, [], NOW + timedelta(minutes=1), stored=True)
    assert done.request.outcome is Outcome.RECOVERED and done.news == (Outcome.RECOVERED,)
    assert done.request.settled_at == NOW + timedelta(minutes=1)
    assert again(done.request, [], NOW + timedelta(minutes=2), stored=True) is None
    # A guid never asked for and stored: nothing to remember.
    assert decide("g", None, [], hook=HOOK, stored=True, now=NOW, window=REDELIVERY_WINDOW) is None
    # Older than GitHub redelivers: counted once, never asked.
    old = NOW - REDELIVERY_WINDOW - timedelta(minutes=1)
    step = decide(
        "g", None, [tried(1, old, 500)], hook=HOOK, stored=False, now=NOW,
        window=REDELIVERY_WINDOW,
    )  # fmt: skip
    assert step is not None and step.ask is None and step.request.outcome is Outcome.EXPIRED
    assert again(step.request, [tried(1, old, 500)], NOW + timedelta(hours=1)) is None
    # A redelivery GitHub lists as arrived is being stored: nothing to ask.
    assert again(asked, [tried(2, NOW, 200)], NOW + timedelta(hours=1)) is None


# -- passes on a real store, across restarts -----------------------------------------


class Store:
    """The configured store (SQLite in a temp dir, or the test's PostgreSQL), opened
    and closed as a process would: ``restart`` is a new process's store."""

    def __init__(self, tmp: Path) -> None:
        self.settings = Settings(data_dir=tmp / "data", rules_dir=tmp / "none")
        self.writer, self.readers = open_store(self.settings)

    def restart(self) -> None:
        self.close()
        self.writer, self.readers = open_store(self.settings)

    def close(self) -> None:
        self.writer.close()
        self.readers.close()

    async def arrived(self, *guids: str) -> None:
        """The deliveries GitHub redelivered reached the endpoint and were stored."""
        batch = [
            Delivery(guid=g, event="push", payload=b"{}", content_type="application/json",
                     received_at=iso(NOW))
            for g in guids
        ]  # fmt: skip
        await self.writer.run(lambda db: insert_batch(db, batch), NORMAL)

    async def requests(self) -> dict[str, dict[str, Any]]:
        rows = await self.readers.run(lambda db: redeliveries.recent(db, limit=1000))
        return {r["guid"]: r for r in rows}


@contextlib.contextmanager
def store(tmp_path: Path) -> Iterator[Store]:
    found = Store(tmp_path)
    try:
        yield found
    finally:
        found.close()


async def recovery_pass(
    gh: FakeGitHub, writer: Writer, now: datetime, hooks: list[HookRef] = HOOKS
) -> RecoveryReport:
    gh.now = iso(now)  # GitHub's new attempts are made now
    async with GitHubClient(base_url=gh.url, token=TOKEN, clock=FrozenClock(now)) as api:
        return await recover_missed(api, writer, now, hooks)


def asked(gh: FakeGitHub, guid_path: str) -> int:
    return sum(1 for p in gh.redelivered if p.startswith(guid_path))


def asks_of(gh: FakeGitHub, hook: int = 77, not_for: tuple[str, ...] = ("/1005/",)) -> int:
    """Redelivery requests made to ``hook`` (g-twice's, 1005, left out)."""
    return sum(
        1 for p in gh.redelivered if f"/hooks/{hook}/" in p and not any(n in p for n in not_for)
    )


def test_failed_redeliveries_are_asked_once_per_backoff_step_across_passes_and_restarts(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        with standin() as gh, store(tmp_path) as db:
            await db.arrived("g-known")  # delivered, though GitHub lists it failed
            gh.failing.add("g-missed")  # every redelivery of it fails
            first = await recovery_pass(gh, db.writer, NOW)
            assert (first.missed, first.requested, first.expired, first.refused) == (4, 3, 1, 0)
            assert sorted(first.guids) == ["g-missed", "g-org-missed", "g-twice"]
            # GitHub redelivered g-twice and g-org-missed, and the endpoint stored them.
            await db.arrived("g-twice", "g-org-missed")
            # Passes every minute, then every ten, a restart every seventh.
            minutes = [*range(1, 41), *range(45, 156, 10), 156]
            asked_at = [0]
            for n, minute in enumerate(minutes):
                if n % 7 == 6:
                    db.restart()
                before = asks_of(gh)
                report = await recovery_pass(gh, db.writer, NOW + timedelta(minutes=minute))
                if asks_of(gh) > before:
                    asked_at.append(minute)
                    assert report.requested == 1 and asks_of(gh) == before + 1
                if minute == 1:
                    assert report.recovered == 2  # g-twice and g-org-missed, settled once
            # Asked at the first pass and after each backoff: 5 min, 30 min, 2 h.
            assert asked_at == [0, 5, 35, 155]
            assert len(asked_at) == MAX_ASKS
            # The last redelivery failed too: abandoned at the next pass, then left alone.
            assert (report.failed, report.abandoned) == (1, 1)
            db.restart()
            later = await recovery_pass(gh, db.writer, NOW + timedelta(hours=5))
            assert (later.requested, later.failed, later.abandoned, later.waiting) == (
                0,
                0,
                0,
                0,
            ), later
            assert asks_of(gh) == MAX_ASKS
            rows = await db.requests()
            assert rows["g-missed"]["outcome"] == "abandoned" and rows["g-missed"]["asks"] == 4
            assert rows["g-missed"]["answer"] == 202
            assert rows["g-twice"]["outcome"] == rows["g-org-missed"]["outcome"] == "recovered"
            assert rows["g-old"]["outcome"] == "expired" and rows["g-old"]["asks"] == 0
            assert "g-known" not in rows
            # g-twice and g-org-missed were asked for once each, ever.
            assert sum("/1005/" in p for p in gh.redelivered) == 1
            assert asks_of(gh, 88, ()) == 1

    run(scenario)


def test_an_accepted_redelivery_not_yet_sent_is_waited_for_not_asked_again(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        with standin() as gh, store(tmp_path) as db:
            await db.arrived("g-known", "g-twice", "g-org-missed")
            gh.pending.add("g-missed")  # accepted, never attempted
            hooks = HOOKS[:1]
            assert (await recovery_pass(gh, db.writer, NOW, hooks)).requested == 1
            for minute in (1, 6, 40, 180, 24 * 60):
                db.restart()
                report = await recovery_pass(gh, db.writer, NOW + timedelta(minutes=minute), hooks)
                assert (report.requested, report.failed, report.waiting) == (0, 0, 1)
            assert asks_of(gh) == 1
            # It arrives at last: recovered, counted once.
            await db.arrived("g-missed")
            done = await recovery_pass(gh, db.writer, NOW + timedelta(days=1, minutes=1), hooks)
            assert (done.recovered, done.waiting) == (1, 0)
            again = await recovery_pass(gh, db.writer, NOW + timedelta(days=1, minutes=2), hooks)
            assert again.recovered == 0
            rows = await db.requests()
            assert rows["g-missed"]["outcome"] == "recovered"
            assert rows["g-missed"]["settled_at"] == iso(NOW + timedelta(days=1, minutes=1))

    run(scenario)


def test_a_refused_request_is_asked_again_after_its_backoff_and_errors_are_reported(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        with standin() as gh, store(tmp_path) as db:
            await db.arrived("g-known", "g-twice", "g-missed")
            gh.refuse.add(2002)
            hooks = [*HOOKS, HookRef(99, "acme", "api")]  # hook 99 does not exist
            report = await recovery_pass(gh, db.writer, NOW, hooks)
            assert (report.requested, report.refused, report.waiting) == (0, 1, 1)
            assert [e.status for e in report.errors] == [404, 422]  # GitHub's, as data
            unreadable, refused = report.errors
            assert unreadable.startswith("hook 99 of acme/api: listing deliveries: HTTP 404")
            assert refused.startswith("hook 88 of organisation acme: redelivering g-org-missed:")
            assert "HTTP 422" in refused and refused.endswith("Validation Failed")
            row = (await db.requests())["g-org-missed"]
            assert (row["outcome"], row["answer"], row["asks"]) == ("failed", 422, 1)
            assert row["next_ask_at"] == iso(NOW + BACKOFF[0])
            assert "Validation Failed" in row["error"]
            soon = await recovery_pass(gh, db.writer, NOW + timedelta(minutes=4), hooks)
            assert soon.refused == 0 and asks_of(gh, 88, ()) == 1
            gh.refuse.clear()
            due = await recovery_pass(gh, db.writer, NOW + BACKOFF[0], hooks)
            assert (due.requested, due.refused) == (1, 0) and asks_of(gh, 88, ()) == 2
            row = (await db.requests())["g-org-missed"]
            assert (row["outcome"], row["answer"], row["asks"], row["error"]) == (
                "requested", 202, 2, None,
            )  # fmt: skip

    run(scenario)


def test_the_first_look_counts_what_is_too_old_once_and_later_looks_start_late(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        with standin() as gh, store(tmp_path) as db:
            await db.arrived("g-known", "g-twice", "g-missed", "g-org-missed")
            hooks = HOOKS[:1]
            report = await recovery_pass(gh, db.writer, NOW, hooks)
            # Four days back: g-old (3 days 6 hours) is listed and expired; older is not.
            assert at("2026-02-26T06:00:00Z") < NOW - FIRST_LOOK
            assert (report.expired, report.requested) == (1, 0)
            assert not any("cursor=v1_1001" in p for p in gh.paths())
            later = await recovery_pass(gh, db.writer, NOW + timedelta(hours=1), hooks)
            assert later.expired == 0
            # The second look starts an hour before the first: one page, not three.
            listings = [
                p for p in gh.paths() if p.startswith("/repos/acme/api/hooks/77/deliveries?")
            ]
            assert len(listings) == 3 + 1
            body = await db.readers.run(redeliveries.overview)
            assert body["requests"]["expired"] == 1
            assert body["last_pass"]["hooks"] == 1 and body["last_pass"]["expired"] == 0

    run(scenario)


# -- the service ---------------------------------------------------------------------


def service_settings(tmp_path: Path, gh: FakeGitHub, **kw: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        rules_dir=tmp_path / "none",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        github_token=SecretStr(TOKEN),
        github_api_url=gh.url,
        recovery_check_seconds=0.2,
        **kw,
    )


def hooked(client: httpx.Client, guid: str, **headers: str) -> httpx.Response:
    """A delivery from hook 77 of acme/api: it tells pulsehook the hook exists."""
    run_ = copy.deepcopy(payload("workflow_run.completed"))
    run_["repository"].update(full_name="acme/api", id=70001, name="api")
    return deliver(
        client,
        "workflow_run",
        run_,
        guid=guid,
        **{
            "X-GitHub-Hook-ID": "77",
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            **headers,
        },
    )


def passes(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        getattr(r, "fields", {})
        for r in caplog.records
        if r.name == "pulsehook.github.backfill" and r.getMessage() == "redelivery pass"
    ]


def test_a_hook_first_seen_while_running_is_recovered_at_once_and_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pulsehook.github.backfill")
    clock = FrozenClock(NOW)
    with standin() as gh:
        gh.failing.add("g-missed")
        # No scan, and a full pass only hourly: the hook's pass comes from seeing it.
        app = create_app(service_settings(tmp_path, gh, scan_interval=3600), clock=clock)
        with live(app) as srv, httpx.Client(base_url=srv.url, headers=AUTH, timeout=10) as client:
            wait_for(lambda: client.get("/readyz").status_code == 200)
            # The pass at start: no hook known yet, nothing asked.
            wait_for(lambda: any(p.get("why") == "start" for p in passes(caplog)), timeout=20)
            assert client.get("/api/v1/recovery").json()["recent"] == []
            assert hooked(client, "g-known").status_code == 202
            seen = datetime.now(UTC)
            wait_for(lambda: any(p.get("why") == "new hook" for p in passes(caplog)), timeout=20)
            took = (datetime.now(UTC) - seen).total_seconds()
            assert took < 10, took  # within a check, far inside the minute promised
            assert MISSED in gh.redelivered
            [line] = [p for p in passes(caplog) if p.get("why") == "new hook"]
            assert (line["hooks"], line["requested"], line["expired"]) == (1, 2, 1)
            assert line["failed_again"] == 0 and line["waiting"] == 2
            # The API lists each request and what came of it.
            body = client.get("/api/v1/recovery").json()
            rows = {r["guid"]: r for r in body["recent"]}
            assert set(rows) == {"g-missed", "g-twice", "g-old"}
            assert rows["g-missed"]["outcome"] == "requested" and rows["g-missed"]["asks"] == 1
            assert rows["g-missed"]["hook"] == {"id": 77, "owner": "acme", "repo": "api"}
            assert rows["g-old"]["outcome"] == "expired"
            assert body["requests"]["requested"] == 2 and body["last_pass"]["requested"] == 2
            only = client.get("/api/v1/recovery", params={"outcome": "expired"}).json()
            assert [r["guid"] for r in only["recent"]] == ["g-old"]
            bad = client.get("/api/v1/recovery", params={"outcome": "lost"})
            assert bad.status_code == 422
            # Readiness and the metrics carry it too.
            ready = client.get("/readyz").json()
            assert ready["status"] == "ready" and ready["recovery"]["requests"]["expired"] == 1
            text = client.get("/metrics").text
            assert 'pulsehook_redelivery_requests_total{outcome="requested"} 2.0' in text
            assert 'pulsehook_redelivery_requests_remembered{outcome="expired"} 1.0' in text
            assert "pulsehook_recovery_last_pass_timestamp_seconds" in text
            page = client.get("/")
            assert page.status_code == 200 and "Missed deliveries" in page.text
            assert "No missed delivery has been recovered yet." in page.text
            # GitHub redelivers g-twice, and it is stored.
            assert hooked(client, "g-twice").status_code == 202
            # Five minutes on, the follow-up finds g-twice stored and g-missed's
            # redelivery failed, and asks for g-missed again, once.
            asked = len(gh.redelivered)
            gh.now = iso(NOW + BACKOFF[0])
            clock.advance(BACKOFF[0])
            wait_for(lambda: any(p.get("why") == "follow-up" for p in passes(caplog)), timeout=20)
            follow = [p for p in passes(caplog) if p.get("why") == "follow-up"]
            assert follow[0]["failed_again"] == 1 and follow[0]["requested"] == 1
            assert follow[0]["recovered"] == 1
            shown = client.get("/").text
            assert "were last recovered at" in shown and iso(NOW + BACKOFF[0]) in shown
            assert gh.redelivered.count(MISSED) == 1
            assert len(gh.redelivered) == asked + 1
    assert not any("/1008/" in p for p in gh.redelivered)  # g-known was stored


def test_a_pass_follows_an_outage_once_5xx_answers_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pulsehook.github.backfill")
    clock = FrozenClock(NOW)
    with standin() as gh:
        settings = service_settings(tmp_path, gh, scan_interval=3600, busy_timeout_ms=200)
        with (
            live(create_app(settings, clock=clock)) as srv,
            httpx.Client(base_url=srv.url, headers=AUTH, timeout=10) as client,
        ):
            wait_for(lambda: any(p.get("why") == "start" for p in passes(caplog)), timeout=20)
            assert hooked(client, "g-known").status_code == 202
            wait_for(lambda: any(p.get("why") == "new hook" for p in passes(caplog)), timeout=20)
            # The store is locked: GitHub is answered 503 and lists the delivery failed.
            with stores.write_lock(settings.db_path):
                assert hooked(client, "g-outage").status_code == 503
            gh.deliveries["/repos/acme/api/hooks/77/deliveries"].insert(
                0, attempt(1011, "g-outage", iso(NOW), 503)
            )
            assert not any(p.get("why") == "outage" for p in passes(caplog))
            clock.advance(timedelta(seconds=61))  # a minute with no 5xx: it is over
            wait_for(lambda: any(p.get("why") == "outage" for p in passes(caplog)), timeout=20)
            assert "/repos/acme/api/hooks/77/deliveries/1011/attempts" in gh.redelivered
            wait_for(lambda: drained(client))


def test_a_pass_runs_at_start_and_what_was_asked_survives_the_restart(tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    with standin() as gh:
        settings = service_settings(tmp_path, gh, scan_interval=3600)
        gh.pending.add("g-missed")
        for start in range(2):
            with (
                live(create_app(settings, clock=clock)) as srv,
                httpx.Client(base_url=srv.url, headers=AUTH, timeout=10) as client,
            ):
                if start == 0:
                    assert hooked(client, "g-known").status_code == 202
                wait_for(lambda: MISSED in gh.redelivered, timeout=20)
                # At start, the pass over the hooks already known.
                wait_for(
                    lambda: (
                        (client.get("/api/v1/recovery").json()["last_pass"] or {}).get("at")
                        == iso(clock.now())
                    ),
                    timeout=20,
                )
            clock.advance(timedelta(minutes=10))
        # Accepted and not yet sent: asked once, though the service started twice.
        assert gh.redelivered.count(MISSED) == 1
