"""The REST backfill scan and missed-delivery recovery, against a loopback GitHub stand-in.

Waits never really sleep: the client gets a FrozenClock and a sleep that moves it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pulsehook.clock import FrozenClock, iso
from pulsehook.facts import (
    Build,
    Coverage,
    Dependency,
    DependencyGraph,
    Fact,
    Profile,
    Push,
    Repo,
    Vulnerability,
)
from pulsehook.github.api import GitHubClient, GitHubError, RateLimited
from pulsehook.github.backfill import StoreLedger
from pulsehook.github.normalize import normalize, snapshot
from pulsehook.github.scan import ScanReport, scan
from pulsehook.store import state
from pulsehook.store.db import open_database, transaction, wrap
from pulsehook.store.deliveries import Delivery, insert_batch

from .github_standin import TOKEN, FakeGitHub, closed, sha, standin

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DAY_LATER = NOW + timedelta(days=1, seconds=1)  # every repository's last scan is due again
LISTED = "/orgs/acme/repos?per_page=100&type=all&sort=pushed&direction=desc"
EXACT = "GitHub API rate limit exceeded — set GITHUB_TOKEN"


class FakeSleep:
    """Records each wait and moves the clock instead of sleeping."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        assert 0 <= seconds <= 3600, f"unbounded wait {seconds}"
        self.calls.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))
        await asyncio.sleep(0)


class Collector:
    def __init__(self) -> None:
        self.batches: list[list[Delivery]] = []
        self.progress: list[tuple[int, int, str]] = []

    async def __call__(self, batch: list[Delivery]) -> None:
        self.batches.append(batch)

    def step(self, done: int, total: int, repo: str) -> None:
        self.progress.append((done, total, repo))

    @property
    def deliveries(self) -> list[Delivery]:
        return [d for batch in self.batches for d in batch]


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=30))


def client(
    gh: FakeGitHub, token: str | None = TOKEN, now: datetime = NOW, **kw: Any
) -> tuple[GitHubClient, FakeSleep]:
    clock = FrozenClock(now)
    sleep = FakeSleep(clock)
    return GitHubClient(base_url=gh.url, token=token, clock=clock, sleep=sleep, **kw), sleep


async def scan_org(
    gh: FakeGitHub, api: GitHubClient, ledger: StoreLedger, org: str = "acme"
) -> tuple[ScanReport, Collector]:
    sink = Collector()
    report = await scan(api, org=org, repos=None, ledger=ledger, sink=sink, progress=sink.step)
    return report, sink


def facts(deliveries: list[Delivery]) -> list[Fact]:
    found: list[Fact] = []
    for d in deliveries:
        data = json.loads(d.payload)
        assert snapshot(data) is not None, d.event  # every payload carries its repository
        found.extend(normalize(d.event, data))
    return found


def of(kind: type[Any], found: list[Fact], repo: str | None = None) -> list[Any]:
    return [f for f in found if isinstance(f, kind) and repo in (None, f.repo)]


# -- the scan ---------------------------------------------------------------------------


def test_scan_produces_deliveries_that_normalize_to_the_right_facts(ledger: StoreLedger) -> None:
    async def scenario() -> None:
        with standin() as gh:
            async with client(gh)[0] as api:
                report, sink = await scan_org(gh, api, ledger)
            assert report.errors == []
            assert report.repos == ["acme/api", "acme/web", "acme/legacy"]
            assert report.counts == {
                "repository": 3,
                "workflow_run": 4,  # api's feature-branch run is not on the default branch
                "dependabot_alert": 2,
                "pull_request": 2,  # the open Dependabot PR and the one merged lately
                "status": 1,
                "push": 3,
                "pulsehook.profile": 3,
                "pulsehook.sbom": 3,  # api's graph; web's and legacy's: none (404)
            }
            assert sink.progress == [(1, 3, "acme/api"), (2, 3, "acme/web"), (3, 3, "acme/legacy")]
            # One list per repository; the repositories' second page was followed.
            assert [{d.repo for d in b} for b in sink.batches] == [
                {"acme/api"},
                {"acme/web"},
                {"acme/legacy"},
            ]
            assert f"{LISTED}&page=2" in gh.paths()
            assert "/repos/acme/api/actions/runs?branch=main&per_page=20" in gh.paths()
            assert "/repos/acme/web/commits?sha=develop&per_page=30" in gh.paths()
            recent = "/repos/acme/api/pulls?state=all&sort=updated&direction=desc&per_page=100"
            assert recent in gh.paths()
            # The community profile found api's README: the README endpoint is not asked.
            assert "/repos/acme/api/readme" not in gh.paths()
            assert "/repos/acme/web/readme" in gh.paths()
            assert gh.headers["accept"] == "application/vnd.github+json"
            assert gh.headers["x-github-api-version"] == "2022-11-28"
            assert gh.headers["user-agent"] == "pulsehook"

            deliveries = sink.deliveries
            assert len({d.guid for d in deliveries}) == len(deliveries)
            for d in deliveries:
                assert d.content_type == "application/json"
                assert d.received_at == iso(NOW) and d.guid.startswith("scan:")
            guids = {d.guid for d in deliveries}
            assert {
                "scan:repo:70001:2026-02-27T10:00:00Z:2026-03-01T09:30:00Z",
                "scan:run:9001:1:2026-03-01T09:40:00Z",
                "scan:alert:70001:3:2026-03-01T07:00:00Z",
                "scan:pr:70001:12:2026-03-01T06:00:00Z",
                "scan:status:70001:503",
                f"scan:push:70001:{sha('a3')}",
                "scan:profile:70001:2026-03-02T12:00:00Z",
            } <= guids
            check_facts(facts(deliveries))

    run(scenario)


def check_facts(found: list[Fact]) -> None:
    builds = {b.run_id: b for b in of(Build, found)}
    assert set(builds) == {9001, 9002, 9004, 9101}
    ci = builds[9001]
    assert (ci.repo, ci.workflow, ci.status, ci.branch) == ("acme/api", "CI", "failure", "main")
    assert ci.default_branch and ci.completed_at == "2026-03-01T09:40:00Z"
    assert builds[9004].status == "in_progress" and builds[9004].completed_at is None
    assert builds[9101].default_branch and builds[9101].branch == "develop"

    vulns = {v.number: v for v in of(Vulnerability, found)}
    assert (vulns[3].severity, vulns[3].state, vulns[3].package) == ("critical", "open", "requests")
    assert (vulns[2].severity, vulns[2].state) == ("medium", "fixed")

    [cov] = of(Coverage, found)
    assert (cov.repo, cov.value, cov.branch, cov.sha) == ("acme/api", 87.5, "main", sha("a3"))

    deps = {d.number: d for d in of(Dependency, found)}
    assert set(deps) == {12, 10}  # #11 is not Dependabot's
    dep = deps[12]
    assert (dep.package, dep.from_version, dep.to_version) == ("urllib3", "2.0.7", "2.2.2")
    assert dep.state == "open" and not dep.merged
    merged = deps[10]
    assert (merged.state, merged.merged, merged.package) == ("closed", True, "idna")
    assert merged.closed_at == "2026-02-27T10:00:00Z"

    pushes = {p.repo: p for p in of(Push, found)}
    api, web, legacy = pushes["acme/api"], pushes["acme/web"], pushes["acme/legacy"]
    assert (api.commits, api.bot, api.branch, api.head_sha) == (3, True, "main", sha("a3"))
    assert (api.author, api.at) == ("dependabot[bot]", "2026-03-01T09:30:00Z")
    assert (web.commits, web.bot, web.branch, web.author) == (2, False, "develop", "carol")
    assert (legacy.commits, legacy.bot, legacy.author) == (1, False, "Legacy Importer")
    assert not api.forced and not api.deleted

    repos = {r.repo: r for r in of(Repo, found)}
    assert {r.action for r in repos.values()} == {"scanned"}
    assert repos["acme/legacy"].archived and not repos["acme/api"].archived
    assert repos["acme/web"].private and repos["acme/web"].default_branch == "develop"
    assert repos["acme/api"].owner == "acme" and repos["acme/api"].repo_id == 70001

    profiles = {p.repo: (p.readme, p.api_docs, p.dependabot) for p in of(Profile, found)}
    assert profiles == {
        "acme/api": (True, True, True),
        "acme/web": (False, False, False),  # Dependabot's 403: disabled, not an error
        "acme/legacy": (True, None, True),  # no community profile: API docs unknown
    }
    assert {p.at for p in of(Profile, found)} == {iso(NOW)}

    graphs = {g.repo: g for g in of(DependencyGraph, found)}
    assert {name: g.state for name, g in graphs.items()} == {
        "acme/api": "ok",
        "acme/web": "disabled",  # no graph: unknown, not zero packages
        "acme/legacy": "disabled",
    }
    graph = graphs["acme/api"]
    assert graph.root == "SPDXRef-Repository" and not graph.truncated
    named = {(p.ecosystem, p.name): p.version for p in graph.packages}
    assert named[("pip", "requests")] == "2.31.0"
    assert named[("npm", "@octokit/rest")] == "20.0.2"  # the purl's %40 decoded
    assert named[("actions", "actions/checkout")] == "4"
    assert len(graph.packages) == 9  # the repository's own package left out
    by_name = {p.name: p.spdx_id for p in graph.packages}
    assert ("SPDXRef-Repository", by_name["requests"]) in graph.edges
    assert (by_name["requests"], by_name["urllib3"]) in graph.edges


def test_a_dependabot_pr_closed_while_its_webhook_was_missed_is_closed_by_a_rescan(
    tmp_path: Path,
    ledger: StoreLedger,
) -> None:
    db = wrap(open_database(tmp_path / "pulsehook.db"))

    async def store(batch: list[Delivery]) -> None:
        transaction(db, lambda d: state.apply(d, facts(batch), now=iso(NOW)))

    def prs() -> dict[int, tuple[str, int]]:
        rows = db.execute("SELECT number, state, merged FROM dependency_prs").fetchall()
        return {n: (st, merged) for n, st, merged in rows}

    async def scenario() -> None:
        with standin() as gh:
            async with client(gh)[0] as api:
                await scan(api, org=None, repos=["acme/api"], ledger=ledger, sink=store)
                assert prs() == {12: ("open", 0), 10: ("closed", 1)}
                # Merged on GitHub; the pull_request webhook never arrived.
                site = gh.sites["acme/api"]
                site.pulls = [
                    closed(p | {"updated_at": "2026-03-02T08:00:00Z"}) if p["number"] == 12 else p
                    for p in site.pulls
                ]
                site.repo["pushed_at"] = "2026-03-02T08:00:00Z"  # the merge pushed
                await scan(api, org=None, repos=["acme/api"], ledger=ledger, sink=store)
        assert prs() == {12: ("closed", 1), 10: ("closed", 1)}

    run(scenario)
    db.conn.close()


def test_dependabot_403_is_recorded_as_disabled_not_as_an_error(ledger: StoreLedger) -> None:
    async def scenario() -> None:
        with standin() as gh:
            async with client(gh)[0] as api:
                report = await scan(
                    api, org=None, repos=["acme/web"], ledger=ledger, sink=Collector()
                )
            assert report.errors == [] and report.repos == ["acme/web"]
            alerts = "/repos/acme/web/dependabot/alerts?sort=updated&direction=desc&per_page=100"
            assert ("GET", alerts, 403) in gh.calls
            assert "dependabot_alert" not in report.counts

    run(scenario)


def test_rescan_uses_etags_and_stores_nothing_new(tmp_path: Path, ledger: StoreLedger) -> None:
    db = wrap(open_database(tmp_path / "pulsehook.db"))
    fresh: list[list[bool]] = []
    guids: list[list[str]] = []

    async def store(batch: list[Delivery]) -> None:
        fresh.append(transaction(db, lambda d: insert_batch(d, batch)))
        guids.append([d.guid for d in batch])

    async def scenario() -> None:
        with standin() as gh:
            api, sleep = client(gh)
            async with api:
                first = await scan(api, org="acme", repos=None, ledger=ledger, sink=store)
                ok_first = gh.count(200)
                gh.calls.clear()
                # Scanned a moment ago and not pushed to since: nothing is due.
                idle = await scan(api, org="acme", repos=None, ledger=ledger, sink=store)
                assert idle.repos == [] and idle.backlog == 0 and idle.listed == 3
                assert gh.paths() == [LISTED, f"{LISTED}&page=2"]
                gh.calls.clear()
                sleep.clock.advance(DAY_LATER - NOW)
                second = await scan(api, org="acme", repos=None, ledger=ledger, sink=store)
                assert api.not_modified == gh.count(304) == ok_first - 2
            # The second pass cost no rate limit but the listing's two pages (not
            # conditional: their bodies are needed), and answered the same: 304 for
            # all that was 200, the same 403/404s.
            assert gh.count(200) == 2 and set(gh.statuses()) <= {200, 304, 403, 404}
            # A 304 is nothing new: only the repository (known) and its profile come back.
            assert second.counts == {"repository": 3, "pulsehook.profile": 3}
            assert second.errors == [] and first.counts["workflow_run"] == 4
            assert second.requests == len(gh.calls) and second.not_modified == gh.count(304)

    run(scenario)
    assert len(fresh) == 6 and [g[0] for g in guids[3:]] == [g[0] for g in guids[:3]]
    assert all(all(batch) for batch in fresh[:3])  # the first scan: all new
    # The repository again (known) and a profile that says when it was checked.
    assert [sum(batch) for batch in fresh[3:]] == [1, 1, 1]
    db.conn.close()


def test_the_ledger_outlives_the_client(ledger: StoreLedger) -> None:
    async def scenario() -> None:
        with standin() as gh:
            async with client(gh)[0] as api:
                _, first = await scan_org(gh, api, ledger)
            gh.calls.clear()
            # A restart: a new client, the same store.
            async with client(gh, now=DAY_LATER)[0] as api:
                second = Collector()
                report = await scan(api, org="acme", repos=None, ledger=ledger, sink=second)
                assert api.not_modified == gh.count(304) > 10
            assert gh.count(200) == 2  # the repositories' two pages
            # Nothing new: the repositories themselves (already stored) and their profiles.
            assert {d.event for d in second.deliveries} == {"repository", "pulsehook.profile"}
            assert {d.guid for d in second.deliveries if d.event == "repository"} <= {
                d.guid for d in first.deliveries
            }
            # What the 304s stand for was remembered: the same profiles.
            assert {(p.repo, p.readme, p.api_docs, p.dependabot) for p in of(
                Profile, facts(first.deliveries))} == {
                (p.repo, p.readme, p.api_docs, p.dependabot)
                for p in of(Profile, facts(second.deliveries))
            }  # fmt: skip
            assert report.errors == []

    run(scenario)


def test_a_user_account_and_named_repositories(ledger: StoreLedger) -> None:
    async def scenario() -> None:
        with standin() as gh:
            async with client(gh)[0] as api:
                sink = Collector()
                report = await scan(
                    api, org="solo", repos=["acme/web", "acme/ghost"], ledger=ledger, sink=sink
                )
            assert ("GET", "/orgs/solo/repos" + LISTED.partition("/repos")[2], 404) in gh.calls
            assert report.repos == ["acme/web", "solo/notes"]  # the newest push first
            assert len(report.errors) == 1 and report.errors[0].startswith("acme/ghost: HTTP 404")
            notes = [d for d in sink.deliveries if d.repo == "solo/notes"]
            assert sorted(d.event for d in notes) == [
                "pulsehook.profile",
                "pulsehook.sbom",  # no graph: said once
                "repository",
            ]
            [profile] = of(Profile, facts(notes))
            assert (profile.readme, profile.api_docs, profile.dependabot) == (False, None, False)

    run(scenario)


def test_errors_on_one_repository_do_not_stop_the_scan(ledger: StoreLedger) -> None:
    async def scenario() -> None:
        with standin() as gh:
            gh.broken |= {"/repos/acme/api/commits/main/statuses", "/repos/acme/web/readme"}
            gh.sites.pop("acme/legacy")
            async with client(gh)[0] as api:
                report, sink = await scan_org(gh, api, ledger)
            assert report.repos == ["acme/api", "acme/web"]
            statuses, readme = report.errors
            assert statuses.startswith("acme/api: statuses: HTTP 500 on /repos/acme/api/commits/")
            assert readme == "acme/web: readme: HTTP 500 on /repos/acme/web/readme: Server Error"
            # What could be read was: the push before the statuses, the community profile.
            assert report.counts["push"] == 2 and "status" not in report.counts
            assert report.counts["pulsehook.profile"] == 2 and len(sink.batches) == 2
            [web] = [p for p in of(Profile, facts(sink.deliveries)) if p.repo == "acme/web"]
            assert (web.readme, web.api_docs, web.dependabot) == (False, False, False)

    run(scenario)


# -- rate limits ------------------------------------------------------------------------


def test_waits_for_the_reset_with_a_token_and_retries() -> None:
    async def scenario() -> None:
        with standin() as gh:
            api, sleep = client(gh)
            async with api:
                gh.limit(reset=int(NOW.timestamp()) + 120)
                rsp = await api.get("/repos/acme/api")
                assert rsp.status == 200 and rsp.body["full_name"] == "acme/api"
                assert sleep.calls == [121.0]  # until the reset, and a second
                gh.limit(retry_after=7, status=429)
                gh.limit(secondary=True)
                assert (await api.get("/repos/acme/web")).ok
                assert sleep.calls[1:] == [7.0, 120.0]  # retry-after; then 60 s, doubled
                gh.spent_until = int(sleep.clock.now().timestamp()) + 30
                await api.get("/repos/acme/api/readme")  # answered, the budget now spent
                await api.get("/repos/acme/api/community/profile")
                assert sleep.calls[3:] == [31.0]  # waited before asking again
                gh.limits += [(502, {}, "Bad Gateway"), (503, {}, "Unavailable")]
                assert (await api.get("/repos/acme/legacy")).ok
                assert sleep.calls[4:] == [2.0, 4.0]  # a server error: backs off, retries

    run(scenario)


def test_rate_limit_waits_are_bounded() -> None:
    async def scenario() -> None:
        with standin() as gh:
            api, sleep = client(gh, max_wait=600)
            async with api:
                gh.limit(reset=int(NOW.timestamp()) + 3600)
                with pytest.raises(RateLimited, match="longer than the 600 s"):
                    await api.get("/repos/acme/api")
                assert sleep.calls == []
                gh.limit(4, retry_after=1)
                with pytest.raises(GitHubError, match="after 3 retries"):
                    await api.get("/repos/acme/api")
                assert sleep.calls == [1.0, 1.0, 1.0]

    run(scenario)


def test_without_a_token_a_rate_limit_fails_at_once(ledger: StoreLedger) -> None:
    async def scenario() -> None:
        with standin() as gh:
            api, sleep = client(gh, token=None)
            async with api:
                gh.limit(reset=int(NOW.timestamp()) + 60)
                with pytest.raises(GitHubError) as caught:
                    await api.get("/repos/acme/api")
                assert str(caught.value) == EXACT
                gh.limit(secondary=True, retry_after=5)
                with pytest.raises(GitHubError) as caught:
                    await scan(api, org="acme", repos=None, ledger=ledger, sink=Collector())
                assert str(caught.value) == EXACT
            assert sleep.calls == [] and gh.auth == []

    run(scenario)


def test_the_token_never_appears_in_errors_or_logs(
    caplog: pytest.LogCaptureFixture, ledger: StoreLedger
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "ghp_WrongT0kenEchoedBackByTheServer"

    async def scenario() -> None:
        with standin() as gh:
            api, _ = client(gh)
            async with api:
                gh.limit(retry_after=2)
                assert (await api.get("/repos/acme/api")).ok  # waited, retried: logged
                report = await scan(
                    api, org=None, repos=["acme/api", "acme/ghost"], ledger=ledger, sink=Collector()
                )
                assert report.errors and TOKEN not in repr(api)
            assert f"Bearer {TOKEN}" in gh.auth  # it was sent, to GitHub only
            async with client(gh, token=wrong)[0] as bad:
                refused = await scan(
                    bad, org=None, repos=["acme/api"], ledger=ledger, sink=Collector()
                )
                with pytest.raises(GitHubError) as caught:
                    async for _ in bad.paginate("/orgs/acme/repos"):
                        pass
            text = " ".join([*report.errors, *refused.errors, str(caught.value)])
            assert "Bad credentials (Bearer ***)" in text
            for secret in (TOKEN, wrong):
                assert secret not in text and secret not in caplog.text

    run(scenario)


def test_links_to_another_host_are_not_followed() -> None:
    async def scenario() -> None:
        with standin() as gh:
            async with client(gh)[0] as api:
                with pytest.raises(GitHubError, match="another host"):
                    async for _ in api.paginate("/elsewhere"):
                        pass

    run(scenario)
