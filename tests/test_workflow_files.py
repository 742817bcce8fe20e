"""Workflow files (pure): their ``on.schedule`` crons, git blobs, pushed paths, idle days."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsehook.clock import iso
from pulsehook.github.workflow_files import (
    BLOBS_PER_QUERY,
    MAX_BYTES,
    MAX_CRONS,
    Schedules,
    blob_text,
    blob_texts,
    blobs_query,
    idle_days,
    schedules,
    touches_workflows,
    tree_entries,
    tree_query,
)

WORKFLOWS = Path(__file__).parent / "payloads" / "workflows"


def _workflow(*crons: str) -> str:
    """A workflow file whose ``on.schedule`` lists ``crons`` (double-quoted)."""
    entries = "".join(f'    - cron: "{cron}"\n' for cron in crons)
    return (
        "name: Scheduled\n"
        "on:\n"
        "  schedule:\n"
        f"{entries}"
        "jobs:\n"
        "  run:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo hi\n"
    )


def _blob(data: bytes, *, sha: str = "3a0f86fb8db8eea7ccbb9a95f325ddbedfb25e15") -> dict[str, Any]:
    """A blob as ``GET /repos/{owner}/{repo}/git/blobs/{sha}`` answers: base64, 60 a line."""
    encoded = base64.b64encode(data).decode("ascii")
    lines = [encoded[i : i + 60] for i in range(0, len(encoded), 60)]
    return {
        "sha": sha,
        "node_id": "MDQ6QmxvYjNhMGY4NmZiOGRiOGVlYTdjY2JiOWE5NWYzMjVkZGJlZGZiMjVlMTU=",
        "size": len(data),
        "url": f"https://api.github.com/repos/octocat/example/git/blobs/{sha}",
        "content": "\n".join(lines) + "\n",
        "encoding": "base64",
    }


# --- schedules: what a file's on.schedule says ------------------------------------------


def test_a_single_cron_is_read() -> None:
    assert schedules(_workflow("0 3 * * *")) == Schedules(crons=("0 3 * * *",), problem=None)


def test_the_nightly_backup_workflow_has_its_one_cron() -> None:
    text = (WORKFLOWS / "nightly-backup.yml").read_text()
    assert schedules(text) == Schedules(crons=("0 3 * * *",))


def test_several_schedules_keep_their_order() -> None:
    got = schedules(_workflow("0 12 * * 0", "30 5 * * 1-5", "*/10 * * * *"))
    assert got.crons == ("0 12 * * 0", "30 5 * * 1-5", "*/10 * * * *")
    assert got.problem is None


def test_a_cron_listed_twice_is_kept_once() -> None:
    got = schedules(_workflow("0 3 * * *", "15 4 * * *", "0 3 * * *", "15 4 * * *"))
    assert got.crons == ("0 3 * * *", "15 4 * * *")
    assert got.problem is None


def test_extra_whitespace_inside_a_cron_becomes_single_spaces() -> None:
    got = schedules(_workflow("  0   3 *  * \t*  "))
    assert got.crons == ("0 3 * * *",)
    assert got.problem is None


def test_a_cron_with_extra_whitespace_is_a_duplicate_of_its_normal_form() -> None:
    # Both orders name the same schedule; it is to be kept once either way.
    assert schedules(_workflow("0  3 * * *", "0 3 * * *")).crons == ("0 3 * * *",)
    assert schedules(_workflow("0 3 * * *", "0  3 * * *")).crons == ("0 3 * * *",)
    assert schedules(_workflow("0  3 * * *", "0 3  * * *")).crons == ("0 3 * * *",)


def test_single_and_double_quoted_crons_are_read() -> None:
    text = "on:\n  schedule:\n    - cron: '*/15 * * * *'\n    - cron: \"30 5 * * 1-5\"\n"
    assert schedules(text) == Schedules(crons=("*/15 * * * *", "30 5 * * 1-5"))


def test_a_bare_on_key_read_as_true_by_yaml_1_1_is_the_triggers() -> None:
    text = "on:\n  schedule:\n    - cron: '0 3 * * *'\n"
    assert schedules(text).crons == ("0 3 * * *",)


def test_a_quoted_on_key_is_the_triggers() -> None:
    text = "\"on\":\n  schedule:\n    - cron: '0 3 * * *'\n"
    assert schedules(text).crons == ("0 3 * * *",)
    single = "'on':\n  schedule:\n    - cron: '0 3 * * *'\n"
    assert schedules(single).crons == ("0 3 * * *",)


def test_the_reports_workflow_quotes_its_on_key_and_has_two_crons() -> None:
    text = (WORKFLOWS / "reports.yml").read_text()
    assert schedules(text) == Schedules(crons=("30 5 * * 1-5", "0 12 * * 0"))


def test_a_schedule_next_to_other_triggers_is_read() -> None:
    text = (
        "on:\n"
        "  push:\n"
        "    branches: [main]\n"
        "  schedule:\n"
        "    - cron: '0 3 * * *'\n"
        "  workflow_dispatch:\n"
    )
    assert schedules(text) == Schedules(crons=("0 3 * * *",))


@pytest.mark.parametrize(
    "text",
    [
        "on: push\n",
        "on: [push, pull_request]\n",
        "on:\n  push:\n    branches: [main]\n  pull_request:\n",
        "on:\n  workflow_dispatch:\n",
        "on:\n  schedule:\n",  # a schedule key with nothing under it
        "name: No triggers at all\njobs: {}\n",
        "",
        "   \n\n",
        "# only a comment\n",
        "- on: push\n- schedule: []\n",  # a list, not a mapping
        "just a scalar\n",
        "42\n",
        "null\n",
        "on:\n",  # on: with nothing under it
    ],
)
def test_files_without_a_schedule_have_no_crons_and_no_problem(text: str) -> None:
    assert schedules(text) == Schedules(crons=(), problem=None)


@pytest.mark.parametrize("name", ["ci.yml", "release.yml"])
def test_workflow_files_without_a_schedule(name: str) -> None:
    assert schedules((WORKFLOWS / name).read_text()) == Schedules()


def test_an_empty_schedule_list_has_no_crons_and_no_problem() -> None:
    assert schedules("on:\n  schedule: []\n") == Schedules()


def test_invalid_yaml_is_a_problem_naming_its_line() -> None:
    got = schedules("name: x\non:\n  schedule: [\n    - cron: '0 3 * * *'\n")
    assert got.crons == ()
    assert got.problem is not None
    assert got.problem.startswith("invalid YAML")
    assert " at line " in got.problem


def test_the_broken_workflow_is_invalid_yaml_at_its_line() -> None:
    got = schedules((WORKFLOWS / "broken.yml").read_text())
    assert got == Schedules(crons=(), problem="invalid YAML at line 8")


@pytest.mark.parametrize(
    "text",
    [
        "a: b\nfoo: [\n",
        "on:\n  schedule:\n    - cron: '0 3 * * *\n",  # an unclosed quote
        "key: value\n  bad indent: here\n",
        "? [a, b]\n: unhashable key\n",
        "a: \x00\n",  # a character YAML does not allow
        "a: !!python/object:os.system x\n",  # no tag the safe loader does not know
    ],
)
def test_invalid_yaml_has_no_crons_and_says_so(text: str) -> None:
    got = schedules(text)
    assert got.crons == ()
    assert got.problem is not None
    assert got.problem.startswith("invalid YAML")


def test_yaml_nested_too_deeply_is_invalid_yaml() -> None:
    got = schedules("[" * 100_000)
    assert got.crons == ()
    assert got.problem is not None
    assert got.problem.startswith("invalid YAML")


@pytest.mark.parametrize(
    "value",
    [
        "2024-02-30",  # a date YAML 1.1 recognises, one that does not exist
        "2024-13-01",
        "!!int seven",
        "!!float x",
        "!!bool maybe",
        "!!timestamp 2024-13-01",
    ],
)
def test_values_the_loader_cannot_build_are_a_problem_not_an_exception(value: str) -> None:
    # Hostile input: a value the safe loader recognises and then fails to construct.
    text = f"on:\n  schedule:\n    - cron: '0 3 * * *'\nenv:\n  RELEASED: {value}\n"
    got = schedules(text)
    assert got.crons == ()
    assert got.problem is not None
    assert got.problem.startswith("invalid YAML")


def test_invalid_cron_entries_are_left_out_and_named() -> None:
    text = (
        "on:\n"
        "  schedule:\n"
        "    - cron: '0 3 * * *'\n"
        "    - cron: '0 0 3 * * *'\n"  # six fields
        "    - cron: 'not a cron'\n"
        "    - cron: 5\n"  # a number
        "    - interval: daily\n"  # no cron key
        "    - cron: '30 5 * * 1-5'\n"
    )
    got = schedules(text)
    assert got.crons == ("0 3 * * *", "30 5 * * 1-5")
    assert got.problem is not None
    assert "invalid cron" in got.problem
    assert "'0 0 3 * * *'" in got.problem
    assert "'not a cron'" in got.problem


@pytest.mark.parametrize(
    "entry",
    [
        "- cron: '0 0 3 * * *'",
        "- cron: 'not a cron'",
        "- cron: 5",
        "- cron: ''",
        "- cron: '61 3 * * *'",  # five fields, a minute that does not exist
        "- cron:",
        "- {}",
        "- '0 3 * * *'",  # a bare string, not a mapping
        "- [0, 3]",
    ],
)
def test_each_kind_of_invalid_cron_is_a_problem(entry: str) -> None:
    got = schedules(f"on:\n  schedule:\n    {entry}\n")
    assert got.crons == ()
    assert got.problem is not None
    assert "invalid cron" in got.problem


def test_a_problem_names_at_most_three_invalid_crons() -> None:
    bad = [f"bad{i}" for i in range(6)]
    got = schedules(_workflow(*bad, "0 3 * * *"))
    assert got.crons == ("0 3 * * *",)
    assert got.problem is not None
    assert "'bad0'" in got.problem
    assert "'bad2'" in got.problem
    assert "'bad3'" not in got.problem


@pytest.mark.parametrize(
    "schedule",
    ["'0 3 * * *'", "{cron: '0 3 * * *'}", "5", "true"],
)
def test_a_schedule_that_is_not_a_list_is_a_problem(schedule: str) -> None:
    got = schedules(f"on:\n  schedule: {schedule}\n")
    assert got.crons == ()
    assert got.problem is not None
    assert "not a list" in got.problem


def test_a_file_over_the_size_cap_is_not_parsed() -> None:
    head = _workflow("0 3 * * *")
    text = head + "#" * (MAX_BYTES - len(head) + 1)
    got = schedules(text)
    assert got.crons == ()
    assert got.problem is not None
    assert "larger than" in got.problem


def test_a_file_at_the_size_cap_is_parsed() -> None:
    head = _workflow("0 3 * * *")
    text = head + "#" * (MAX_BYTES - len(head))
    assert len(text.encode()) == MAX_BYTES
    assert schedules(text) == Schedules(crons=("0 3 * * *",))


def test_the_size_cap_counts_bytes_not_characters() -> None:
    head = _workflow("0 3 * * *") + "# "
    filler = "é" * ((MAX_BYTES - len(head)) // 2 + 1)  # two bytes each in UTF-8
    text = head + filler
    assert len(text) <= MAX_BYTES < len(text.encode())
    got = schedules(text)
    assert got.crons == ()
    assert got.problem is not None


def test_more_than_max_crons_schedules_keep_at_most_max_crons() -> None:
    crons = [f"{minute} 3 * * *" for minute in range(MAX_CRONS + 10)]
    got = schedules(_workflow(*crons))
    assert len(got.crons) == MAX_CRONS
    assert got.crons == tuple(crons[:MAX_CRONS])
    assert got.problem is None


@given(st.text(max_size=400))
def test_arbitrary_text_never_raises(text: str) -> None:
    got = schedules(text)
    assert isinstance(got, Schedules)
    assert len(got.crons) <= MAX_CRONS
    assert all(isinstance(cron, str) for cron in got.crons)


# Pieces of workflow syntax. No two digits ever meet, so no YAML date or number can form:
# dates the loader fails to build are covered once, by name, above.
_PIECES = ["- ", "cron", ": ", "'0 3 * * *'", '"*/15 * * * *"', "7 * * * *", "schedule", "on"]
_MARKS = ["\n", "  ", "\t", "[", "]", "{", "}", ",", "#", "&a ", "*a", "!!str ", "|", ">", "'"]
_YAMLISH = st.lists(
    st.sampled_from([*_PIECES, *_MARKS]),
    max_size=60,
).map("".join)


@given(_YAMLISH)
def test_yaml_like_text_never_raises(text: str) -> None:
    assert isinstance(schedules("on:\n  schedule:\n" + text), Schedules)


_CRON = st.builds(
    lambda minute, hour, dow: f"{minute} {hour} * * {dow}",
    st.integers(0, 59),
    st.integers(0, 23),
    st.sampled_from(["*", "0", "1-5", "6"]),
)


@given(st.lists(_CRON, max_size=MAX_CRONS * 2))
def test_valid_crons_are_read_in_order_once_each(crons: list[str]) -> None:
    got = schedules(_workflow(*crons))
    once = list(dict.fromkeys(crons))
    assert got.crons == tuple(once[:MAX_CRONS])
    assert got.problem is None


# --- blob_text: GitHub's git blob answer -------------------------------------------------


def test_a_base64_blob_decodes_to_the_file() -> None:
    text = (WORKFLOWS / "nightly-backup.yml").read_text()
    body = _blob(text.encode())
    assert len(body["content"].splitlines()[0]) == 60  # GitHub's line length
    assert blob_text(body) == text
    assert schedules(blob_text(body) or "").crons == ("0 3 * * *",)


def test_an_empty_blob_is_empty_text() -> None:
    assert blob_text(_blob(b"")) == ""


def test_bytes_that_are_not_utf8_are_replaced() -> None:
    assert blob_text(_blob(b"on: push\n\xff\n")) == "on: push\n\ufffd\n"


@pytest.mark.parametrize(
    "body",
    [
        None,
        "b246IHB1c2gK",
        ["b246IHB1c2gK"],
        42,
        {},
        {"content": "b246IHB1c2gK"},  # no encoding
        {"content": "on: push\n", "encoding": "utf-8"},
        {"content": "b246IHB1c2gK", "encoding": "BASE64"},
        {"content": None, "encoding": "base64"},
        {"content": 12, "encoding": "base64"},
        {"content": b"b246IHB1c2gK", "encoding": "base64"},
        {"encoding": "base64"},
    ],
)
def test_what_is_not_a_base64_blob_is_none(body: Any) -> None:
    assert blob_text(body) is None


@pytest.mark.parametrize("content", ["abc", "é===", "b246IHB1c2gK\u00e9"])
def test_content_that_is_not_base64_is_none(content: str) -> None:
    assert blob_text({"content": content, "encoding": "base64"}) is None


def test_a_blob_far_over_the_size_cap_is_none() -> None:
    assert blob_text({"content": "A" * (MAX_BYTES * 2 + 4), "encoding": "base64"}) is None


@given(st.text(max_size=300))
def test_blob_text_round_trips_utf8(text: str) -> None:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates are no file's text
        return
    assert blob_text(_blob(data)) == text


@given(st.from_type(object))
def test_blob_text_of_anything_is_text_or_none(body: object) -> None:
    got = blob_text(body)
    assert got is None or isinstance(got, str)


# --- touches_workflows: whether a push changed a workflow file ----------------------------


@pytest.mark.parametrize(
    "paths",
    [
        [".github/workflows/ci.yml"],  # added or modified
        ["README.md", ".github/workflows/nightly.yaml"],
        ["src/app.py", ".github/workflows/old.yml", "docs/index.md"],  # removed
        [".github/workflows/nested/dir/x.yml"],
    ],
)
def test_paths_under_the_workflows_directory_touch_workflows(paths: list[str]) -> None:
    assert touches_workflows(paths)


@pytest.mark.parametrize(
    "paths",
    [
        [],
        [".github/dependabot.yml"],
        ["docs/.github/workflows/x.yml"],
        [".github/workflows"],  # the directory's name, not a file in it
        [".github/workflow/ci.yml"],
        ["github/workflows/ci.yml"],
        ["README.md", "src/app.py", ".github/CODEOWNERS"],
    ],
)
def test_other_paths_do_not_touch_workflows(paths: list[str]) -> None:
    assert not touches_workflows(paths)


def test_a_push_adding_modifying_and_removing_across_commits() -> None:
    commits = [
        {"added": ["src/new.py"], "modified": ["README.md"], "removed": []},
        {"added": [], "modified": [], "removed": [".github/workflows/legacy.yml"]},
    ]
    paths = [p for c in commits for key in ("added", "modified", "removed") for p in c[key]]
    assert touches_workflows(paths)
    assert not touches_workflows(paths[:2])


# --- idle_days: whole days since the last activity ----------------------------------------


def test_idle_days_are_whole_days() -> None:
    assert idle_days("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z") == 0
    assert idle_days("2026-01-01T00:00:00Z", "2026-01-01T23:59:59Z") == 0
    assert idle_days("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z") == 1
    assert idle_days("2026-01-01T12:00:00Z", "2026-03-02T11:59:59Z") == 59
    assert idle_days("2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z") == 365


def test_idle_days_read_offsets() -> None:
    assert idle_days("2026-01-01T02:00:00+02:00", "2026-01-02T00:00:00Z") == 1
    assert idle_days("2026-01-01T00:00:00+00:00", "2026-01-11T00:00:00+00:00") == 10


def test_idle_days_are_zero_when_the_last_activity_is_after_now() -> None:
    assert idle_days("2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z") == 0
    assert idle_days("2026-01-01T00:00:01Z", "2026-01-01T00:00:00Z") == 0


@pytest.mark.parametrize(
    ("last", "now"),
    [
        (None, "2026-01-01T00:00:00Z"),
        ("", "2026-01-01T00:00:00Z"),
        ("2026-01-01T00:00:00Z", ""),
    ],
)
def test_idle_days_of_a_missing_time_are_none(last: str | None, now: str) -> None:
    assert idle_days(last, now) is None


@pytest.mark.parametrize(
    ("last", "now"),
    [
        ("yesterday", "2026-01-01T00:00:00Z"),
        ("2026-13-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        ("2026-01-01T00:00:00Z", "not a time"),
    ],
)
def test_idle_days_of_an_unparseable_time_are_none(last: str, now: str) -> None:
    assert idle_days(last, now) is None


_WHEN = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(_WHEN, _WHEN)
def test_idle_days_match_the_whole_days_between(last: datetime, now: datetime) -> None:
    last, now = last.replace(microsecond=0), now.replace(microsecond=0)
    expected = max(0, (now - last) // timedelta(days=1))
    assert idle_days(iso(last), iso(now)) == expected


# --- GraphQL: the workflow directory and blob texts ---------------------------------

SHA_A, SHA_B = "a" * 40, "b" * 40


def test_tree_query_names_the_repository_and_its_default_branch_directory() -> None:
    request = tree_query("acme/api")
    assert request["variables"] == {"owner": "acme", "name": "api"}
    assert '"HEAD:.github/workflows"' in request["query"]


def test_tree_entries_keeps_the_files_of_the_directory_alone() -> None:
    entries = [
        {"name": "ci.yml", "type": "blob", "oid": SHA_A},
        {"name": "shared", "type": "tree", "oid": SHA_B},  # GitHub runs top-level files only
        {"name": "../x.yml", "type": "blob", "oid": SHA_B},
        {"type": "blob", "oid": SHA_B},
        "junk",
    ]
    body = {"data": {"repository": {"object": {"entries": entries}}}}
    assert tree_entries(body) == {".github/workflows/ci.yml": SHA_A}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": {"repository": {"object": None}}}, {}),  # no directory on the branch
        ({"data": {"repository": {"object": {}}}}, {}),  # a file where it should be
        ({"data": {"repository": None}, "errors": [{"type": "NOT_FOUND"}]}, None),
        ({"errors": [{"type": "RATE_LIMITED"}]}, None),
        ({"message": "Bad credentials"}, None),
        (None, None),
    ],
)
def test_tree_entries_tells_no_directory_from_no_answer(
    body: Any, expected: dict[str, str] | None
) -> None:
    assert tree_entries(body) == expected


def test_blobs_query_asks_each_sha_once_by_alias_within_the_bound() -> None:
    shas = [f"{i:040x}" for i in range(BLOBS_PER_QUERY + 5)]
    request = blobs_query("acme/api", shas)
    aliases = {k: v for k, v in request["variables"].items() if k not in ("owner", "name")}
    assert list(aliases.values()) == shas[:BLOBS_PER_QUERY]
    assert all(f"{alias}: object(oid: ${alias})" in request["query"] for alias in aliases)


def test_blob_texts_gives_texts_and_says_why_not() -> None:
    shas = [SHA_A, SHA_B, "c" * 40, "d" * 40, "e" * 40]
    repo = {
        "b0": {"text": "on: push\n", "isBinary": False, "isTruncated": False, "byteSize": 9},
        "b1": {"text": None, "isBinary": True, "isTruncated": False, "byteSize": 4},
        "b2": {"text": "x", "isBinary": False, "isTruncated": True, "byteSize": MAX_BYTES + 1},
        "b3": None,  # not a blob (or gone)
    }
    found = blob_texts({"data": {"repository": repo}}, shas)
    assert found is not None
    assert found[SHA_A] == "on: push\n"
    assert found[SHA_B] == Schedules(problem="not a text file")
    assert found["c" * 40] == Schedules(problem=f"file larger than {MAX_BYTES // 1024} KiB")
    assert found["d" * 40] == found["e" * 40] == Schedules(problem="not a text file")
    assert blob_texts({"errors": [{"type": "RATE_LIMITED"}]}, shas) is None
