"""The status summary, pure and at the database level: rendering in pulseox's layout
(golden files, and pulseox's own formatter as the reference), its JSON, MISSING with
an injected clock (durations, crons, DST), spec facts for the rules, and builds."""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pulseox.dashboard import PulseOxDashboard, PulseOxSummary  # type: ignore[import-untyped]
from pulseox.specs import create_metadata, make_dt_formatter  # type: ignore[import-untyped]

from pulsehook.alerts import engine
from pulsehook.facts import Build
from pulsehook.github.normalize import normalize
from pulsehook.rules.evaluate import Evaluator
from pulsehook.rules.load import load_rules
from pulsehook.rules.model import Expectation, RuleSet
from pulsehook.store import summary as summary_store
from pulsehook.store.db import Database, open_database, transaction, wrap
from pulsehook.summary import items, service
from pulsehook.summary.model import Item
from pulsehook.summary.render import Change, Snapshot, dashboard_json, text

from .conftest import payload

GOLDEN = Path(__file__).parent / "golden"
# Set to rewrite the golden files from the current output (then check them by eye).
UPDATE_GOLDEN = os.environ.get("PULSEHOOK_UPDATE_GOLDEN") == "1"


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


# --- the hand-built snapshot -------------------------------------------------------
# Around the US switch to daylight saving time (2026-03-08), so New York shows both
# EST and EDT.

FAILING = Item(
    path="octo/api/actions/CI",
    owner="octo",
    repo="api",
    kind="workflow",
    link="https://github.com/octo/api/actions/runs/7",
    report="BAD",
    note="failure (push)",
    updated=at(7, 23, 10),
)
CRASHED = Item(
    path="octo/status/jobs/cron.md",
    owner="octo",
    repo="status",
    kind="heartbeat",
    report="BAD",
    note="exit 1",
    updated=at(9, 11, 45),
)
LATE = Item(
    path="octo/status/jobs/backup.md",
    owner="octo",
    repo="status",
    kind="heartbeat",
    report="GOOD",
    note="nightly backup",
    updated=at(6, 3, 0),
    schedule=timedelta(days=1),
    grace=timedelta(minutes=30),
)
FINE = Item(
    path="octo/status/jobs/ping.md",
    owner="octo",
    repo="status",
    kind="heartbeat",
    report="GOOD",
    note="fine",
    updated=at(9, 12, 0),
    schedule="0 3 * * *",
)
DEPLOYED = Item(
    path="octo/web/actions/Deploy",
    owner="octo",
    repo="web",
    kind="workflow",
    link="https://github.com/octo/web/actions/runs/9",
    report="GOOD",
    note=None,
    updated=at(9, 12, 5),
)
GENERATED = at(9, 12, 10)


def golden_snapshot() -> Snapshot:
    return Snapshot(
        items=[
            (FINE, "OK"),
            (DEPLOYED, "OK"),
            (LATE, "MISSING"),
            (FAILING, "ERROR"),
            (CRASHED, "ERROR"),
        ],
        changes=[
            Change(DEPLOYED, None, "OK"),  # a new item
            Change(LATE, "OK", "MISSING"),
            Change(FINE, "OK", "OK"),  # not a change: never shown
        ],
        generated=GENERATED,
    )


def unlinked(snapshot: Snapshot) -> Snapshot:
    """The snapshot with every link equal to the path (as pulseox links entries),
    items in path order (as ``regenerate`` has them)."""

    def strip(item: Item) -> Item:
        return replace(item, link=None)

    return Snapshot(
        items=sorted(((strip(i), s) for i, s in snapshot.items), key=lambda p: p[0].path),
        changes=[Change(strip(c.item), c.previous, c.current) for c in snapshot.changes],
        generated=snapshot.generated,
    )


def sections(body: str, mode: str = "md") -> dict[str, list[str]]:
    """Section title -> the item paths listed under it, in order."""
    mark = "# " if mode == "md" else "* "
    entry = re.compile(r"^- \[([^\]]+)\]\(" if mode == "md" else r"^- \[\[[^\]]*\]\[([^\]]+)\]\]")
    found: dict[str, list[str]] = {}
    current = ""
    for line in body.split("\n"):
        if line.startswith(mark):
            current = line[2:]
            found[current] = []
        elif match := entry.match(line):
            found[current].append(match.group(1))
    return found


def document(
    snapshot: Snapshot, previous: str | None = None, *, tz: str = "UTC", owner: str = "pulsehook"
) -> str:
    """``summary.md.json`` for the snapshot (the first of what ``dashboard_json`` gives)."""
    raw, _ = dashboard_json(snapshot, previous, owner=owner, repo="summary", tz=tz)
    return raw


# --- 1. text: golden files, and pulseox's own formatter ------------------------------


@pytest.mark.parametrize(
    ("mode", "tz", "name"),
    [
        ("md", "UTC", "summary.md"),
        ("org", "UTC", "summary.org"),
        ("md", "America/New_York", "summary.new_york.md"),
        ("org", "America/New_York", "summary.new_york.org"),
    ],
)
def test_text_matches_golden_file(mode: str, tz: str, name: str) -> None:
    body = text(golden_snapshot(), mode=mode, tz=tz)
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(body + "\n", encoding="utf-8")
    assert body + "\n" == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("mode", ["md", "org"])
def test_text_layout(mode: str) -> None:
    body = text(golden_snapshot(), mode=mode, tz="UTC")
    h = "# " if mode == "md" else "* "
    assert [line for line in body.split("\n") if line.startswith(h)] == [
        f"{h}Changes",
        f"{h}ERROR",
        f"{h}MISSING",
        f"{h}OK",
        f"{h}Metadata",
    ]
    # A blank line after every section heading but the footer's.
    lines = body.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(h) and line != f"{h}Metadata":
            assert lines[i + 1] == ""
    assert sections(body, mode) == {
        "Changes": ["octo/status/jobs/backup.md", "octo/web/actions/Deploy"],
        "ERROR": ["octo/api/actions/CI", "octo/status/jobs/cron.md"],
        "MISSING": ["octo/status/jobs/backup.md"],
        "OK": ["octo/status/jobs/ping.md", "octo/web/actions/Deploy"],
        "Metadata": [],
    }
    assert body.endswith(f"{h}Metadata\n- report: GOOD\n- updated: 2026-03-09 12:10 UTC")


def test_text_entries() -> None:
    md = text(golden_snapshot(), mode="md", tz="UTC").split("\n")
    org = text(golden_snapshot(), mode="org", tz="America/New_York").split("\n")
    assert (
        "- [octo/api/actions/CI](https://github.com/octo/api/actions/runs/7)"
        " failure (push) 2026-03-07 23:10 UTC"
    ) in md
    # No note: the time follows the link directly.
    assert (
        "- [octo/web/actions/Deploy](https://github.com/octo/web/actions/runs/9)"
        " 2026-03-09 12:05 UTC"
    ) in md
    # Changes: by status (MISSING before OK), then path.
    assert md[2] == (
        "- [octo/status/jobs/backup.md](octo/status/jobs/backup.md)"
        " OK --> MISSING 2026-03-06 03:00 UTC"
    )
    assert md[3] == (
        "- [octo/web/actions/Deploy](https://github.com/octo/web/actions/runs/9)"
        " None --> OK 2026-03-09 12:05 UTC"
    )
    assert (
        "- [[https://github.com/octo/api/actions/runs/7][octo/api/actions/CI]]"
        " failure (push) 2026-03-07 18:10 EST"
    ) in org
    assert (
        "- [[octo/status/jobs/ping.md][octo/status/jobs/ping.md]] fine 2026-03-09 08:00 EDT" in org
    )
    assert org[-1] == "- updated: 2026-03-09 08:10 EDT"


def test_empty_sections_and_no_changes_are_omitted() -> None:
    only_ok = Snapshot(
        items=[(FINE, "OK")], changes=[Change(FINE, "OK", "OK")], generated=GENERATED
    )
    body = text(only_ok, mode="md", tz="UTC")
    assert body == (
        "# OK\n\n"
        "- [octo/status/jobs/ping.md](octo/status/jobs/ping.md) fine 2026-03-09 12:00 UTC\n\n"
        "# Metadata\n- report: GOOD\n- updated: 2026-03-09 12:10 UTC"
    )
    errors_only = text(Snapshot(items=[(CRASHED, "ERROR")], generated=GENERATED), mode="org")
    assert "* Changes" not in errors_only and "* OK" not in errors_only
    assert "* MISSING" not in errors_only and errors_only.startswith("* ERROR\n\n")
    nothing = text(Snapshot(items=[], generated=GENERATED), mode="md", tz="UTC")
    assert nothing == "# Metadata\n- report: GOOD\n- updated: 2026-03-09 12:10 UTC"


@pytest.mark.parametrize("mode", ["md", "org"])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_entry_lines_match_pulseox_formatter(mode: str, tz: str) -> None:
    snapshot = unlinked(golden_snapshot())
    lines = text(snapshot, mode=mode, tz=tz).split("\n")
    fmt = make_dt_formatter(tz)
    for item, _ in snapshot.items:
        expected = PulseOxSummary._format_entry(
            item.path, item.note, fmt(item.updated.isoformat() if item.updated else None), mode
        )
        assert expected in lines
        assert PulseOxSummary.format_link(item.path, item.path, mode) in expected
    for change in snapshot.changes:
        if change.previous == change.current:
            continue
        expected = PulseOxSummary._format_entry(
            change.item.path,
            f"{change.previous} --> {change.current}",
            fmt(change.item.updated.isoformat() if change.item.updated else None),
            mode,
        )
        assert expected in lines


@pytest.mark.parametrize("mode", ["md", "org"])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_whole_text_matches_pulseox_format_text(mode: str, tz: str) -> None:
    """pulseox, given pulsehook's JSON, writes the same text (bar its own timestamp)."""
    snapshot = unlinked(golden_snapshot())
    loaded = PulseOxDashboard.model_validate_json(document(snapshot, tz=tz))
    loaded.summary.format_text(change_dict=loaded.changes, mode=mode)
    metadata = create_metadata("." + mode, show_tz=tz).split("\n")
    metadata[-1] = f"- updated: {make_dt_formatter(tz)(GENERATED.isoformat())}"
    expected = loaded.summary.text + "\n\n" + "\n".join(metadata)
    # The one deliberate difference: pulseox shows a spec's path within its
    # repository; pulsehook shows the whole item key, unique across repositories.
    for item, _ in snapshot.items:
        for old, new in (
            (f"[{item.file}]({item.file})", f"[{item.path}]({item.path})"),
            (f"[[{item.file}][{item.file}]]", f"[[{item.path}][{item.path}]]"),
        ):
            expected = expected.replace(old + " ", new + " ")
    assert text(snapshot, mode=mode, tz=tz) == expected


# --- 2. the JSON pulseox loads --------------------------------------------------------


def test_dashboard_json_loads_in_pulseox() -> None:
    raw, summary_part = dashboard_json(
        golden_snapshot(), None, owner="pulsehook", repo="summary", tz="UTC"
    )
    assert json.loads(summary_part) == json.loads(raw)["summary"]
    loaded = PulseOxDashboard.model_validate_json(raw)
    assert (loaded.owner, loaded.repo) == ("pulsehook", "summary")
    # A spec's path is within its repository; the item key adds owner/repo.
    specs = {f"{s.owner}/{s.repo}/{s.path}": s for s in loaded.spec_list}
    assert specs["octo/status/jobs/backup.md"].schedule == timedelta(days=1)
    assert specs["octo/status/jobs/ping.md"].schedule == "0 3 * * *"
    # Items without a schedule still carry one (pulseox requires it): a long duration.
    assert isinstance(specs["octo/api/actions/CI"].schedule, timedelta)
    assert specs["octo/api/actions/CI"].schedule >= timedelta(days=3650)
    assert specs["octo/api/actions/CI"].report == "BAD"
    assert specs["octo/status/jobs/backup.md"].note == "nightly backup"
    assert (specs["octo/api/actions/CI"].owner, specs["octo/api/actions/CI"].repo) == (
        "octo",
        "api",
    )
    status = {k: sorted(v) for k, v in loaded.summary.status.items()}
    assert status == {
        "ERROR": ["octo/api/actions/CI", "octo/status/jobs/cron.md"],
        "MISSING": ["octo/status/jobs/backup.md"],
        "OK": ["octo/status/jobs/ping.md", "octo/web/actions/Deploy"],
    }
    assert loaded.summary.text == text(golden_snapshot(), mode="md", tz="UTC")
    assert loaded.summary.updated == GENERATED
    assert loaded.summary.show_tz == "UTC"
    assert loaded.previous_summary is None
    changed = {
        path: (c.previous_status, c.current_status)
        for group in loaded.changes.values()
        for path, c in group.items()
        if c.previous_status != c.current_status
    }
    assert changed == {
        "octo/web/actions/Deploy": (None, "OK"),
        "octo/status/jobs/backup.md": ("OK", "MISSING"),
    }


def test_duration_schedules_are_iso_durations() -> None:
    ten = Item(
        path="o/r/a.md",
        owner="o",
        repo="r",
        kind="heartbeat",
        schedule=timedelta(minutes=10),
        report="GOOD",
        updated=GENERATED,
    )
    odd = Item(
        path="o/r/b.md",
        owner="o",
        repo="r",
        kind="heartbeat",
        schedule=timedelta(days=1, hours=2, minutes=3, seconds=4),
    )
    raw = document(Snapshot(items=[(ten, "OK"), (odd, "OK")], generated=GENERATED))
    assert [s["schedule"] for s in json.loads(raw)["spec_list"]] == ["PT10M", "P1DT2H3M4S"]
    specs = {
        f"{s.owner}/{s.repo}/{s.path}": s
        for s in PulseOxDashboard.model_validate_json(raw).spec_list
    }
    assert specs["o/r/a.md"].schedule == timedelta(minutes=10)
    assert specs["o/r/b.md"].schedule == timedelta(days=1, hours=2, minutes=3, seconds=4)
    assert specs["o/r/b.md"].updated is None and specs["o/r/b.md"].report == "NOT_REPORTED"


def test_previous_summary_is_carried_over() -> None:
    first, first_summary = dashboard_json(golden_snapshot(), None, owner="p", repo="s")
    later = Snapshot(
        items=[(FINE, "OK")], changes=[Change(FINE, "OK", "OK")], generated=GENERATED + timedelta(1)
    )
    second = document(later, first_summary)
    assert json.loads(second)["previous_summary"] == json.loads(first)["summary"]
    loaded = PulseOxDashboard.model_validate_json(second)
    assert loaded.previous_summary is not None
    assert sorted(loaded.previous_summary.status["ERROR"]) == [
        "octo/api/actions/CI",
        "octo/status/jobs/cron.md",
    ]
    assert loaded.previous_summary.text == text(golden_snapshot())
    assert list(loaded.summary.status["OK"]) == ["octo/status/jobs/ping.md"]


# --- 3. MISSING with an injected clock, through the database --------------------------


@dataclass
class Summary:
    """The summary tables in a temporary database, driven with explicit times."""

    db: Database
    tz: str = "UTC"
    rules: RuleSet = field(default_factory=RuleSet)
    policy: engine.Policy = field(default_factory=engine.Policy)
    previous: str | None = None  # the last summary part, as the Summarizer keeps it

    def expect(self, *expectations: Expectation, now: datetime) -> None:
        self.rules = RuleSet(
            rules=self.rules.rules,
            channels=self.rules.channels,
            unconfigured=self.rules.unconfigured,
            expectations=expectations,
        )
        transaction(
            self.db, lambda db: items.sync_expectations(db, expectations, now=now, tz=self.tz)
        )

    def report(self, path: str, report: str, when: datetime, note: str | None = None) -> bool:
        owner, repo, _ = path.split("/", 2)
        return transaction(
            self.db,
            lambda db: items.report_later(
                db,
                path=path,
                owner=owner,
                repo=repo,
                kind="heartbeat",
                report=report,
                note=note,
                at=when,
                link=None,
                now=when,
                tz=self.tz,
            )(),
        )

    def regenerate(self, now: datetime) -> service.Generated:
        generated = transaction(
            self.db,
            lambda db: service.regenerate(
                db,
                self.rules,
                now=now,
                target=service.Target(owner="pulsehook", repo="summary", tz=self.tz),
                evaluator=Evaluator(),
                policy=self.policy,
                previous=self.previous,
            ),
        )
        self.previous = generated.summary_part
        return generated

    def status(self, path: str, now: datetime) -> str:
        doc = json.loads(self.regenerate(now).json)
        (found,) = [s for s, group in doc["summary"]["status"].items() if path in group]
        return str(found)

    def next_deadline(self, now: datetime) -> datetime | None:
        return summary_store.next_due(self.db, now)

    def outbox(self) -> list[tuple[str, str]]:
        return [
            (r["kind"], r["channel"]) for r in self.db.query("SELECT * FROM outbox ORDER BY id")
        ]


@pytest.fixture
def summary(tmp_path: Path) -> Iterator[Summary]:
    conn = open_database(tmp_path / "pulsehook.db")
    try:
        yield Summary(wrap(conn))
    finally:
        conn.close()


def heartbeat(path: str, schedule: timedelta | str, grace: timedelta = timedelta(0)) -> Expectation:
    return Expectation(
        owner="octo", repo="status", workflow=None, path=path, schedule=schedule, grace=grace
    )


BACKUP = "octo/status/jobs/backup.md"
T0 = at(10, 12, 0)


def test_duration_schedule_turns_missing_after_period_plus_grace(summary: Summary) -> None:
    summary.expect(heartbeat("jobs/backup.md", timedelta(minutes=10), timedelta(minutes=2)), now=T0)
    assert summary.report(BACKUP, "GOOD", T0)
    assert summary.status(BACKUP, T0) == "OK"
    assert summary.status(BACKUP, T0 + timedelta(minutes=11, seconds=59)) == "OK"
    assert summary.status(BACKUP, T0 + timedelta(minutes=12)) == "OK"  # pulseox: <= is on time
    assert summary.status(BACKUP, T0 + timedelta(minutes=12, seconds=1)) == "MISSING"
    assert summary.next_deadline(T0) == T0 + timedelta(minutes=12)


def test_cron_schedule_is_due_at_the_next_cron_time_plus_grace(summary: Summary) -> None:
    summary.expect(heartbeat("jobs/backup.md", "0 3 * * *", timedelta(minutes=10)), now=T0)
    reported = at(11, 2, 55)
    summary.report(BACKUP, "GOOD", reported)
    assert summary.next_deadline(reported) == at(11, 3, 10)
    assert summary.status(BACKUP, at(11, 3, 0)) == "OK"
    assert summary.status(BACKUP, at(11, 3, 9, 59)) == "OK"
    assert summary.status(BACKUP, at(11, 3, 10, 1)) == "MISSING"
    # A report after 03:00 is due at the following day's 03:00.
    summary.report(BACKUP, "GOOD", at(11, 3, 30))
    assert summary.next_deadline(at(11, 3, 30)) == at(12, 3, 10)
    assert summary.status(BACKUP, at(12, 3, 9)) == "OK"


def test_never_reported_item_is_missing_after_its_first_period_from_declaration(
    summary: Summary,
) -> None:
    summary.expect(heartbeat("jobs/backup.md", timedelta(minutes=10), timedelta(minutes=2)), now=T0)
    assert summary.next_deadline(T0) == T0 + timedelta(minutes=12)
    assert summary.status(BACKUP, T0) == "OK"
    assert summary.status(BACKUP, T0 + timedelta(minutes=11, seconds=59)) == "OK"
    assert summary.status(BACKUP, T0 + timedelta(minutes=12, seconds=1)) == "MISSING"
    # Declaring it again later (a restart) does not move its start.
    summary.expect(
        heartbeat("jobs/backup.md", timedelta(minutes=10), timedelta(minutes=2)),
        now=T0 + timedelta(hours=1),
    )
    assert summary.status(BACKUP, T0 + timedelta(hours=1)) == "MISSING"


def test_never_reported_cron_item_counts_from_declaration(summary: Summary) -> None:
    declared = at(11, 2, 0)
    summary.expect(heartbeat("jobs/backup.md", "0 3 * * *", timedelta(minutes=5)), now=declared)
    assert summary.next_deadline(declared) == at(11, 3, 5)
    assert summary.status(BACKUP, at(11, 3, 4)) == "OK"
    assert summary.status(BACKUP, at(11, 3, 6)) == "MISSING"


def test_bad_report_is_error_whatever_the_schedule(summary: Summary) -> None:
    summary.expect(heartbeat("jobs/backup.md", timedelta(minutes=10)), now=T0)
    summary.report(BACKUP, "BAD", T0, note="exit 1")
    assert summary.status(BACKUP, T0) == "ERROR"
    assert summary.status(BACKUP, T0 + timedelta(days=3)) == "ERROR"
    # An item nobody declared is never MISSING: only ERROR or OK.
    summary.report("octo/other/x.md", "BAD", T0)
    assert summary.status("octo/other/x.md", T0 + timedelta(days=365)) == "ERROR"
    summary.report("octo/other/x.md", "GOOD", T0 + timedelta(days=1))
    assert summary.status("octo/other/x.md", T0 + timedelta(days=365)) == "OK"


def test_recovery_shows_in_changes(summary: Summary) -> None:
    summary.expect(heartbeat("jobs/backup.md", timedelta(minutes=10)), now=T0)
    summary.report(BACKUP, "GOOD", T0)
    first = summary.regenerate(T0)
    assert f"- [{BACKUP}]({BACKUP}) None --> OK" in first.md
    assert first.changes == 1
    late = summary.regenerate(T0 + timedelta(minutes=11))
    assert late.changes == 1
    assert sections(late.md)["Changes"] == [BACKUP]
    assert f"- [{BACKUP}]({BACKUP}) OK --> MISSING 2026-03-10 12:00 UTC" in late.md
    unchanged = summary.regenerate(T0 + timedelta(minutes=12))
    assert unchanged.changes == 0 and "# Changes" not in unchanged.md
    assert sections(unchanged.md)["MISSING"] == [BACKUP]
    summary.report(BACKUP, "GOOD", T0 + timedelta(minutes=13), note="caught up")
    back = summary.regenerate(T0 + timedelta(minutes=13))
    assert f"- [{BACKUP}]({BACKUP}) MISSING --> OK 2026-03-10 12:13 UTC" in back.md
    assert f"- [{BACKUP}]({BACKUP}) caught up 2026-03-10 12:13 UTC" in back.md
    assert sections(back.md) == {"Changes": [BACKUP], "OK": [BACKUP], "Metadata": []}
    assert json.loads(back.json)["changes"]["OK"][BACKUP]["previous_status"] == "MISSING"


def test_regenerate_carries_the_previous_summary(summary: Summary) -> None:
    summary.report(BACKUP, "GOOD", T0)
    first = json.loads(summary.regenerate(T0).json)
    assert first["previous_summary"] is None
    second = summary.regenerate(T0 + timedelta(minutes=1))
    assert json.loads(second.json)["previous_summary"] == first["summary"]
    document = PulseOxDashboard.model_validate_json(second.json)
    assert list(document.previous_summary.status["OK"]) == [BACKUP]


def test_cron_across_dst_in_the_configured_zone(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "berlin.db")
    berlin = Summary(wrap(conn), tz="Europe/Berlin")
    try:
        daily = "octo/status/daily.md"
        berlin.expect(heartbeat("daily.md", "0 8 * * *"), now=at(28, 7, 0))
        # 2026-03-28 08:05 CET; clocks go forward the next night, 08:00 CEST = 06:00 UTC.
        berlin.report(daily, "GOOD", at(28, 7, 5))
        assert berlin.next_deadline(at(28, 7, 5)) == at(29, 6, 0)
        assert berlin.status(daily, at(29, 5, 59, 59)) == "OK"
        assert berlin.status(daily, at(29, 6, 0, 1)) == "MISSING"
        # Times in the text are local, with the zone's abbreviation of the moment.
        assert "2026-03-28 08:05 CET" in berlin.regenerate(at(29, 6, 1)).md
        assert berlin.regenerate(at(29, 6, 1)).md.endswith("- updated: 2026-03-29 08:01 CEST")
    finally:
        conn.close()


def test_next_deadline_is_the_earliest_upcoming(summary: Summary) -> None:
    assert summary.next_deadline(T0) is None
    summary.expect(
        heartbeat("jobs/hourly.md", timedelta(hours=1)),
        heartbeat("jobs/quick.md", timedelta(minutes=5), timedelta(minutes=1)),
        heartbeat("jobs/daily.md", "0 3 * * *"),
        now=T0,
    )
    assert summary.next_deadline(T0) == T0 + timedelta(minutes=6)
    # A report moves that item's deadline; the earliest is then another's.
    summary.report("octo/status/jobs/quick.md", "GOOD", T0 + timedelta(minutes=5))
    assert summary.next_deadline(T0 + timedelta(minutes=5)) == T0 + timedelta(minutes=11)
    # Deadlines already past are not upcoming.
    assert summary.next_deadline(T0 + timedelta(minutes=30)) == T0 + timedelta(hours=1)
    assert summary.next_deadline(T0 + timedelta(hours=2)) == at(11, 3, 0)
    assert summary.next_deadline(at(11, 4, 0)) is None
    # Unscheduled items have no deadline.
    summary.report("octo/other/x.md", "GOOD", T0)
    assert summary.next_deadline(at(11, 4, 0)) is None


def test_dropped_expectation_is_no_longer_missing(summary: Summary) -> None:
    summary.expect(heartbeat("jobs/backup.md", timedelta(minutes=10)), now=T0)
    assert summary.status(BACKUP, T0 + timedelta(hours=1)) == "MISSING"
    summary.expect(now=T0 + timedelta(hours=1))
    assert summary.status(BACKUP, T0 + timedelta(hours=1)) == "OK"
    assert summary.next_deadline(T0) is None


# --- 4. status transitions are spec facts for the rules --------------------------------

RULES_TOML = """\
[[rule]]
name = "summary_missing"
condition = "spec.status == 'MISSING'"
channels = ["slack"]
frequency = "immediate"
severity = "warning"

[channels.slack]
kind = "slack"
webhook_url = "${SLACK_WEBHOOK_URL}"

[[expect]]
repo = "octo/status"
path = "jobs/backup.md"
schedule = "10m"
grace = "2m"
"""


def test_missing_and_recovery_queue_firing_and_resolved(summary: Summary, tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "summary.toml").write_text(RULES_TOML)
    rules = load_rules(rules_dir, {"SLACK_WEBHOOK_URL": "https://hooks.example/T/B/x"})
    assert [e.item_path for e in rules.expectations] == [BACKUP]
    summary.rules = rules
    summary.policy = engine.Policy(flap=timedelta(0))
    transaction(
        summary.db, lambda db: items.sync_expectations(db, rules.expectations, now=T0, tz="UTC")
    )
    summary.report(BACKUP, "GOOD", T0)
    assert summary.regenerate(T0).queued == 0  # None --> OK says nothing
    assert summary.regenerate(T0 + timedelta(minutes=5)).queued == 0
    assert summary.outbox() == []

    missing = summary.regenerate(T0 + timedelta(minutes=12, seconds=1))
    assert missing.queued == 1
    assert summary.outbox() == [("firing", "slack")]
    (row,) = summary.db.query("SELECT * FROM outbox")
    assert BACKUP in row["message"]
    (alert,) = summary.db.query("SELECT * FROM alerts")
    assert (alert["rule"], alert["repo"], alert["subject"], alert["state"]) == (
        "summary_missing",
        "octo/status",
        BACKUP,
        "firing",
    )
    # Still missing: no second notice.
    assert summary.regenerate(T0 + timedelta(minutes=30)).queued == 0

    summary.report(BACKUP, "GOOD", T0 + timedelta(minutes=31))
    back = summary.regenerate(T0 + timedelta(minutes=31))
    assert back.queued == 1
    assert summary.outbox() == [("firing", "slack"), ("resolved", "slack")]
    (alert,) = summary.db.query("SELECT * FROM alerts")
    assert alert["state"] == "resolved"


def test_error_is_not_missing_for_the_rule(summary: Summary, tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "summary.toml").write_text(RULES_TOML)
    summary.rules = load_rules(rules_dir, {"SLACK_WEBHOOK_URL": "https://hooks.example/T/B/x"})
    summary.policy = engine.Policy(flap=timedelta(0))
    summary.report(BACKUP, "BAD", T0)
    assert summary.regenerate(T0 + timedelta(hours=1)).queued == 0
    assert summary.outbox() == []


# --- 5. builds are the reports of their workflow's item ---------------------------------

WORKFLOW = "octo-org/octo-repo/actions/test"


def run(
    conclusion: str = "success",
    updated: str = "2026-03-10T12:00:00Z",
    run_id: int = 1,
    branch: str = "master",
) -> Build:
    """GitHub's workflow_run example (default branch master), normalized."""
    data: dict[str, Any] = copy.deepcopy(payload("workflow_run.completed"))
    data["workflow_run"].update(
        id=run_id,
        conclusion=conclusion,
        updated_at=updated,
        head_branch=branch,
        html_url=f"https://github.com/octo-org/octo-repo/actions/runs/{run_id}",
    )
    (build,) = normalize("workflow_run", data)
    assert isinstance(build, Build)
    return build


def record(summary: Summary, build: Build) -> bool:
    return transaction(summary.db, lambda db: items.record_build(db, build, now=T0, tz="UTC"))


def stored(summary: Summary) -> dict[str, Any] | None:
    return next(summary.db.query("SELECT * FROM summary_items WHERE path = ?", (WORKFLOW,)), None)


def test_completed_default_branch_run_is_its_workflow_item(summary: Summary) -> None:
    assert record(summary, run("success"))
    row = stored(summary)
    assert row is not None
    assert (row["owner"], row["repo"], row["kind"], row["report"]) == (
        "octo-org",
        "octo-repo",
        "workflow",
        "GOOD",
    )
    assert row["updated"] == "2026-03-10T12:00:00Z"
    assert row["link"] == "https://github.com/octo-org/octo-repo/actions/runs/1"
    assert summary.status(WORKFLOW, T0) == "OK"

    assert record(summary, run("failure", "2026-03-10T13:00:00Z", run_id=2))
    row = stored(summary)
    assert row is not None and row["report"] == "BAD"
    assert row["link"] == "https://github.com/octo-org/octo-repo/actions/runs/2"
    assert summary.status(WORKFLOW, T0) == "ERROR"


def test_cancelled_run_leaves_the_item_unchanged(summary: Summary) -> None:
    record(summary, run("failure", "2026-03-10T12:00:00Z"))
    before = stored(summary)
    assert not record(summary, run("cancelled", "2026-03-10T13:00:00Z", run_id=2))
    assert not record(summary, run("skipped", "2026-03-10T13:00:00Z", run_id=3))
    assert stored(summary) == before


def test_older_run_arriving_later_does_not_overwrite(summary: Summary) -> None:
    assert record(summary, run("success", "2026-03-10T13:00:00Z", run_id=2))
    assert not record(summary, run("failure", "2026-03-10T12:00:00Z", run_id=1))
    row = stored(summary)
    assert row is not None and row["report"] == "GOOD"
    assert row["updated"] == "2026-03-10T13:00:00Z"


def test_other_branches_and_unfinished_runs_are_not_reports(summary: Summary) -> None:
    assert not record(summary, run("failure", branch="feature/x"))
    data = copy.deepcopy(payload("workflow_run.requested"))
    (requested,) = normalize("workflow_run", data)
    assert isinstance(requested, Build)
    assert not record(summary, requested)
    assert stored(summary) is None


def test_the_same_report_again_changes_nothing(summary: Summary) -> None:
    assert record(summary, run("success"))
    assert not record(summary, run("success"))  # a redelivery: no change, no regeneration
    # A different report at the same moment (a re-run's conclusion) is a change.
    assert record(summary, run("failure", run_id=2))
    row = stored(summary)
    assert row is not None and row["report"] == "BAD"
