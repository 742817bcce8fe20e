"""Finding repositories by name (store/queries.find_repos) as each caller uses it: the
metrics API, EcosystemMonitor; and the summary store's replay reset."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pulsehook import EcosystemMonitor
from pulsehook.monitor import UnknownRepository
from pulsehook.schedule.runner import daily_due
from pulsehook.store import marks
from pulsehook.store import summary as summary_store
from pulsehook.store.db import Database, Tx, open_database, transaction, wrap
from pulsehook.store.queries import RepoRef, find_repos
from pulsehook.web.metrics import resolve_repo

# (id, full_name, owner as recorded, deleted)
REPOS = [
    (1, "octo/api", "octo", 0),
    (2, "other/api", "other", 0),
    (3, "octo/web_ui", "octo", 0),
    (4, "octo/webxui", "octo", 0),
    (5, "gone/old", "gone", 1),
    (6, "octo/old", "octo", 0),
    (7, "moved/tool", "octo", 0),  # transferred: the owner column keeps the first owner
    (8, "Octo/Caps", "Octo", 0),
]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Tx]:
    handle = wrap(open_database(tmp_path / "pulsehook.db"))

    def fill(d: Tx) -> None:
        for repo_id, full_name, owner, deleted in REPOS:
            d.execute(
                "INSERT INTO repositories (id, full_name, owner, deleted, first_seen_at)"
                " VALUES (?, ?, ?, ?, '2026-01-01T00:00:00Z')",
                (repo_id, full_name, owner, deleted),
            )

    transaction(handle, fill)
    try:
        yield handle
    finally:
        handle.conn.close()


def names(found: list[RepoRef]) -> list[str]:
    return [r.full_name for r in found]


def test_a_full_name_is_exact_and_case_sensitive_unless_asked(db: Database) -> None:
    assert names(find_repos(db, "octo/api")) == ["octo/api"]
    assert find_repos(db, "OCTO/API") == []
    assert names(find_repos(db, "OCTO/API", any_case=True)) == ["octo/api"]


def test_a_bare_name_is_that_name_under_any_owner_by_full_name(db: Database) -> None:
    assert names(find_repos(db, "api")) == ["octo/api", "other/api"]
    assert names(find_repos(db, "api", owner="octo")) == ["octo/api"]
    assert find_repos(db, "caps") == []
    assert names(find_repos(db, "caps", any_case=True)) == ["Octo/Caps"]
    assert find_repos(db, "pi") == []  # the whole name, not its end


def test_a_name_is_never_a_pattern(db: Database) -> None:
    assert names(find_repos(db, "web_ui")) == ["octo/web_ui"]
    assert names(find_repos(db, "web_ui", any_case=True)) == ["octo/web_ui"]
    assert find_repos(db, "%") == [] and find_repos(db, "web%", any_case=True) == []
    assert find_repos(db, "octo/%") == []


def test_deleted_ones_count_only_when_asked_and_come_last(db: Database) -> None:
    assert names(find_repos(db, "old")) == ["octo/old"]
    assert names(find_repos(db, "old", include_deleted=True)) == ["octo/old", "gone/old"]
    (gone,) = find_repos(db, "gone/old", include_deleted=True)
    assert (gone.id, gone.deleted, gone.owner) == (5, True, "gone")


def test_every_live_repository_of_an_owner_by_full_name(db: Database) -> None:
    assert names(find_repos(db, owner="octo")) == [
        "moved/tool",
        "octo/api",
        "octo/old",
        "octo/web_ui",
        "octo/webxui",
    ]
    assert len(find_repos(db)) == len(REPOS) - 1


def test_the_metrics_api_resolves_full_names_and_unique_bare_names(db: Database) -> None:
    found = resolve_repo(db, "octo/web_ui")
    assert found is not None and found.id == 3
    assert resolve_repo(db, "Octo/Web_UI") is None  # a full name is exact
    assert resolve_repo(db, "gone/old") is not None  # a deleted one by its full name
    assert resolve_repo(db, "api") is None  # two have it: ambiguous
    caps = resolve_repo(db, "CAPS")  # a bare name in any case
    assert caps is not None and caps.full_name == "Octo/Caps"
    old = resolve_repo(db, "old")  # the live one: a deleted one has no bare name
    assert old is not None and old.id == 6
    assert resolve_repo(db, "nothing") is None


def test_the_monitor_finds_by_name_within_its_org(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "pulsehook.db"
    everyone = EcosystemMonitor(db=path)
    assert everyone.check_repo("api").name == "octo/api"  # the first by full name
    assert everyone.check_repo("other/api").name == "other/api"
    with pytest.raises(UnknownRepository):
        everyone.check_repo("API")  # case-sensitive
    octo = EcosystemMonitor(org="octo", db=path)
    assert octo.check_repo("tool").name == "moved/tool"  # the owner it was first seen under
    with pytest.raises(UnknownRepository):
        octo.check_repo("other/api")
    with pytest.raises(UnknownRepository):
        octo.check_repo("gone/old")
    assert list(octo.get_build_statuses()) == [
        "moved/tool",
        "octo/api",
        "octo/old",
        "octo/web_ui",
        "octo/webxui",
    ]


def test_reset_reported_forgets_what_builds_reported(db: Database) -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

    def fill(d: Tx) -> None:
        for path, kind in (("o/r/actions/CI", "workflow"), ("o/r/jobs/x.md", "heartbeat")):
            summary_store.record_report(
                d,
                path=path,
                owner="o",
                repo="r",
                kind=kind,
                report="BAD",
                note="n",
                at=now,
                link="https://x",
                now=now,
            )
        summary_store.declare(
            d,
            path="o/r/actions/Nightly",
            owner="o",
            repo="r",
            kind="workflow",
            note=None,
            schedule="PT1H",
            grace_s=60,
            now=now,
        )
        summary_store.record_report(
            d,
            path="o/r/actions/Nightly",
            owner="o",
            repo="r",
            kind="workflow",
            report="GOOD",
            note="ok",
            at=now,
            link="https://y",
            now=now,
        )

    transaction(db, fill)
    transaction(db, summary_store.reset_reported)
    rows = {r["path"]: r for r in summary_store.all_items(db)}
    assert sorted(rows) == ["o/r/actions/Nightly", "o/r/jobs/x.md"]
    nightly = rows["o/r/actions/Nightly"]
    assert (nightly["report"], nightly["note"], nightly["updated"], nightly["link"]) == (
        "NOT_REPORTED",
        None,
        None,
        None,
    )
    assert (nightly["schedule"], nightly["grace_s"], nightly["declared"]) == ("PT1H", 60, 1)
    assert rows["o/r/jobs/x.md"]["report"] == "BAD"  # heartbeats are not replayed


def test_daily_work_is_due_once_a_day_under_its_mark(db: Database) -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert transaction(db, lambda d: daily_due(d, "health", now))
    assert marks.last_run(db, "daily:health") == now
    later = now + timedelta(hours=23, minutes=59)
    assert not transaction(db, lambda d: daily_due(d, "health", later))
    assert transaction(db, lambda d: daily_due(d, "health", now + timedelta(days=1)))
    assert marks.last_run(db, "daily:health") == now + timedelta(days=1)
