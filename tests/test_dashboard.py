"""The dashboard end to end: signed real payloads in over loopback, HTML pages out.

The pages are read with a small HTML parser (tables by caption, links, resources) so
the assertions say what a person sees rather than how the markup is spelled.
"""

from __future__ import annotations

import copy
import itertools
import re
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from pydantic import SecretStr

from pulsehook.app import create_app
from pulsehook.clock import iso
from pulsehook.rules.load import load_rules
from pulsehook.settings import Settings
from pulsehook.summary.model import anchor
from pulsehook.web import charts, dashboard

from . import stores
from .builders import codecov_status as codecov
from .builders import critical_alert
from .builders import workflow_run as run
from .conftest import API_TOKEN, AUTH, SECRET, LiveServer, deliver, drained, live, payload, wait_for

SEED_RULES = Path(__file__).parent.parent / "rules"
PAGES = [
    "/",
    "/repos",
    "/repos/octo-org/octo-repo",
    "/dependencies",
    "/trends",
    "/alerts",
    "/summary",
]
OCTO, PIKA, HELLO = "octo-org/octo-repo", "wolfy1339/pika-pack", "Codertocat/Hello-World"


# --- reading pages ---------------------------------------------------------------------


@dataclass
class Page:
    """What a page shows: headings, tables by caption, links, fetched resources."""

    headings: list[tuple[str, str]] = field(default_factory=list)
    tables: dict[str, list[list[str]]] = field(default_factory=dict)
    links: list[tuple[str, str]] = field(default_factory=list)
    resources: list[tuple[str, str, str]] = field(default_factory=list)
    current: list[tuple[str, str]] = field(default_factory=list)  # (aria-current, text)
    sorted_by: list[tuple[str, str]] = field(default_factory=list)  # (aria-sort, text)
    charts: list[str] = field(default_factory=list)  # aria-labels of role=img SVGs
    text: str = ""


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.page = Page()
        self.stack: list[tuple[str, dict[str, str | None], list[str]]] = []
        self.caption = ""
        self.row: list[str] | None = None
        self.words: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for attr in ("src", "href", "srcset", "data", "poster"):
            if a.get(attr) and tag != "a":
                self.page.resources.append((tag, attr, a[attr] or ""))
        if tag == "svg" and a.get("role") == "img":
            self.page.charts.append(a.get("aria-label") or "")
        if tag == "tr":
            self.row = []
        if tag not in ("br", "wbr", "meta", "link", "img", "input", "circle", "line", "polyline"):
            self.stack.append((tag, a, []))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            name, a, parts = self.stack.pop()
            text = " ".join("".join(parts).split())
            if self.stack:
                self.stack[-1][2].append(" " + "".join(parts) + " ")
            if name == tag:
                self._close(name, a, text)
                return

    def _close(self, tag: str, a: dict[str, str | None], text: str) -> None:
        if tag in ("h1", "h2"):
            self.page.headings.append((tag, text))
        elif tag == "caption":
            self.caption = text
            self.page.tables[text] = []
        elif tag in ("td", "th") and self.row is not None:
            self.row.append(text)
            if a.get("aria-sort"):
                self.page.sorted_by.append((a["aria-sort"] or "", text))
        elif tag == "tr" and self.row is not None:
            self.page.tables.setdefault(self.caption, []).append(self.row)
            self.row = None
        elif tag == "a":
            self.page.links.append((a.get("href") or "", text))
        if a.get("aria-current"):
            self.page.current.append((a["aria-current"] or "", text))

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.stack[-1][2].append(data)
        self.words.append(data)


def read(html: str) -> Page:
    reader = _Reader()
    reader.feed(html)
    reader.page.text = " ".join(" ".join(reader.words).split())
    return reader.page


def table(page: Page, caption_start: str) -> list[list[str]]:
    """The body rows (header row dropped) of the table whose caption starts so."""
    found = [rows for caption, rows in page.tables.items() if caption.startswith(caption_start)]
    assert found, f"no table {caption_start!r} in {list(page.tables)}"
    return found[0][1:]


# --- feeding data ----------------------------------------------------------------------


def dependabot_pr() -> dict[str, Any]:
    data = copy.deepcopy(payload("pull_request.opened"))
    data["pull_request"]["user"]["login"] = "dependabot[bot]"
    data["pull_request"]["title"] = "Bump lodash from 4.17.15 to 4.17.21"
    return data


def make_settings(tmp: Path, **extra: Any) -> Settings:
    if not (tmp / "rules").exists():
        shutil.copytree(SEED_RULES, tmp / "rules")
    return Settings(
        data_dir=tmp / "data",
        rules_dir=tmp / "rules",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
        flap_interval="0s",
        **extra,
    )


@contextmanager
def serve(settings: Settings) -> Iterator[tuple[LiveServer, httpx.Client]]:
    """The app (dashboard included) on loopback."""
    # An empty environment: no channel can send, so notices are parked; alerts still are.
    app = create_app(settings, rules=load_rules(settings.rules_dir, {}))
    with live(app) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        yield server, client


def firing(client: httpx.Client) -> set[str]:
    alerts = client.get("/api/v1/alerts").json()["alerts"]
    return {a["rule"] for a in alerts if a["state"] == "firing"}


def feed(client: httpx.Client) -> None:
    """Three repositories: a red build, a critical advisory, coverage and an outdated dep."""
    deliver(client, "workflow_run", run(900, "success", "2026-01-01T09:00:00Z"))
    deliver(client, "workflow_run", run(901, "failure", "2026-01-01T10:00:00Z"))
    deliver(client, "dependabot_alert", critical_alert())
    deliver(client, "status", codecov("90.00% (target 80.00%)", "2026-01-01T11:00:00Z"))
    deliver(client, "status", codecov("82.00% (-8.00%) compared to a", "2026-01-01T12:00:00Z"))
    deliver(client, "pull_request", dependabot_pr())
    wait_for(lambda: drained(client))
    rules = {"build_failure", "critical_vulnerability", "coverage_drop"}
    wait_for(lambda: firing(client) == rules)
    wait_for(lambda: client.get("/api/v1/health").json()["summary"]["ERROR"] == 1)


def add_history(settings: Settings, now: datetime) -> None:
    """Older scores, as if pulsehook had been running for a few days."""
    with stores.connect(settings.db_path) as conn:
        ids = dict(conn.execute("SELECT full_name, id FROM repositories").fetchall())
        conn.executemany(
            "INSERT INTO health_history (repo_id, at, score, formula_version) VALUES (?, ?, ?, 1)",
            [
                (ids[OCTO], iso(now - timedelta(days=3)), 80.0),
                (ids[OCTO], iso(now - timedelta(days=2)), 70.0),
                (ids[PIKA], iso(now - timedelta(days=2)), 60.0),
            ],
        )


@dataclass
class Site:
    client: httpx.Client
    settings: Settings
    now: datetime

    def get(self, path: str, status: int = 200) -> Page:
        response = self.client.get(path)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("text/html")
        return read(response.text)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = make_settings(tmp_path_factory.mktemp("dashboard"))
    with serve(settings) as (_, client):
        feed(client)
        silence = {"rule": "coverage_drop", "duration": "2h", "comment": "known flaky coverage"}
        assert client.post("/api/v1/silences", json=silence).status_code == 201
        now = datetime.now(UTC)
        add_history(settings, now)
        yield Site(client, settings, now)


# --- the pages -------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_accessibly(site: Site, path: str) -> None:
    response = site.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert '<html lang="en">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert '<meta http-equiv="refresh" content="60">' in html
    assert '<a class="skip" href="#main">' in html and '<main id="main"' in html
    for landmark in ("<header>", '<nav aria-label="Dashboard">', "<footer>"):
        assert landmark in html
    page = read(html)
    assert [h for h in page.headings if h[0] == "h1"]
    nav = {"Overview", "Repositories", "Dependencies", "Trends", "Alerts", "Summary"}
    assert len([c for c in page.current if c[1] in nav]) == 1  # one nav link marks the page
    for caption, rows in page.tables.items():
        assert caption, "every table has a caption"
        assert rows, caption
    assert "<script" not in html


def test_nav_marks_the_current_page(site: Site) -> None:
    assert site.get("/").current == [("page", "Overview")]
    assert ("true", "90 days") in site.get("/trends").current
    assert site.get("/alerts").current == [("page", "Alerts")]
    # A repository's page is inside "Repositories", not the page itself.
    assert site.get(f"/repos/{OCTO}").current == [("true", "Repositories")]


def test_overview_shows_the_ecosystem(site: Site) -> None:
    health = site.client.get("/api/v1/health").json()
    page = site.get("/")
    assert ("h1", "Ecosystem overview") in page.headings
    assert f"Average health score {health['health_score']:.1f}" in page.text
    assert "Repositories 3" in page.text and "Firing alerts 3" in page.text
    assert "Stale (no news for 24 h) 0" in page.text
    assert ["ERROR", "1"] in table(page, "Summary items by status")
    assert ["MISSING", "0"] in table(page, "Summary items by status")
    lowest = table(page, "The 3 lowest-scoring")
    # OCTO (build, coverage: 45 of 100) and PIKA (an advisory: 30) rest on under half
    # the weight: provisional; HELLO on half of it.
    assert lowest == [[OCTO, "50.0 provisional"], [PIKA, "50.0 provisional"], [HELLO, "90.8"]]
    assert ["failure", "1"] in table(page, "Repositories by the state")
    assert ["no data", "2"] in table(page, "Repositories by the state")
    assert table(page, "Open Dependabot alerts by severity")[0] == ["critical", "1"]
    active = {row[0]: row for row in table(page, "Alerts firing now")}
    assert set(active) == {"build_failure", "critical_vulnerability", "coverage_drop"}
    assert active["build_failure"][1:3] == [OCTO, "test@main"]
    assert (f"/repos/{OCTO}", OCTO) in page.links


def names(page: Page) -> list[str]:
    return [row[0].split(" (")[0] for row in table(page, "3 repositories")]


def test_repositories_table_sorts_by_every_column(site: Site) -> None:
    page = site.get("/repos")  # worst first by default
    assert names(page) == [OCTO, PIKA, HELLO]
    rows = {row[0]: row for row in table(page, "3 repositories")}
    assert rows[HELLO][1:5] == ["90.8", "no data", "82.0%", "0"]
    assert rows[OCTO][1:3] == ["50.0 provisional", "failure"]
    assert rows[PIKA][4] == "1"
    assert page.sorted_by == [("ascending", "Score ▲")]
    assert (f"/repos/{HELLO}", HELLO) in page.links
    # The active column's link reverses the order; the others start at their worst end.
    headers = dict((text.split(" ")[0], href) for href, text in page.links if href.startswith("?"))
    assert headers["Score"] == "?sort=score&order=desc"
    assert headers["Repository"] == "?sort=name&order=asc"
    assert headers["Vulnerabilities"] == "?sort=vulns&order=desc"
    # A phone hides the headings (its rows stack): the same links stand as a line.
    sorting = [(href, text.split(" ")[0]) for href, text in page.links if href.startswith("?sort")]
    heads = {text: href for href, text in sorting if text[:1].isupper()}
    line = {text.capitalize(): href for href, text in sorting if text[:1].islower()}
    assert line == heads and len(line) == 6

    assert names(site.get("/repos?sort=score&order=desc")) == [HELLO, OCTO, PIKA]
    assert names(site.get("/repos?sort=name&order=asc")) == [HELLO, OCTO, PIKA]
    by_name = site.get("/repos?sort=name&order=desc")
    assert names(by_name) == [PIKA, OCTO, HELLO]
    assert by_name.sorted_by == [("descending", "Repository ▼")]
    assert names(site.get("/repos?sort=vulns&order=desc")) == [PIKA, HELLO, OCTO]
    assert names(site.get("/repos?sort=build&order=asc")) == [OCTO, HELLO, PIKA]
    # Rows without a value stay last in either order.
    assert names(site.get("/repos?sort=coverage&order=desc")) == [HELLO, OCTO, PIKA]
    assert names(site.get("/repos?sort=coverage&order=asc")) == [HELLO, OCTO, PIKA]
    # Nonsense falls back to the default instead of failing.
    assert names(site.get("/repos?sort=nope&order=sideways")) == [OCTO, PIKA, HELLO]


def test_repository_page_explains_the_score(site: Site) -> None:
    page = site.get(f"/repos/{OCTO}")
    assert ("h1", OCTO) in page.headings
    components = {row[0]: row[1:] for row in table(page, "Score components")}
    assert components["Build"] == ["50.0", "25%", "100.0%", "1 of 2 builds failed"]
    assert components["Coverage"] == ["no score", "20%", "0.0%", f"No coverage data for {OCTO}"]
    assert f"No coverage data for {OCTO}" in page.text.split("Warnings")[1]
    builds = table(page, "The latest workflow runs")
    assert [(b[0], b[2], b[5]) for b in builds] == [
        ("test", "failure", "run 901"),
        ("test", "success", "run 900"),
    ]
    assert ("https://github.com/octo-org/octo-repo/actions/runs/289782451", "run 901") in (
        page.links
    )
    (chart,) = page.charts
    assert chart.startswith(f"Health of {OCTO}, last 90 days:") and "latest 50" in chart
    assert "No open vulnerabilities." in page.text


def test_repository_page_lists_advisories_and_outdated_dependencies(site: Site) -> None:
    pika = site.get(f"/repos/{PIKA}")
    (vuln,) = table(pika, "Open Dependabot alerts")
    assert vuln[:3] == ["GHSA-c2qf-rxjj-qqgw", "critical", "semver (npm)"]
    assert ("https://github.com/wolfy1339/pika-pack/security/dependabot/20", vuln[0]) in (
        pika.links
    )
    components = {row[0]: row[1:] for row in table(pika, "Score components")}
    assert components["Security"][0] == "0.0"
    assert components["Security"][3] == "1 open critical vulnerability"
    hello = site.get(f"/repos/{HELLO}")
    assert "Coverage 82.0%" in hello.text
    assert table(hello, "Open Dependabot pull requests")[0][:3] == ["lodash", "4.17.15", "4.17.21"]


def test_unknown_repository_is_a_404_page(site: Site) -> None:
    page = site.get("/repos/nobody/nothing", status=404)
    assert ("h1", "Repository not found") in page.headings
    assert "nobody/nothing" in page.text
    assert ("/repos", "See all repositories") in page.links


def test_dependencies_page(site: Site) -> None:
    page = site.get("/dependencies")
    severity = table(page, "Open vulnerabilities by severity")
    assert severity == [["critical", "1"], ["high", "0"], ["medium", "0"], ["low", "0"]]
    assert table(page, "Open vulnerabilities by package") == [
        ["semver (npm)", "1", "critical", PIKA]
    ]
    (vuln,) = table(page, "Every open Dependabot alert")
    assert vuln[:4] == ["GHSA-c2qf-rxjj-qqgw", PIKA, "critical", "semver"]
    (outdated,) = table(page, "Open Dependabot pull requests")
    assert outdated[:4] == ["lodash", HELLO, "4.17.15", "4.17.21"]
    assert outdated[4].startswith("#2 Bump lodash")


def test_trends_page_draws_history(site: Site) -> None:
    page = site.get("/trends")
    ecosystem, *sparks = page.charts
    assert ecosystem.startswith("Ecosystem average health per day, last 90 days: 4 points")
    # One sparkline per repository with history, each described in words.
    assert [s.split(":")[0] for s in sparks] == [HELLO, OCTO, PIKA]
    # Scored once per processing chunk: whether the green run was scored on its own
    # (100) before the red one depends on how the deliveries were grouped.
    assert re.search(r"latest 50, lowest 50, highest (80|100)\b", sparks[1]), sparks[1]

    def day(n: int) -> str:
        return (site.now - timedelta(days=n)).strftime("%Y-%m-%d")

    daily = {row[0]: row[1] for row in table(page, "Ecosystem average health per day")}
    # A repository keeps its last score on days without a new one.
    assert daily[day(3)] == "80.0" and daily[day(2)] == "65.0" and daily[day(1)] == "65.0"
    average = site.client.get("/api/v1/health").json()["health_score"]
    assert daily[day(0)] == f"{average:.1f}"
    assert (
        site.get("/trends?days=1")
        .charts[0]
        .startswith("Ecosystem average health per day, last 1 days: 1 point on")
    )


def test_alerts_page(site: Site) -> None:
    page = site.get("/alerts")
    active = table(page, "Alerts firing now")
    assert {row[0] for row in active} == {
        "build_failure",
        "critical_vulnerability",
        "coverage_drop",
    }
    recent = {row[0]: row for row in table(page, "The latest alerts")}
    assert recent["critical_vulnerability"][1:5] == [PIKA, "alert#20", "firing", "critical"]
    (silence,) = table(page, "Silences hold notifications back")
    assert silence[1:4] == ["coverage_drop", "every repository", "yes"]
    assert silence[-1] == "known flaky coverage"


@pytest.mark.parametrize("path", PAGES)
def test_nothing_is_fetched_from_elsewhere(site: Site, path: str) -> None:
    response = site.client.get(path)
    page = read(response.text)
    # The reader does see resources (the pages simply have none besides inline ones).
    assert read('<img src="https://e.org/x.png">').resources == [
        ("img", "src", "https://e.org/x.png")
    ]
    raw = re.findall(r"<(\w+)\b[^>]*?\s(?:src|href|srcset)=\"([^\"]*)\"", response.text)
    assert [(tag, url) for tag, url in raw if tag != "a"] == [
        (tag, url) for tag, _, url in page.resources
    ]
    for tag, attr, url in page.resources:
        assert not url.startswith(("http://", "https://", "//")), (tag, attr, url)
    # The only absolute links are plain <a> links to GitHub pages.
    for href, _ in page.links:
        assert not href.startswith(("http:", "//", "javascript:")), href
        if href.startswith("https:"):
            assert href.startswith("https://github.com/"), href
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_times_are_shown_in_the_configured_timezone(tmp_path: Path) -> None:
    with serve(make_settings(tmp_path, timezone="Asia/Kolkata")) as (_, client):
        deliver(client, "workflow_run", run(900, "success", "2026-01-01T09:00:00Z"))
        deliver(client, "workflow_run", run(901, "failure", "2026-01-01T10:00:00Z"))
        wait_for(lambda: drained(client))
        html = client.get(f"/repos/{OCTO}").text
    page = read(html)
    builds = table(page, "The latest workflow runs")
    # UTC+05:30; the machine-readable attribute keeps the stored UTC time.
    assert [b[4] for b in builds] == ["2026-01-01 15:30", "2026-01-01 14:30"]
    assert '<time datetime="2026-01-01T10:00:00Z">2026-01-01 15:30</time>' in html
    assert "all times are Asia/Kolkata." in page.text


def test_payload_text_is_escaped_and_only_github_is_linked(tmp_path: Path) -> None:
    hostile = run(902, "failure", "2026-01-02T10:00:00Z")
    hostile["workflow"]["name"] = "<script>alert(1)</script>"
    hostile["workflow_run"]["html_url"] = "javascript:alert(1)"
    with serve(make_settings(tmp_path)) as (_, client):
        deliver(client, "workflow_run", hostile)
        wait_for(lambda: drained(client))
        html = client.get(f"/repos/{OCTO}").text
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "javascript:" not in html
    (build,) = table(read(html), "The latest workflow runs")
    assert build[0] == "<script>alert(1)</script>" and build[5] == "run 902"  # text, no link


def test_resolved_alerts_leave_the_active_list(tmp_path: Path) -> None:
    with serve(make_settings(tmp_path)) as (_, client):
        deliver(client, "workflow_run", run(901, "failure", "2026-01-01T10:00:00Z"))
        wait_for(lambda: drained(client) and firing(client) == {"build_failure"})
        deliver(client, "workflow_run", run(902, "success", "2026-01-01T11:00:00Z"))
        wait_for(lambda: drained(client) and not firing(client))
        page = read(client.get("/alerts").text)
        overview = read(client.get("/").text)
    assert "No alert is firing." in page.text and "No alert is firing." in overview.text
    (recent,) = table(page, "The latest alerts")
    assert recent[:4] == ["build_failure", OCTO, "test@main", "resolved"]


# --- the token ---------------------------------------------------------------------------

TOKEN = API_TOKEN


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[httpx.Client]:
    with serve(make_settings(tmp_path)) as (_, client):
        deliver(client, "workflow_run", run(901, "failure", "2026-01-01T10:00:00Z"))
        wait_for(lambda: drained(client))
        del client.headers["Authorization"]  # from here on, a browser without the token
        yield client


@pytest.mark.parametrize("path", PAGES)
def test_without_the_token_every_page_is_401(guarded: httpx.Client, path: str) -> None:
    response = guarded.get(path)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["www-authenticate"].startswith("Bearer")
    page = read(response.text)
    assert ("h1", "Sign-in needed") in page.headings
    assert "?token=" in page.text and OCTO not in page.text
    assert "set-cookie" not in response.headers


def test_token_in_the_address_becomes_a_cookie(guarded: httpx.Client) -> None:
    wrong = guarded.get("/repos", params={"token": "guess"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers

    login = guarded.get("/repos", params={"sort": "name", "token": TOKEN})
    assert login.status_code == 303
    assert login.headers["location"] == "/repos?sort=name"  # the token leaves the address
    cookie = login.headers["set-cookie"]
    assert cookie.startswith(f"{dashboard.COOKIE}=") and "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower() and TOKEN not in cookie  # signed, not the token

    # The client keeps the cookie: every page opens now, links need no token.
    page = read(guarded.get("/repos?sort=name").text)
    assert names_in(page) == [OCTO]
    assert guarded.get(f"/repos/{OCTO}").status_code == 200
    # The cookie is the dashboard's only: the API still wants the token itself.
    assert guarded.get("/api/v1/health").status_code == 401


def test_a_forged_cookie_is_refused(guarded: httpx.Client) -> None:
    guarded.cookies.set(dashboard.COOKIE, TOKEN)
    assert guarded.get("/").status_code == 401


def test_an_expired_or_foreign_session_is_refused(guarded: httpx.Client) -> None:
    class Past(TimestampSigner):
        def get_timestamp(self) -> int:  # signed eight days ago
            return int(time.time()) - 8 * 86400

    old = URLSafeTimedSerializer(TOKEN, salt=dashboard.SESSION_SALT, signer=Past).dumps("x")
    guarded.cookies.set(dashboard.COOKIE, old)
    assert guarded.get("/").status_code == 401
    other = URLSafeTimedSerializer("another-token-0123456", salt=dashboard.SESSION_SALT)
    guarded.cookies.set(dashboard.COOKIE, other.dumps("dashboard"))
    assert guarded.get("/").status_code == 401
    fresh = URLSafeTimedSerializer(TOKEN, salt=dashboard.SESSION_SALT).dumps("dashboard")
    guarded.cookies.set(dashboard.COOKIE, fresh)
    assert guarded.get("/").status_code == 200


def test_open_reads_open_the_dashboard_without_a_token(tmp_path: Path) -> None:
    with serve(make_settings(tmp_path, open_reads=True)) as (_, client):
        del client.headers["Authorization"]
        assert client.get("/").status_code == 200


def test_bearer_header_works_like_the_api(guarded: httpx.Client) -> None:
    assert guarded.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert guarded.get("/", headers={"Authorization": "Bearer nope"}).status_code == 401


def names_in(page: Page) -> list[str]:
    return [row[0] for rows in page.tables.values() for row in rows[1:]]


# --- charts.py (pure) --------------------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def svg(markup: str) -> ET.Element:
    """Parsed: the markup is well-formed XML, an accessible image with a title."""
    root = ET.fromstring(markup)  # noqa: S314 - our own markup, parsed to check it
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("role") == "img" and root.get("aria-label")
    assert root.find("{http://www.w3.org/2000/svg}title") is not None
    return root


def count(root: ET.Element, tag: str) -> int:
    return len(root.findall(f".//{{http://www.w3.org/2000/svg}}{tag}"))


def test_line_chart_draws_a_line_with_labelled_axes() -> None:
    points: list[charts.Point] = [(at(0), 40.0), (at(1), 60.0), (at(2), 80.0)]
    root = svg(charts.line_chart(points, width=400, height=200, title="Health"))
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == (
        "400",
        "200",
        "0 0 400 200",
    )
    assert count(root, "polyline") == 1
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert {"0", "25", "50", "75", "100"} <= set(texts)  # the value axis
    assert "2026-01-01" in texts and "2026-01-03" in texts  # the time axis
    assert root.get("aria-label") == (
        "Health: 3 points from 2026-01-01 to 2026-01-03; latest 80, lowest 40, highest 80."
    )


def test_line_chart_maps_values_onto_the_plot() -> None:
    points: list[charts.Point] = [(at(0), 0.0), (at(1), 100.0)]
    root = svg(charts.line_chart(points, width=400, height=200, title="t"))
    line = root.find(".//{http://www.w3.org/2000/svg}polyline")
    assert line is not None
    (x0, y0), (x1, y1) = (tuple(map(float, p.split(","))) for p in line.get("points", "").split())
    top, right, bottom, left = charts.MARGIN
    assert (x0, y0) == (left, 200 - bottom) and (x1, y1) == (400 - right, top)


def test_line_chart_empty() -> None:
    markup = charts.line_chart([], title="Nothing yet")
    root = svg(markup)
    assert root.get("aria-label") == "Nothing yet: no data."
    assert "No data yet" in markup and count(root, "polyline") == 0
    # Only gaps is no data either.
    assert "No data yet" in charts.line_chart([(at(0), None)], title="t")


def test_line_chart_single_point_is_a_dot() -> None:
    root = svg(charts.line_chart([(at(0), 72.5)], title="One"))
    assert count(root, "polyline") == 0 and count(root, "circle") == 1
    assert root.get("aria-label") == (
        "One: 1 point on 2026-01-01; latest 72.5, lowest 72.5, highest 72.5."
    )


def test_line_chart_none_is_a_gap_not_a_zero() -> None:
    points: list[charts.Point] = [
        (at(0), 50.0),
        (at(1), 60.0),
        (at(2), None),
        (at(3), 70.0),
        (at(4), 80.0),
        (at(5), None),
        (at(6), 90.0),
        (at(7), float("nan")),
    ]
    root = svg(charts.line_chart(points, title="Gaps"))
    assert count(root, "polyline") == 2 and count(root, "circle") == 1  # the lone 90
    label = root.get("aria-label") or ""
    assert "5 points" in label and "lowest 50" in label and "3 without a score" in label


def test_line_chart_escapes_text_and_clamps_values() -> None:
    markup = charts.line_chart([(at(0), 150.0), (at(1), -5.0)], title='<b>"x" & y</b>')
    assert "<b>" not in markup and "&lt;b&gt;&quot;x&quot; &amp; y&lt;/b&gt;" in markup
    root = svg(markup)
    assert root.findtext("{http://www.w3.org/2000/svg}title") == '<b>"x" & y</b>'
    line = root.find(".//{http://www.w3.org/2000/svg}polyline")
    assert line is not None
    ys = [float(p.split(",")[1]) for p in line.get("points", "").split()]
    top, _, bottom, _ = charts.MARGIN
    assert ys == [top, 220 - bottom]  # drawn at the top and the bottom, not outside


def test_line_chart_other_scale_and_bad_scale() -> None:
    root = svg(charts.line_chart([(at(0), 5.0), (at(1), 10.0)], title="t", y_max=10))
    assert "10" in [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    with pytest.raises(ValueError):
        charts.line_chart([], title="t", y_max=0)
    with pytest.raises(ValueError):
        charts.sparkline([], title="t", y_max=-1)


def test_charts_are_pure() -> None:
    points: list[charts.Point] = [(at(2), 30.0), (at(0), None), (at(1), 20.0)]
    before = list(points)
    first = charts.line_chart(points, title="p")
    assert charts.line_chart(points, title="p") == first and points == before
    assert charts.sparkline(points, title="p") == charts.sparkline(points, title="p")
    # Naive times are UTC, the same chart as aware ones.
    naive = [(t.replace(tzinfo=None), v) for t, v in points]
    assert charts.line_chart(naive, title="p") == first


def test_sparkline() -> None:
    points: list[charts.Point] = [(at(0), 100.0), (at(1), None), (at(2), 50.0), (at(3), 60.0)]
    root = svg(charts.sparkline(points, width=100, height=20, title="octo/repo"))
    assert root.get("class") == "spark" and root.get("width") == "100"
    assert root.get("aria-label") == (
        "octo/repo: 3 points from 2026-01-01 to 2026-01-04; latest 60, lowest 50, highest 100;"
        " 1 without a score."
    )
    assert count(root, "polyline") == 1 and count(root, "text") == 0  # no axes
    last = root.findall(".//{http://www.w3.org/2000/svg}circle")[-1]
    assert float(last.get("cx", "0")) == pytest.approx(97.0)  # the latest, at the right
    assert svg(charts.sparkline([], title="none")).get("aria-label") == "none: no data."
    assert count(svg(charts.sparkline([(at(0), 10.0)], title="one")), "circle") == 2


def test_daily_average_carries_scores_forward() -> None:
    series: dict[str, list[charts.Point]] = {
        "a": [(at(0.5), 80.0), (at(2.2), 60.0), (at(2.9), 40.0)],
        "b": [(at(1.5), 20.0)],
        "c": [],
    }
    assert charts.daily_average(series) == [
        (at(0), 80.0),
        (at(1), 50.0),  # a's 80 carried over, b's first 20
        (at(2), 30.0),  # a's last score of the day (40) with b's 20
    ]
    extended = charts.daily_average(series, until=at(4).date())
    assert extended[-2:] == [(at(3), 30.0), (at(4), 30.0)]
    assert charts.daily_average({}) == []
    # A day where nothing is known is a gap, not a zero.
    assert charts.daily_average({"a": [(at(0), None), (at(1), 10.0)]}) == [
        (at(0), None),
        (at(1), 10.0),
    ]


point_lists = st.lists(
    st.tuples(
        st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        ),
        st.none() | st.floats(allow_nan=True, allow_infinity=True),
    ),
    max_size=30,
)


@given(point_lists)
def test_any_data_gives_an_accessible_well_formed_chart(points: list[charts.Point]) -> None:
    root = svg(charts.line_chart(points, title="Any"))
    for line in root.iter("{http://www.w3.org/2000/svg}polyline"):
        for pair in line.get("points", "").split():
            x, y = map(float, pair.split(","))
            assert 0 <= x <= 640 and 0 <= y <= 220  # nothing drawn outside the picture
    svg(charts.sparkline(points, title="Any"))


# --- the Summary page, links, trends that agree -----------------------------------------

SVGNS = "{http://www.w3.org/2000/svg}"
HOSTILE = "ghost<script>x</script>/a&b"  # a repository pulsehook has never seen
GHOST_PATH = f"{HOSTILE}/jobs/<b>backup</b>.md"


def add_missing_item(settings: Settings, now: datetime) -> None:
    """A heartbeat item of a repository pulsehook knows nothing else of, overdue."""
    owner, _, repo = HOSTILE.partition("/")
    with stores.connect(settings.db_path) as conn:
        conn.execute(
            "INSERT INTO summary_items (path, owner, repo, kind, note, schedule, grace_s,"
            " declared, created_at, due_at, status, status_since, declared_schedule)"
            " VALUES (?, ?, ?, 'heartbeat', ?, 'PT1H', 0, 1, ?, ?, 'MISSING', ?, 'PT1H')",
            (
                GHOST_PATH,
                owner,
                repo,
                "<i>no backup</i>",
                iso(now - timedelta(hours=3)),
                iso(now - timedelta(hours=2)),
                iso(now - timedelta(hours=2)),
            ),
        )


def test_summary_page_lists_items_by_status_with_anchors(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with serve(settings) as (_, client):
        feed(client)
        add_missing_item(settings, datetime.now(UTC))
        overview = read(client.get("/").text)
        # The overview's counts lead to the Summary page.
        assert ("/summary#missing", "MISSING") in overview.links
        assert ("/summary?status=ERROR", "1") in overview.links
        html = client.get("/summary").text
        assert "<script>x" not in html and "<b>backup" not in html and "<i>no" not in html
        page = read(html)
        assert ("h1", "Status summary") in page.headings
        assert [h for h in page.headings if h[0] == "h2"] == [
            ("h2", "ERROR (1)"),
            ("h2", "MISSING (1)"),
            ("h2", "OK (0)"),
        ]
        (missing,) = table(page, "MISSING items")
        assert missing[0] == GHOST_PATH and missing[1] == HOSTILE
        assert missing[2] == "<i>no backup</i>" and missing[3] == "never"
        assert f'id="{anchor(GHOST_PATH)}"' in html
        # Unknown to pulsehook: its name is shown, never linked to a page that is a 404.
        assert not [href for href, _ in page.links if href.startswith("/repos/ghost")]
        (error,) = table(page, "ERROR items")
        assert error[1] == OCTO and (f"/repos/{OCTO}", OCTO) in page.links
        assert any(text == "open the run" for _, text in page.links)
        only = read(client.get("/summary?status=missing").text)
        assert [h[1] for h in only.headings if h[0] == "h2"] == ["MISSING (1)"]


def test_no_dashboard_link_is_a_404(tmp_path: Path) -> None:
    """Every link of every page reachable from the overview answers, none a 404."""
    settings = make_settings(tmp_path)
    with serve(settings) as (_, client):
        feed(client)
        add_missing_item(settings, datetime.now(UTC))
        add_history(settings, datetime.now(UTC))
        seen: set[str] = set()
        queue = list(PAGES)
        while queue and len(seen) < 400:
            path = queue.pop()
            if path in seen:
                continue
            seen.add(path)
            answer = client.get(path)
            assert answer.status_code != 404, path
            assert answer.status_code == 200, (path, answer.status_code)
            for href, _ in read(answer.text).links:
                target = urlsplit(urljoin(f"http://dashboard{path}", href))
                if target.netloc != "dashboard":
                    continue  # GitHub's pages, not ours
                queue.append(target.path + (f"?{target.query}" if target.query else ""))
        assert len(seen) > len(PAGES)
        assert "/summary" in seen and any(p.startswith("/summary?status=") for p in seen)


def test_trends_use_the_current_score_and_tell_apart_shared_names(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with serve(settings) as (_, client):
        feed(client)
        now = datetime.now(UTC)
        with stores.connect(settings.db_path) as conn:
            (octo_id,) = conn.execute(
                "SELECT id FROM repositories WHERE full_name = ?", (OCTO,)
            ).fetchone()
            # A second repository of the same name (a rename elsewhere): its own id.
            conn.execute(
                "INSERT INTO repositories (id, full_name, owner, first_seen_at)"
                " VALUES (7, ?, 'octo-org', ?)",
                (OCTO, iso(now)),
            )
            conn.execute(
                "INSERT INTO health (repo_id, score, components, warnings, formula_version,"
                " computed_at) SELECT 7, 44.9, components, warnings, formula_version, ?"
                " FROM health WHERE repo_id = ?",
                (iso(now), octo_id),
            )
            # History lags the score (rows only when it moves by 0.5): 44.5 there.
            conn.execute(
                "INSERT INTO health_history (repo_id, at, score, formula_version)"
                " VALUES (7, ?, 44.5, 1)",
                (iso(now - timedelta(seconds=30)),),
            )
        page = read(client.get("/trends").text)
        sparks = [li for li in page.charts[1:] if li.startswith(OCTO)]
        assert len(sparks) == 2, page.charts
        assert any(s.startswith(f"{OCTO} (id 7)") and "latest 44.9" in s for s in sparks)
        assert f"/repos/{OCTO}?id=7" in dict(page.links)
        assert f"/repos/{OCTO}?id={octo_id}" in dict(page.links)
        assert "44.9 provisional" in page.text and "latest 44.5" not in page.text
        other = read(client.get(f"/repos/{OCTO}?id=7").text)
        assert "Health score 44.9 provisional" in other.text
        assert client.get(f"/repos/{OCTO}?id=999").status_code == 404
        assert client.get(f"/repos/{PIKA}?id=7").status_code == 404  # another's id


def test_chart_within_one_minute_reads_well() -> None:
    t0 = datetime(2026, 1, 1, 9, 0, 0, tzinfo=UTC)
    points: list[charts.Point] = [
        (t0 + timedelta(seconds=s), v) for s, v in ((0, 100.0), (5, 50.0), (40, 60.0))
    ]
    root = svg(charts.line_chart(points, title="t", until=t0 + timedelta(minutes=1)))
    ticks = [t.text for t in root.iter(f"{SVGNS}text") if t.get("y") == "212"]
    assert ticks == ["08:01", "08:31", "09:01 UTC"], ticks  # times of day, all different
    (line,) = [e for e in root.iter(f"{SVGNS}polyline")]
    xs = [float(p.split(",")[0]) for p in (line.get("points") or "").split()]
    # No two points stacked in one column (a vertical stroke), the last held to now.
    assert all(b - a >= charts.MIN_GAP for a, b in itertools.pairwise(xs))
    days: list[charts.Point] = [(t0 + timedelta(days=d), 50.0) for d in (0, 1)]
    day_root = svg(charts.line_chart(days, title="t"))
    labels = [t.text for t in day_root.iter(f"{SVGNS}text") if t.get("y") == "212"]
    assert len(labels) == len(set(labels)) and labels[0] == "2026-01-01"
