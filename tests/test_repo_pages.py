"""``GET /api/v1/repos`` pages: sorted, filtered and continued by the server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pulsehook.app import create_app
from pulsehook.settings import Settings

from . import stores
from .conftest import AUTH, live, wait_for

AT = "2026-01-01T00:00:00Z"
# (id, full name, score or None, last run of its one workflow or None)
REPOS = [
    (
        n,
        f"{'acme' if n % 3 else 'Octo'}/repo-{n:02d}",
        None if n % 7 == 0 else float(n * 3 % 100),
        None if n % 5 == 0 else ("failure" if n % 4 == 0 else "success"),
    )
    for n in range(1, 31)
]


@pytest.fixture
def client(settings: Settings) -> Any:
    stores.create(settings.db_path)
    with stores.connect(settings.db_path) as conn:
        yield from _served(settings, conn)


def _served(settings: Settings, conn: Any) -> Any:
    for rid, name, _, run in REPOS:
        conn.execute(
            "INSERT INTO repositories (id, full_name, owner, default_branch, first_seen_at,"
            " last_seen_at) VALUES (?, ?, ?, 'main', ?, ?)",
            (rid, name, name.split("/")[0], AT, AT),
        )
        if run is not None:
            conn.execute(
                "INSERT INTO workflow_state (repo_id, workflow, status, completed_at, run_id,"
                " attempt) VALUES (?, 'CI', ?, ?, ?, 1)",
                (rid, run, AT, rid),
            )
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        # The first start's rescore scores them all; then the scores are set as wanted.
        done = "SELECT count(*) FROM sweeps WHERE name = 'rescore' AND finished_at IS NOT NULL"
        wait_for(lambda: conn.execute(done).fetchone()[0] == 1)
        conn.executemany(
            "UPDATE health SET score = ? WHERE repo_id = ?",
            [(score, rid) for rid, _, score, _ in REPOS],
        )
        yield c


def _all(client: httpx.Client, **params: Any) -> tuple[list[str], int]:
    names, cursor, pages = [], None, 0
    while True:
        answer = client.get(
            "/api/v1/repos", params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["count"] == len(body["repos"])
        names += [r["name"] for r in body["repos"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return names, pages


def test_pages_by_name_list_every_repository_once_in_order(client: httpx.Client) -> None:
    names, pages = _all(client, limit=7)
    assert names == sorted(name for _, name, _, _ in REPOS)
    assert pages == 5  # 7 + 7 + 7 + 7 + 2
    first = client.get("/api/v1/repos", params={"limit": 7}).json()
    assert first["total"] == 30 and first["count"] == 7
    # Each item keeps the seed's shape.
    assert set(first["repos"][0]) >= {"name", "health_score", "metrics"}


def test_pages_by_score_put_unscored_repositories_last(client: httpx.Client) -> None:
    names, _ = _all(client, sort="-score", limit=4)
    by_score = {name: score for _, name, score, _ in REPOS}
    scored = [s for n in names if (s := by_score[n]) is not None]
    assert scored == sorted(scored, reverse=True)
    assert all(by_score[n] is None for n in names[len(scored) :])
    assert len(names) == 30
    up, _ = _all(client, sort="score", limit=9)
    assert [by_score[n] for n in up[: len(scored)]] == sorted(scored)


def test_filters_run_in_the_server(client: httpx.Client) -> None:
    def names(**params: Any) -> set[str]:
        return set(_all(client, limit=1000, **params)[0])

    assert names(owner="octo") == {n for _, n, _, _ in REPOS if n.startswith("Octo/")}
    assert names(q="REPO-1") == {n for _, n, _, _ in REPOS if "repo-1" in n}
    assert names(state="failure") == {n for _, n, _, r in REPOS if r == "failure"}
    assert names(state="success") == {n for _, n, _, r in REPOS if r == "success"}
    assert names(min_score=50, max_score=80) == {
        n for _, n, s, _ in REPOS if s is not None and 50 <= s <= 80
    }


def test_a_cursor_belongs_to_its_sort(client: httpx.Client) -> None:
    cursor = client.get("/api/v1/repos", params={"limit": 3}).json()["next_cursor"]
    wrong = client.get("/api/v1/repos", params={"cursor": cursor, "sort": "score"})
    assert wrong.status_code == 422 and "'cursor'" in wrong.json()["error"]["message"]
    forged = client.get("/api/v1/repos", params={"cursor": "eyJzIjoibmFtZSIsImsiOlt7fV19"})
    assert forged.status_code == 422


def test_the_overview_agrees_with_the_repositories_it_sums_up(client: httpx.Client) -> None:
    """The overview is computed from aggregates in SQL; the figures must be the
    ones the repositories themselves show."""
    repos = client.get("/api/v1/repos", params={"limit": 1000}).json()["repos"]
    overview = client.get("/api/v1/health").json()
    scores = [r["health_score"] for r in repos if r["health_score"] is not None]
    assert overview["repositories"] == len(repos) == 30
    assert overview["scored"] == len(scores)
    assert overview["health_score"] == round(sum(scores) / len(scores), 1)
    states: dict[str, int] = {}
    for r in repos:
        state = r["metrics"]["build_status"] or "unknown"
        states[state] = states.get(state, 0) + 1
    assert overview["builds"] == states
    lowest = sorted(
        (
            {
                "name": r["name"],
                "id": r["details"]["id"],
                "health_score": r["health_score"],
                "coverage": r["coverage"],
                "provisional": r["provisional"],
            }
            for r in repos
            if r["health_score"] is not None
        ),
        key=lambda r: r["health_score"],
    )[:5]
    assert overview["lowest"] == lowest
    assert overview["stale"] == sum(1 for r in repos if r["stale"])


def test_the_dashboard_table_pages_and_searches(settings: Settings) -> None:
    stores.create(settings.db_path)
    with stores.connect(settings.db_path) as conn:
        conn.executemany(
            "INSERT INTO repositories (id, full_name, owner, first_seen_at, last_seen_at)"
            " VALUES (?, ?, 'org', ?, ?)",
            [(n, f"org/svc-{n:03d}", AT, AT) for n in range(1, 231)],
        )
    with live(create_app(settings)) as srv, httpx.Client(base_url=srv.url, headers=AUTH) as c:
        first = c.get("/repos", params={"sort": "name", "order": "asc"}).text
        assert "230 repositories" in first and "page 1 of 3" in first
        assert "org/svc-001" in first and "org/svc-100" in first and "org/svc-101" not in first
        assert 'href="?sort=name&amp;order=asc&amp;page=2" rel="next"' in first
        third = c.get("/repos", params={"sort": "name", "order": "asc", "page": 3}).text
        assert "org/svc-230" in third and "org/svc-200" not in third and 'rel="next"' not in third
        found = c.get("/repos", params={"q": "SVC-12"}).text
        assert "10 repositories matching" in found  # svc-120 … svc-129
        assert "org/svc-125" in found and "org/svc-012" not in found
        assert "No repository matches" in c.get("/repos", params={"q": "nothing"}).text
        # Nonsense pages fall back instead of failing.
        assert c.get("/repos", params={"page": "²"}).status_code == 200
