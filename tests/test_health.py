"""Health score: every component, inconclusive data, weights, bounds, ``changed()``."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulsehook import health
from pulsehook.health import (
    FORMULA_VERSION,
    WEIGHTS,
    Component,
    RepoInputs,
    as_dict,
    changed,
    effective_weights,
    score,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NAME = "octo/repo"


def comp(result: health.Score, name: str) -> Component:
    return next(c for c in result.components if c.name == name)


def healthy(**changes: object) -> RepoInputs:
    """A repository where every component is conclusive and perfect."""
    base = RepoInputs(
        name=NAME,
        archived=False,
        builds=("success",) * 10,
        coverage=100.0,
        open_alerts={},
        open_dependency_prs=0,
        dependabot_known=True,
        readme=True,
        api_docs=True,
        last_commit_at=NOW - timedelta(days=1),
        last_issue_activity_at=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# -- published formula ---------------------------------------------------------


def test_weights_are_published_and_sum_to_100() -> None:
    assert WEIGHTS == {
        "build": 25,
        "coverage": 20,
        "dependencies": 20,
        "documentation": 15,
        "activity": 10,
        "security": 10,
    }
    assert sum(WEIGHTS.values()) == 100
    assert FORMULA_VERSION == 1


def test_perfect_repository_scores_100() -> None:
    result = score(healthy(), NOW)
    assert result.score == 100.0
    assert result.warnings == ()
    assert result.formula_version == FORMULA_VERSION
    assert [c.name for c in result.components] == list(WEIGHTS)
    assert all(c.weight == WEIGHTS[c.name] for c in result.components)


# -- build ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("builds", "expected", "reason"),
    [
        (("success",) * 8, 100.0, "all 8 builds passed"),
        (("success",), 100.0, "1 build passed"),
        (("failure",) * 3 + ("success",) * 7, 70.0, "3 of 10 builds failed"),
        (("failure", "timed_out", "startup_failure", "success"), 25.0, "3 of 4 builds failed"),
        (("failure",), 0.0, "1 of 1 build failed"),
    ],
)
def test_build_pass_rate(builds: tuple[str, ...], expected: float, reason: str) -> None:
    c = comp(score(healthy(builds=builds), NOW), "build")
    assert c.score == expected
    assert c.reason == reason


@pytest.mark.parametrize(
    "neutral", ["cancelled", "skipped", "neutral", "stale", "action_required", "weird", ""]
)
def test_build_neutral_and_unknown_conclusions_are_not_counted(neutral: str) -> None:
    c = comp(score(healthy(builds=(neutral, "success", neutral, "failure")), NOW), "build")
    assert c.score == 50.0
    assert c.reason == "1 of 2 builds failed"
    assert c.inputs == {"passed": 1, "failed": 1, "ignored": 2}


def test_build_only_neutral_runs_is_inconclusive() -> None:
    result = score(healthy(builds=("cancelled", "skipped", "mystery")), NOW)
    c = comp(result, "build")
    assert c.score is None
    assert "No build data for octo/repo" in result.warnings


def test_build_no_runs_is_inconclusive_not_zero() -> None:
    result = score(healthy(builds=()), NOW)
    assert comp(result, "build").score is None
    assert result.warnings == ("No build data for octo/repo",)
    assert result.score == 100.0  # the rest is perfect: missing data is not a penalty


def test_build_uses_only_the_ten_newest_runs() -> None:
    builds = ("success",) * 10 + ("failure",) * 5
    c = comp(score(healthy(builds=builds), NOW), "build")
    assert c.score == 100.0
    assert c.reason == "all 10 builds passed"
    # And the other way round: old successes beyond 10 don't dilute new failures.
    c = comp(score(healthy(builds=("failure",) * 10 + ("success",) * 20), NOW), "build")
    assert c.score == 0.0
    assert c.reason == "10 of 10 builds failed"


# -- coverage ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coverage", "expected"),
    [(83.5, 83.5), (0.0, 0.0), (100.0, 100.0), (-5.0, 0.0), (140.0, 100.0)],
)
def test_coverage_clamped(coverage: float, expected: float) -> None:
    assert comp(score(healthy(coverage=coverage), NOW), "coverage").score == expected


@pytest.mark.parametrize("coverage", [None, float("nan"), float("inf"), float("-inf")])
def test_coverage_missing_is_inconclusive(coverage: float | None) -> None:
    result = score(healthy(coverage=coverage), NOW)
    c = comp(result, "coverage")
    assert c.score is None
    assert c.reason == "No coverage data for octo/repo"
    assert result.warnings == ("No coverage data for octo/repo",)


# -- dependencies --------------------------------------------------------------


def test_dependencies_penalties_and_reason() -> None:
    inputs = healthy(open_alerts={"critical": 1, "high": 1}, open_dependency_prs=3)
    c = comp(score(inputs, NOW), "dependencies")
    assert c.score == 100 - 25 - 15 - 3 * 5
    assert c.reason == "2 open alerts (1 critical, 1 high), 3 outdated dependencies"


def test_dependencies_every_severity() -> None:
    alerts = {"low": 2, "medium": 1, "high": 1}
    c = comp(score(healthy(open_alerts=alerts, open_dependency_prs=1), NOW), "dependencies")
    assert c.score == 100 - 2 * 3 - 8 - 15 - 5
    assert c.reason == "4 open alerts (1 high, 1 medium, 2 low), 1 outdated dependency"


def test_dependencies_clean() -> None:
    c = comp(score(healthy(), NOW), "dependencies")
    assert c.score == 100.0
    assert c.reason == "no open alerts, no outdated dependencies"


def test_dependencies_floor_at_zero() -> None:
    c = comp(
        score(healthy(open_alerts={"critical": 9}, open_dependency_prs=40), NOW), "dependencies"
    )
    assert c.score == 0.0


def test_dependencies_unknown_severity_is_listed_but_free() -> None:
    c = comp(score(healthy(open_alerts={"unknown": 2, "zero": 0}), NOW), "dependencies")
    assert c.score == 100.0
    assert c.reason == "2 open alerts (2 unknown), no outdated dependencies"


# -- dependabot unknown: dependencies and security inconclusive ----------------


def test_dependabot_unknown_makes_dependencies_and_security_inconclusive() -> None:
    inputs = healthy(dependabot_known=False, open_alerts={"critical": 3}, open_dependency_prs=4)
    result = score(inputs, NOW)
    assert comp(result, "dependencies").score is None
    assert comp(result, "security").score is None
    assert result.warnings == (
        "No dependency data for octo/repo",
        "No security data for octo/repo",
    )
    assert result.score == 100.0  # not counted as zero


# -- documentation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("readme", "api_docs", "expected", "reason"),
    [
        (True, True, 100.0, "README present, API docs present"),
        (True, False, 60.0, "README present, API docs missing"),
        (False, True, 40.0, "README missing, API docs present"),
        (False, False, 0.0, "README missing, API docs missing"),
        # One unknown counts as absent once the other is known.
        (True, None, 60.0, "README present, API docs missing"),
        (None, True, 40.0, "README missing, API docs present"),
        (None, False, 0.0, "README missing, API docs missing"),
    ],
)
def test_documentation(
    readme: bool | None, api_docs: bool | None, expected: float, reason: str
) -> None:
    c = comp(score(healthy(readme=readme, api_docs=api_docs), NOW), "documentation")
    assert c.score == expected
    assert c.reason == reason


def test_documentation_both_unknown_is_inconclusive() -> None:
    result = score(healthy(readme=None, api_docs=None), NOW)
    assert comp(result, "documentation").score is None
    assert result.warnings == ("No documentation data for octo/repo",)


# -- activity ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(0), 100.0),
        (timedelta(days=30), 100.0),
        (timedelta(days=30, seconds=1), 60.0),
        (timedelta(days=90), 60.0),
        (timedelta(days=91), 20.0),
        (timedelta(days=365), 20.0),
        (timedelta(days=366), 0.0),
        (timedelta(days=-3), 100.0),  # clock skew: a future commit is fresh
    ],
)
def test_activity_steps(age: timedelta, expected: float) -> None:
    c = comp(score(healthy(last_commit_at=NOW - age), NOW), "activity")
    assert c.score == expected


def test_activity_reason_names_the_most_recent_signal() -> None:
    inputs = healthy(
        last_commit_at=NOW - timedelta(days=12), last_issue_activity_at=NOW - timedelta(days=200)
    )
    c = comp(score(inputs, NOW), "activity")
    assert (c.score, c.reason) == (100.0, "last commit 12 days ago")

    inputs = healthy(
        last_commit_at=NOW - timedelta(days=400), last_issue_activity_at=NOW - timedelta(days=45)
    )
    c = comp(score(inputs, NOW), "activity")
    assert (c.score, c.reason) == (60.0, "last issue activity 45 days ago")
    assert c.inputs["last_issue_activity_at"] == "2026-01-15T12:00:00Z"


def test_activity_singular_day() -> None:
    c = comp(score(healthy(last_commit_at=NOW - timedelta(days=1, hours=3)), NOW), "activity")
    assert c.reason == "last commit 1 day ago"


def test_activity_naive_datetimes_are_utc() -> None:
    naive = datetime(2026, 2, 20, 12, 0)
    c = comp(score(healthy(last_commit_at=naive), NOW.replace(tzinfo=None)), "activity")
    assert c.reason == "last commit 9 days ago"
    assert c.inputs["last_commit_at"] == "2026-02-20T12:00:00Z"


def test_activity_no_dates_is_inconclusive() -> None:
    result = score(healthy(last_commit_at=None, last_issue_activity_at=None), NOW)
    assert comp(result, "activity").score is None
    assert result.warnings == ("No activity data for octo/repo",)


# -- archived ------------------------------------------------------------------


@pytest.mark.parametrize("last_commit", [NOW, None])
def test_archived_repository_is_not_maintained(last_commit: datetime | None) -> None:
    result = score(healthy(archived=True, last_commit_at=last_commit), NOW)
    c = comp(result, "activity")
    assert (c.score, c.reason) == (0.0, "archived: not maintained")
    assert result.warnings == ()
    assert result.score == 90.0  # activity's 10 points, lost


# -- security ------------------------------------------------------------------


def test_security_critical_is_the_cap() -> None:
    result = score(healthy(open_alerts={"critical": 1}), NOW)
    c = comp(result, "security")
    assert (c.score, c.reason) == (0.0, "1 open critical vulnerability")
    # dependencies 75 and security 0, the rest perfect.
    assert result.score == (25 * 100 + 20 * 100 + 20 * 75 + 15 * 100 + 10 * 100 + 10 * 0) / 100


def test_security_critical_beats_any_number_of_highs() -> None:
    c = comp(score(healthy(open_alerts={"critical": 2, "high": 0}), NOW), "security")
    assert (c.score, c.reason) == (0.0, "2 open critical vulnerabilities")


@pytest.mark.parametrize(("high", "expected"), [(0, 100.0), (1, 80.0), (3, 40.0), (7, 40.0)])
def test_security_highs(high: int, expected: float) -> None:
    c = comp(score(healthy(open_alerts={"high": high, "medium": 4}), NOW), "security")
    assert c.score == expected
    assert c.reason.startswith("no open critical vulnerability")


# -- weights, redistribution, totals -------------------------------------------


def test_missing_coverage_spreads_its_weight_exactly() -> None:
    inputs = healthy(
        builds=("success",) * 3 + ("failure",),  # 75
        coverage=None,  # inconclusive: weight 20 spread over the other 80
        open_dependency_prs=2,  # 90
        readme=True,
        api_docs=False,  # 60
        last_commit_at=NOW - timedelta(days=60),  # 60
        open_alerts={"high": 1},  # dependencies 90 - 15 = 75; security 80
    )
    result = score(inputs, NOW)
    expected = (25 * 75 + 20 * 75 + 15 * 60 + 10 * 60 + 10 * 80) / 80
    assert expected == 70.9375
    assert result.score == 70.9
    assert result.warnings == ("No coverage data for octo/repo",)
    shares = effective_weights(result.components)
    assert shares == {
        "build": 31.25,
        "coverage": 0.0,
        "dependencies": 25.0,
        "documentation": 18.75,
        "activity": 12.5,
        "security": 12.5,
    }
    assert sum(shares.values()) == 100.0


def test_full_weighted_arithmetic() -> None:
    inputs = healthy(builds=("failure", "success"), coverage=42.0, readme=False, api_docs=True)
    result = score(inputs, NOW)
    assert result.score == (25 * 50 + 20 * 42 + 20 * 100 + 15 * 40 + 10 * 100 + 10 * 100) / 100


def test_all_inconclusive_is_none() -> None:
    result = score(RepoInputs(name=NAME), NOW)
    assert result.score is None
    assert all(c.score is None for c in result.components)
    assert result.warnings == (
        "No build data for octo/repo",
        "No coverage data for octo/repo",
        "No dependency data for octo/repo",
        "No documentation data for octo/repo",
        "No activity data for octo/repo",
        "No security data for octo/repo",
    )
    assert set(effective_weights(result.components).values()) == {0.0}


def test_as_dict_is_plain_json() -> None:
    result = score(healthy(coverage=None, open_alerts={"high": 1}), NOW)
    data = as_dict(result)
    assert list(data) == list(WEIGHTS)
    assert data["coverage"] == {
        "score": None,
        "weight": 20,
        "effective_weight": 0.0,
        "reason": "No coverage data for octo/repo",
        "inputs": {"coverage": None},
    }
    assert data["build"]["effective_weight"] == 31.25
    assert data["security"]["inputs"] == {"critical": 0, "high": 1}
    assert json.loads(json.dumps(data, allow_nan=False)) == data


# -- changed() -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (70.0, 70.0, False),
        (70.0, 70.4, False),
        (70.0, 70.5, True),
        (70.1, 70.6, True),  # float noise: 70.6 - 70.1 < 0.5 in binary
        (70.6, 70.1, True),
        (80.0, 20.0, True),
        (None, None, False),
        (None, 50.0, True),
        (50.0, None, True),
    ],
)
def test_changed(old: float | None, new: float | None, expected: bool) -> None:
    assert changed(old, new) is expected


def test_changed_threshold() -> None:
    assert changed(50.0, 52.0, threshold=5.0) is False
    assert changed(50.0, 55.0, threshold=5.0) is True


# -- properties ----------------------------------------------------------------

PASS_FAIL = ["success", "failure", "timed_out", "startup_failure"]
NOT_COUNTED = ["cancelled", "skipped", "neutral", "stale", "action_required", "mystery"]
CONCLUSIONS = st.sampled_from([*PASS_FAIL, *NOT_COUNTED])
MAYBE_TIME = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
INPUTS = st.builds(
    RepoInputs,
    name=st.just(NAME),
    archived=st.booleans(),
    builds=st.lists(CONCLUSIONS, max_size=15).map(tuple),
    coverage=st.none() | st.floats(allow_nan=True, allow_infinity=True),
    open_alerts=st.dictionaries(
        st.sampled_from(["critical", "high", "medium", "low", "odd"]),
        st.integers(min_value=-3, max_value=50),
    ),
    open_dependency_prs=st.integers(min_value=-3, max_value=100),
    dependabot_known=st.booleans(),
    readme=st.none() | st.booleans(),
    api_docs=st.none() | st.booleans(),
    last_commit_at=MAYBE_TIME,
    last_issue_activity_at=MAYBE_TIME,
)


@given(INPUTS)
def test_score_is_bounded_and_deterministic(inputs: RepoInputs) -> None:
    first, second = score(inputs, NOW), score(inputs, NOW)
    assert first == second
    assert as_dict(first) == as_dict(second)
    if first.score is not None:
        assert 0.0 <= first.score <= 100.0
        assert first.score == round(first.score, 1)
    for c in first.components:
        assert c.score is None or 0.0 <= c.score <= 100.0
    inconclusive = [c for c in first.components if c.score is None]
    assert len(first.warnings) == len(inconclusive)
    assert (first.score is None) == (len(inconclusive) == len(WEIGHTS))
    shares = effective_weights(first.components)
    if first.score is not None:
        assert sum(shares.values()) == pytest.approx(100.0)
    json.dumps(as_dict(first), allow_nan=False)  # always plain, strict JSON


@given(INPUTS)
def test_a_known_perfect_component_never_lowers_the_score(inputs: RepoInputs) -> None:
    """Adding a 100 where there was no data can only keep or raise the total."""
    if inputs.coverage is not None:
        inputs = replace(inputs, coverage=None)
    before = score(inputs, NOW).score
    after = score(replace(inputs, coverage=100.0), NOW).score
    assert after is not None
    assert before is None or after >= before


# --- coverage: how much of a score rests on data --------------------------------------


def test_one_green_build_is_100_but_provisional() -> None:
    """The user's case: 100 on one build, five components without data."""
    result = health.score(health.RepoInputs("o/r", builds=("success",)), NOW)
    assert result.score == 100.0
    assert result.coverage.as_dict() == {"components": 1, "of": 6, "weight": 25}
    assert result.provisional


@pytest.mark.parametrize(
    ("inputs", "components", "weight", "provisional"),
    [
        # build 25 + coverage 20 = 45: under half
        (dict(builds=("success",), coverage=80.0), 2, 45, True),
        # + documentation 15 = 60: not provisional
        (dict(builds=("success",), coverage=80.0, readme=True), 3, 60, False),
        # dependencies 20 + security 10 + coverage 20 = 50: exactly half is enough
        (dict(dependabot_known=True, coverage=10.0), 3, 50, False),
        # archived: activity is known (0), 10 of 100
        (dict(archived=True), 1, 10, True),
    ],
)
def test_coverage_counts_components_and_weight(
    inputs: dict[str, object], components: int, weight: int, provisional: bool
) -> None:
    result = health.score(health.RepoInputs("o/r", **inputs), NOW)  # type: ignore[arg-type]
    assert result.coverage.as_dict() == {"components": components, "of": 6, "weight": weight}
    assert result.provisional is provisional


def test_no_data_is_no_score_not_a_provisional_one() -> None:
    result = health.score(health.RepoInputs("o/r"), NOW)
    assert result.score is None and not result.provisional
    assert result.coverage.as_dict() == {"components": 0, "of": 6, "weight": 0}


def test_stored_coverage_reads_what_as_dict_wrote() -> None:
    """Pages read the health table's JSON: the same coverage as the score itself,
    through a JSON round trip, with the weights stored beside the score."""
    for inputs in (
        health.RepoInputs("o/r", builds=("success",)),
        health.RepoInputs("o/r", builds=("failure",), coverage=50, readme=False),
        health.RepoInputs("o/r"),
    ):
        result = health.score(inputs, NOW)
        stored = json.loads(json.dumps(health.as_dict(result)))
        cover = health.stored_coverage(stored)
        assert cover == result.coverage
        assert health.provisional(result.score, cover) is result.provisional
    assert health.stored_coverage({}) is None
    assert not health.provisional(50.0, None)


def test_coverage_weight_is_a_share_of_the_stored_weights() -> None:
    # Weights of another formula version (not summing to 100): the share still counts.
    stored: dict[str, dict[str, Any]] = {
        "a": {"score": 1.0, "weight": 30},
        "b": {"score": None, "weight": 30},
    }
    cover = health.stored_coverage(stored)
    assert cover is not None and cover.as_dict() == {"components": 1, "of": 2, "weight": 50}
    assert not cover.provisional
    stored["c"] = {"score": None, "weight": 1}
    cover = health.stored_coverage(stored)
    assert cover is not None and cover.provisional and cover.as_dict()["weight"] == 49.2


@given(st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans()))
def test_provisional_exactly_when_under_half_the_weight(known: tuple[bool, ...]) -> None:
    build, cov, deps, docs, activity = known
    inputs = health.RepoInputs(
        "o/r",
        builds=("success",) if build else (),
        coverage=70.0 if cov else None,
        dependabot_known=deps,
        readme=True if docs else None,
        last_commit_at=NOW if activity else None,
    )
    result = health.score(inputs, NOW)
    weight = sum(c.weight for c in result.components if c.score is not None)
    assert result.coverage.weight == weight
    assert result.provisional is (result.score is not None and weight < 50)
