"""The scan within GitHub's rate limit: its share, its order, its rounds, its report.

The arithmetic (``Share``, ``plan``) is checked as data; the rounds run against the
loopback stand-in with its rate limit enforced and a frozen clock that each request
moves by a second, so windows and round times pass without sleeping.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from pulsehook.clock import FrozenClock, iso
from pulsehook.github.api import GitHubClient
from pulsehook.github.backfill import StoreLedger
from pulsehook.github.budget import Share, ShareSpent
from pulsehook.github.scan import (
    DUE,
    NEW,
    PUSHED,
    SHARE_SPENT,
    TIME_UP,
    Listed,
    Pace,
    ScanReport,
    plan,
    scan,
)
from pulsehook.store.deliveries import Delivery
from pulsehook.store.scans import Scanned

from .github_standin import TOKEN, FakeGitHub, Site, repository, standin

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EPOCH = int(NOW.timestamp())


def headers(limit: int, remaining: int, reset: int) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(reset),
        "x-ratelimit-resource": "core",
    }


# -- the share, as arithmetic -------------------------------------------------------------


def test_the_share_counts_every_answer_but_a_304() -> None:
    share = Share(0.5)
    assert share.allowance(EPOCH) is None  # nothing known before the first answer
    share.after(200, headers(100, 99, EPOCH + 3600), EPOCH)
    share.after(404, headers(100, 98, EPOCH + 3600), EPOCH)
    share.after(304, headers(100, 98, EPOCH + 3600), EPOCH)
    assert share.spent == 2 and share.allowance(EPOCH) == 48
    for n in range(48):
        share.before(EPOCH)
        share.after(200, headers(100, 97 - n, EPOCH + 3600), EPOCH)
    with pytest.raises(ShareSpent, match="50 of 100"):
        share.before(EPOCH)
    # A new window: the scan starts again at nothing.
    share.before(EPOCH + 3600)
    share.after(200, headers(100, 99, EPOCH + 7200), EPOCH + 3600)
    assert (share.spent, share.window, share.allowance(EPOCH + 3600)) == (1, EPOCH + 7200, 49)


def test_the_share_leaves_the_token_s_other_users_their_part() -> None:
    share = Share(0.75)
    # Others spent 90 of 100 before the scan's first request: 10 left, 25 theirs.
    share.after(200, headers(100, 10, EPOCH + 3600), EPOCH)
    assert share.allowance(EPOCH) == 0
    with pytest.raises(ShareSpent):
        share.before(EPOCH)
    other = Share(0.75)
    other.after(200, headers(100, 60, EPOCH + 3600), EPOCH)
    assert other.allowance(EPOCH) == 35  # what is left less the others' quarter
    # Answers about another limit (search) are not the scan's.
    other.after(200, {**headers(30, 0, EPOCH + 60), "x-ratelimit-resource": "search"}, EPOCH)
    assert other.spent == 1 and other.limit == 100


def test_the_share_survives_a_restart_only_within_its_window() -> None:
    share = Share(0.5)
    for _ in range(7):
        share.after(200, headers(100, 90, EPOCH + 3600), EPOCH)
    restored = Share.load(0.5, share.dump())
    assert restored.spent == 7 and restored.allowance(EPOCH) == 43
    assert restored.allowance(EPOCH + 3600) == 50  # that window is over
    assert Share.load(0.5, {"window": "x", "spent": 9}).spent == 0
    assert Share.load(0.5, None).allowance(EPOCH) is None


# -- the order, as data -------------------------------------------------------------------


def listed(rid: int, pushed: str | None) -> Listed:
    return Listed({"id": rid, "full_name": f"acme/r{rid}", "pushed_at": pushed})


def test_plan_pushed_first_then_never_scanned_then_longest_unscanned() -> None:
    ledger = {
        1: Scanned(1, "acme/r1", "2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z"),  # pushed since
        2: Scanned(2, "acme/r2", "2026-02-01T00:00:00Z", "2026-03-02T11:00:00Z"),  # fresh
        3: Scanned(3, "acme/r3", "2026-02-01T00:00:00Z", "2026-02-28T00:00:00Z"),  # due
        4: Scanned(4, "acme/r4", "2026-02-01T00:00:00Z", "2026-02-27T00:00:00Z"),  # due, older
        7: Scanned(7, "acme/r7", "2026-02-01T00:00:00Z", "2026-03-02T10:00:00Z"),  # pushed since
    }
    found = [
        listed(1, "2026-03-02T09:00:00Z"),
        listed(2, "2026-02-01T00:00:00Z"),
        listed(3, "2026-02-01T00:00:00Z"),
        listed(4, "2026-02-01T00:00:00Z"),
        listed(5, "2026-01-01T00:00:00Z"),
        listed(6, None),  # an empty repository: never pushed
        listed(7, "2026-03-02T11:30:00Z"),
        listed(8, "2026-03-02T11:00:00Z"),
    ]
    order = plan(found, ledger, due_before="2026-03-01T12:00:00Z")
    assert [(why, item.repo_id) for why, item in order] == [
        (PUSHED, 7),
        (PUSHED, 1),
        (NEW, 8),
        (NEW, 5),
        (NEW, 6),
        (DUE, 4),
        (DUE, 3),
    ]


# -- rounds against the stand-in ----------------------------------------------------------


def many(gh: FakeGitHub, count: int) -> None:
    """``count`` more repositories in acme, pushed an hour apart (the newest first)."""
    template = gh.sites["acme/legacy"]
    for n in range(count):
        name = f"acme/many{n:02d}"
        pushed = iso(NOW - timedelta(hours=n + 1))
        repo = repository(80000 + n, name, "main", pushed_at=pushed, archived=False)
        gh.sites[name] = Site(
            repo,
            runs=[],
            alerts=[],
            commits=[],
            pulls=[],
            statuses=[],
            profile=copy.deepcopy(template.profile),
            readme=True,
        )


async def round_(
    gh: FakeGitHub, clock: FrozenClock, ledger: StoreLedger, pace: Pace
) -> tuple[ScanReport, list[str]]:
    found: list[str] = []

    async def sink(batch: list[Delivery]) -> None:
        found.extend(d.guid for d in batch)

    async def sleep(seconds: float) -> None:
        clock.advance(timedelta(seconds=seconds))

    async with GitHubClient(base_url=gh.url, token=TOKEN, clock=clock, sleep=sleep) as api:
        report = await scan(api, org="acme", repos=None, ledger=ledger, sink=sink, pace=pace)
    return report, found


def rated(gh: FakeGitHub, clock: FrozenClock, limit: int) -> None:
    gh.rate_limit = limit
    gh.epoch = lambda: clock.now().timestamp()
    gh.tick = lambda: clock.advance(timedelta(seconds=1))


def test_a_round_stops_at_its_share_and_the_next_window_goes_on(ledger: StoreLedger) -> None:
    async def scenario() -> None:
        clock = FrozenClock(NOW)
        with standin() as gh:
            many(gh, 20)  # 23 repositories: 12 listing pages of 2, about 5 requests each
            rated(gh, clock, 100)
            pace = Pace(share=0.5)
            first, _ = await round_(gh, clock, ledger, pace)
            assert first.stopped == SHARE_SPENT
            assert gh.charged == [50]  # exactly the share: never a request past it
            assert first.spent == 50 and first.allowed == 50
            done = len(first.repos)
            assert 0 < done < 23 and first.behind == {NEW: 23 - done}
            # The newest pushes first.
            assert first.repos[:2] == ["acme/many00", "acme/many01"]
            # Later in the same window: the share is spent, the round says so at once.
            again, _ = await round_(gh, clock, ledger, pace)
            assert again.stopped == SHARE_SPENT and again.repos == []
            assert gh.charged == [50]
            # A new window: the rest, in order, within the new share.
            clock.advance(timedelta(hours=1))
            rounds = []
            while True:
                report, _ = await round_(gh, clock, ledger, pace)
                rounds.append(report)
                if report.backlog == 0:
                    break
                clock.advance(timedelta(hours=1))
                assert len(rounds) < 10
            assert all(spent <= 50 for spent in gh.charged)
            scanned = [*first.repos, *[r for x in rounds for r in x.repos]]
            assert len(scanned) == len(set(scanned)) == 23  # each once, none skipped

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))


def test_a_pushed_repository_goes_first_and_unchanged_ones_cost_nothing(
    ledger: StoreLedger,
) -> None:
    async def scenario() -> None:
        clock = FrozenClock(NOW)
        with standin() as gh:
            many(gh, 4)
            rated(gh, clock, 5000)
            first, _ = await round_(gh, clock, ledger, Pace())
            assert first.backlog == 0 and len(first.repos) == 7
            # An hour on, one repository is pushed to: it alone is scanned.
            clock.advance(timedelta(hours=1))
            gh.sites["acme/many03"].repo["pushed_at"] = iso(clock.now())
            second, found = await round_(gh, clock, ledger, Pace())
            assert second.repos == ["acme/many03"]
            assert f"scan:repo:80003:{gh.sites['acme/many03'].repo['updated_at']}:" in found[0]
            # A day on, every repository is due again; nothing changed, so apart from
            # the listing (4 pages) every answer is a free 304.
            clock.advance(timedelta(days=1))
            third, _ = await round_(gh, clock, ledger, Pace())
            assert len(third.repos) == 7 and third.behind == {}
            assert third.not_modified > 25
            charged = third.requests - third.not_modified
            # The listing's pages, and the community profile's 404s (an answer, so counted).
            assert gh.charged[-1] == charged <= 4 + 7  # a new window: the round's alone
            assert third.oldest_scan is not None
            assert third.oldest_scan >= iso(NOW + timedelta(days=1, hours=1))

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))


def test_a_round_ends_on_time_and_the_rest_waits(ledger: StoreLedger) -> None:
    async def scenario() -> None:
        clock = FrozenClock(NOW)
        with standin() as gh:
            many(gh, 10)
            rated(gh, clock, 5000)  # each request a second: a repository takes about 6
            report, _ = await round_(gh, clock, ledger, Pace(seconds=30))
            assert report.stopped == TIME_UP
            done = len(report.repos)
            assert 2 <= done <= 6 and report.backlog == 13 - done

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))


def test_the_service_reports_how_far_behind_the_scan_is(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from pulsehook.app import create_app
    from pulsehook.settings import Settings

    from .conftest import API_TOKEN, AUTH, SECRET, live, wait_for

    clock = FrozenClock(NOW)
    with standin() as gh:
        many(gh, 20)
        rated(gh, clock, 100)
        settings = Settings(
            data_dir=tmp_path / "data",
            rules_dir=tmp_path / "none",
            webhook_secret=SecretStr(SECRET),
            api_token=SecretStr(API_TOKEN),
            github_token=SecretStr(TOKEN),
            github_api_url=gh.url,
            scan_org="acme",
            scan_interval=3600,
            scan_share=0.5,
        )
        app = create_app(settings, clock=clock)
        with live(app) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
            wait_for(lambda: client.get("/readyz").json().get("scan") is not None, timeout=20)
            ready = client.get("/readyz").json()
            assert ready["status"] == "ready"  # a scan behind is news, not unreadiness
            scan_ = ready["scan"]
            assert scan_["listed"] == 23 and scan_["stopped"] == SHARE_SPENT
            assert scan_["backlog"] == 23 - scan_["scanned"] > 0
            assert scan_["rate_limit_spent"] == scan_["rate_limit_share"] == 50
            assert "acme" not in str(scan_)  # figures only, open to anyone
            status = client.get("/api/v1/status", headers=AUTH).json()
            assert status["scan"]["backlog"] == scan_["backlog"]
            metrics = client.get("/metrics", headers=AUTH).text
            assert f"pulsehook_scan_backlog_repositories {scan_['backlog']}.0" in metrics
            assert "pulsehook_scan_rate_limit_spent 50.0" in metrics
            assert client.get("/metrics").status_code == 401


def test_a_round_starting_just_before_the_reset_waits_for_it(ledger: StoreLedger) -> None:
    """GitHub names the reset in whole seconds: an hourly round may start a moment
    before the window its predecessor opened is over. It waits for the reset
    (within its time) rather than scanning nothing."""

    async def scenario() -> None:
        clock = FrozenClock(NOW)
        with standin() as gh:
            many(gh, 20)
            rated(gh, clock, 100)
            pace = Pace(share=0.5, seconds=3240)
            first, _ = await round_(gh, clock, ledger, pace)
            assert first.stopped == SHARE_SPENT and gh.charged == [50]
            assert gh.rate_reset is not None
            clock.set(datetime.fromtimestamp(gh.rate_reset - 2, UTC))  # the next round's start
            second, _ = await round_(gh, clock, ledger, pace)
            assert second.repos and len(gh.charged) == 2 and gh.charged[1] <= 50
            assert clock.now().timestamp() >= gh.rate_reset - 3600  # it waited, then went on
            # Without a time limit (``pulsehook scan``), or past it, it does not wait.
            clock.set(datetime.fromtimestamp(gh.rate_reset - 2, UTC))
            third, _ = await round_(gh, clock, ledger, Pace(share=0.5, seconds=1))
            assert third.stopped == SHARE_SPENT and third.repos == []

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))
