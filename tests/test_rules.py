"""Alert rules: loading (never executing), validation, safe evaluation, the CLI, messages."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simpleeval import InvalidExpression

from pulsehook.cli import main
from pulsehook.facts import Build, Coverage, fact_dict
from pulsehook.github.normalize import normalize
from pulsehook.rules.evaluate import ConditionError, Evaluator, compile_condition
from pulsehook.rules.load import RulesInvalid, load_rules
from pulsehook.rules.messages import render
from pulsehook.rules.model import Rule
from pulsehook.rules.validate import rule_from_dict

from .conftest import PAYLOADS, payload

SHIPPED = Path(__file__).resolve().parent.parent / "rules"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"

SEED_TOML = """\
[[rule]]
name = "critical_vulnerability"
condition = "vulnerability.severity == 'critical'"
channels = ["slack", "email"]
frequency = "immediate"

[[rule]]
name = "build_failure"
condition = "build.status == 'failure' and build.branch == 'main'"
channels = ["slack"]
frequency = "immediate"

[[rule]]
name = "coverage_drop"
condition = "coverage.delta < -5"
channels = ["slack"]
frequency = "daily_digest"

[channels.slack]
kind = "slack"
webhook_url = "${SLACK_WEBHOOK_URL}"

[channels.discord]
kind = "discord"
webhook_url = "${DISCORD_WEBHOOK_URL}"
"""

# The seed's rule file, verbatim: still accepted as written.
SEED_PY = """\
ALERT_RULES = [
    {"name": "critical_vulnerability",
     "condition": "vulnerability.severity == 'critical'",
     "channels": ["slack", "email"], "frequency": "immediate"},
    {"name": "build_failure",
     "condition": "build.status == 'failure' and build.branch == 'main'",
     "channels": ["slack"], "frequency": "immediate"},
    {"name": "coverage_drop", "condition": "coverage.delta < -5",
     "channels": ["slack"], "frequency": "daily_digest"},
]
WEBHOOKS = {"slack": "${SLACK_WEBHOOK_URL}", "discord": "${DISCORD_WEBHOOK_URL}"}
"""

BASE_RULE: dict[str, Any] = {
    "name": "x",
    "condition": "build.status == 'failure'",
    "channels": ["slack"],
}


def rule_toml(**fields: Any) -> str:
    """One ``[[rule]]`` table: BASE_RULE overridden by ``fields`` (None drops a key)."""
    merged = {**BASE_RULE, **fields}
    lines = ["[[rule]]"] + [f"{k} = {json.dumps(v)}" for k, v in merged.items() if v is not None]
    return "\n".join(lines) + "\n"


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def invalid(directory: Path, env: dict[str, str] | None = None) -> list[str]:
    """The problems ``load_rules`` reports for ``directory`` (it must reject it)."""
    with pytest.raises(RulesInvalid) as info:
        load_rules(directory, env or {})
    assert info.value.problems
    return info.value.problems


def check(directory: Path) -> Result:
    return CliRunner().invoke(main, ["rules", "check", str(directory)])


def without_source(rule: Rule) -> Rule:
    return dataclasses.replace(rule, source="")


def build_data(**overrides: Any) -> dict[str, Any]:
    """A real build fact (from GitHub's workflow_run example), with fields overridden."""
    facts = normalize("workflow_run", payload("workflow_run.completed"))
    assert len(facts) == 1 and isinstance(facts[0], Build)
    return {**fact_dict(facts[0]), **overrides}


def coverage_data(**overrides: Any) -> dict[str, Any]:
    fact = Coverage(
        repo="o/r",
        repo_id=1,
        branch="main",
        sha="abc",
        value=80.0,
        delta=None,
        url=None,
        at="2026-01-31T08:00:00Z",
        source="status",
    )
    return {**fact_dict(fact), **overrides}


# --- 1. Loading ------------------------------------------------------------------------------


def test_shipped_rules_load() -> None:
    rule_set = load_rules(SHIPPED, {})
    assert [(r.name, r.fact) for r in rule_set.rules] == [
        ("critical_vulnerability", "vulnerability"),
        ("build_failure", "build"),
        ("coverage_drop", "coverage"),
        ("summary_missing", "spec"),  # rules/summary.toml, shipped beside the seed's
        ("workflow_disabled", "workflow"),
        ("workflow_inactive", "workflow"),
    ]
    coverage = rule_set.rule("coverage_drop")
    assert coverage is not None
    assert coverage.frequency == "daily_digest" and coverage.is_digest
    assert coverage.cron == "0 8 * * *"
    build = rule_set.rule("build_failure")
    assert build is not None and build.cron is None and not build.is_digest
    assert build.fields == frozenset({"status", "default_branch"})
    assert rule_set.by_fact("vulnerability")[0].channels == ("slack", "email")


def test_shipped_rules_with_slack_url_configure_slack_secretly() -> None:
    rule_set = load_rules(SHIPPED, {"SLACK_WEBHOOK_URL": SLACK_URL})
    slack = rule_set.channels["slack"]
    assert slack.kind == "slack"
    assert slack.options["webhook_url"] == SLACK_URL
    assert "webhook_url" in slack.secret_keys
    assert slack.public() == {"webhook_url": "***"}
    assert SLACK_URL not in repr(slack.public())
    assert "slack" not in rule_set.unconfigured
    assert not any("'slack'" in w for w in rule_set.warnings)


def test_shipped_rules_without_slack_url_park_slack_with_a_warning() -> None:
    rule_set = load_rules(SHIPPED, {})
    assert "slack" not in rule_set.channels
    assert "SLACK_WEBHOOK_URL" in rule_set.unconfigured["slack"]
    slack_warnings = [w for w in rule_set.warnings if "channel 'slack'" in w]
    assert slack_warnings
    assert all("not configured" in w and "SLACK_WEBHOOK_URL" in w for w in slack_warnings)
    assert any("rule 'build_failure'" in w for w in slack_warnings)
    assert any("alerts.py" in w for w in slack_warnings)


def test_toml_form_loads_like_the_seeds_python(tmp_path: Path) -> None:
    (tmp_path / "toml").mkdir()
    (tmp_path / "py").mkdir()
    write(tmp_path / "toml", "alerts.toml", SEED_TOML)
    write(tmp_path / "py", "alerts.py", SEED_PY)
    env = {"SLACK_WEBHOOK_URL": SLACK_URL}
    from_toml = load_rules(tmp_path / "toml", env)
    shipped = load_rules(tmp_path / "py", env)
    assert [without_source(r) for r in from_toml.rules] == [
        without_source(r) for r in shipped.rules
    ]
    assert all(r.source.endswith("alerts.toml") for r in from_toml.rules)
    assert from_toml.channels == shipped.channels
    assert from_toml.channels["slack"].public() == {"webhook_url": "***"}
    assert set(from_toml.unconfigured) == set(shipped.unconfigured)


def test_toml_named_channel_with_env_substitution(tmp_path: Path) -> None:
    write(
        tmp_path,
        "oncall.toml",
        '[channels.oncall]\nkind = "slack"\nwebhook_url = "https://hooks.example/${ONCALL_TOKEN}"\n'
        '[channels.team]\nkind = "email"\nhost = "smtp.example.com"\nto = ["a@example.com"]\n'
        + rule_toml(channels=["oncall", "team"]),
    )
    rule_set = load_rules(tmp_path, {"ONCALL_TOKEN": "tok123"})
    oncall = rule_set.channels["oncall"]
    assert oncall.options["webhook_url"] == "https://hooks.example/tok123"
    assert oncall.public() == {"webhook_url": "***"}
    team = rule_set.channels["team"]
    # Not from the environment and not a secret name: shown as is.
    assert team.public() == {"host": "smtp.example.com", "to": ["a@example.com"]}
    # Without the variable the channel is parked, named, with the variable to set.
    parked = load_rules(tmp_path, {})
    assert "oncall" not in parked.channels
    assert "ONCALL_TOKEN" in parked.unconfigured["oncall"]
    assert any("channel 'oncall'" in w and "ONCALL_TOKEN" in w for w in parked.warnings)


def test_seed_python_form_copied_verbatim_loads(tmp_path: Path) -> None:
    write(tmp_path, "seed.py", SEED_PY)
    rule_set = load_rules(tmp_path, {})
    assert [r.name for r in rule_set.rules] == [
        "critical_vulnerability",
        "build_failure",
        "coverage_drop",
    ]
    assert "discord" in rule_set.unconfigured


def test_shipped_build_rule_catches_a_red_default_branch_whatever_its_name() -> None:
    (rule,) = [r for r in load_rules(SHIPPED, {}).rules if r.name == "build_failure"]
    example = build_data(status="failure")
    assert example["branch"] == "master" and example["default_branch"] is True
    evaluator = Evaluator()
    assert evaluator.matches(rule, example)  # the project's own example payload
    for branch in ("main", "trunk", "develop"):
        assert evaluator.matches(rule, build_data(status="failure", branch=branch))
    assert not evaluator.matches(
        rule, build_data(status="failure", branch="feature/x", default_branch=False)
    )
    assert not evaluator.matches(rule, build_data(status="success"))


def test_files_starting_with_underscore_or_dot_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, "_draft.toml", "this is not toml [")
    write(tmp_path, ".hidden.py", "import os\n")
    write(tmp_path, "notes.txt", "ignored")
    write(tmp_path, "ok.toml", rule_toml())
    assert [r.name for r in load_rules(tmp_path, {}).rules] == ["x"]


def test_missing_directory_is_invalid(tmp_path: Path) -> None:
    problems = invalid(tmp_path / "nope")
    assert "does not exist" in problems[0]


# --- 2. The Python form is never executed ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("import os\n", "only assignments of literal values"),
        ("from os import system\n", "only assignments of literal values"),
        ("ALERT_RULES = list()\n", "ALERT_RULES must be a literal"),
        ("__import__('os').system('touch {marker}')\n", "only assignments of literal values"),
        ("ALERT_RULES = __import__('os').system('touch {marker}')\n", "must be a literal"),
        ("ALERT_RULES = [open('{marker}', 'w')]\n", "must be a literal"),
        ("SOMETHING = 1\n", "unknown name 'SOMETHING'"),
        ("def f():\n    pass\n", "only assignments of literal values"),
        ("ALERT_RULES: list = []\n", "only assignments of literal values"),
    ],
)
def test_python_rules_are_parsed_never_executed(tmp_path: Path, body: str, expected: str) -> None:
    marker = tmp_path / "side_effect"
    rules_dir = tmp_path / "rules"
    # A docstring first, so the offending statement is on line 2.
    path = write(rules_dir, "evil.py", '"""Rules."""\n' + body.format(marker=marker))
    problems = invalid(rules_dir)
    assert len(problems) == 1
    assert str(path) in problems[0]
    assert "line 2" in problems[0]
    assert expected in problems[0]
    result = check(rules_dir)
    assert result.exit_code == 1
    assert str(path) in result.output and expected in result.output
    assert not marker.exists()


def test_python_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", "ALERT_RULES = [\n  {'name': 'x',\n")
    problems = invalid(tmp_path)
    assert str(path) in problems[0] and "syntax error" in problems[0]
    assert "line " in problems[0]


# --- 3. Validation -----------------------------------------------------------------------------

LONG_CONDITION = "build.status == 'failure' or " * 40 + "build.status == 'x'"
assert len(LONG_CONDITION) > 1000


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"condition": "build.status =="}, ["syntax error"]),
        ({"condition": "builds.status == 'x'"}, ["only allowed on a fact name"]),
        ({"condition": "build.colour == 'red'"}, ["unknown field build.colour", "status"]),
        (
            {"condition": "build.status == 'x' and coverage.delta < 1"},
            ["mixes facts build, coverage"],
        ),
        ({"condition": "status == 'x'"}, ["unknown name 'status'"]),
        ({"condition": "1 == 1"}, ["uses no fact"]),
        ({"channels": ["teams"]}, ["unknown channel 'teams'"]),
        ({"channels": []}, ["channels must be a non-empty list"]),
        ({"frequency": "sometimes"}, ["bad frequency 'sometimes'"]),
        ({"frequency": "61 * * * *"}, ["bad frequency '61 * * * *'", "cron"]),
        ({"severity": "urgent"}, ["bad severity 'urgent'", "critical"]),
        ({"repeat_interval": "soon"}, ["repeat_interval", "not a duration"]),
        ({"repeat_interval": -5}, ["repeat_interval", "negative"]),
        ({"notify_resolved": "no"}, ["notify_resolved must be true or false"]),
        ({"repos": [1]}, ["repos and exclude_repos must be lists"]),
        ({"condition": None}, ["missing 'condition'"]),
        ({"channels": None}, ["missing 'channels'"]),
        ({"colour": "red"}, ["unknown key 'colour'"]),
        ({"condition": ""}, ["condition is empty"]),
        ({"condition": "   "}, ["condition is empty"]),
        ({"condition": LONG_CONDITION}, ["longer than 1000 characters"]),
        ({"message": "{{ build.status "}, ["message template"]),
    ],
)
def test_invalid_rule_is_reported_with_file_rule_and_problem(
    tmp_path: Path, fields: dict[str, Any], expected: list[str]
) -> None:
    path = write(tmp_path, "alerts.toml", rule_toml(**fields))
    problems = invalid(tmp_path)
    matching = [p for p in problems if all(e in p for e in expected)]
    assert matching, problems
    assert str(path) in matching[0]
    assert "rule 'x'" in matching[0]
    result = check(tmp_path)
    assert result.exit_code == 1
    assert "error:" in result.output
    assert str(path) in result.output and "rule 'x'" in result.output
    assert all(e in result.output for e in expected)
    assert "ok:" not in result.output


def test_missing_name_is_reported_by_position(tmp_path: Path) -> None:
    path = write(tmp_path, "alerts.toml", rule_toml() + rule_toml(name=None))
    problems = invalid(tmp_path)
    assert any(str(path) in p and "rule #2" in p and "missing 'name'" in p for p in problems)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", rule_toml(name="one", severity="urgent", frequency="sometimes"))
    write(tmp_path, "b.toml", rule_toml(name="two", condition="build.colour == 1"))
    problems = invalid(tmp_path)
    assert any("'one'" in p and "bad severity" in p for p in problems)
    assert any("'one'" in p and "bad frequency" in p for p in problems)
    assert any("'two'" in p and "unknown field" in p for p in problems)


@pytest.mark.parametrize(
    "cron", ["*/15 9-17 * * mon-fri", "0 8 * * mon", "30 6 1 * *", "hourly_digest"]
)
def test_valid_cron_frequency_is_accepted(tmp_path: Path, cron: str) -> None:
    write(tmp_path, "alerts.toml", rule_toml(frequency=cron, repeat_interval="1h30m"))
    rule_set = load_rules(tmp_path, {})
    rule = rule_set.rules[0]
    assert rule.frequency == cron and rule.is_digest
    assert rule.cron == ("0 * * * *" if cron == "hourly_digest" else cron)
    assert rule.repeat_interval is not None
    assert rule.repeat_interval.total_seconds() == 5400


def test_duplicate_rule_names_across_files_name_both_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.toml", rule_toml(name="dup"))
    second = write(
        tmp_path,
        "b.py",
        "ALERT_RULES = [{'name': 'dup', 'condition': \"build.status == 'x'\","
        " 'channels': ['slack']}]\n",
    )
    problems = invalid(tmp_path)
    dup = [p for p in problems if "duplicate name" in p]
    assert len(dup) == 1
    assert str(first) in dup[0] and str(second) in dup[0] and "'dup'" in dup[0]
    result = check(tmp_path)
    assert result.exit_code == 1
    assert "duplicate name" in result.output


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "alerts.toml", '[[rule]\nname = "x"\n')
    problems = invalid(tmp_path)
    assert len(problems) == 1
    assert str(path) in problems[0] and "TOML error" in problems[0]
    result = check(tmp_path)
    assert result.exit_code == 1 and "TOML error" in result.output


def test_toml_unknown_table_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "alerts.toml", "[rules]\nname = 'x'\n")
    problems = invalid(tmp_path)
    assert str(path) in problems[0] and "unknown table(s) rules" in problems[0]


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ('[channels.x]\nkind = "carrier-pigeon"\n', "unknown kind 'carrier-pigeon'"),
        ('[channels.x]\nkind = "slack"\n', "needs webhook_url"),
    ],
)
def test_bad_channel_definitions(tmp_path: Path, channel: str, expected: str) -> None:
    path = write(tmp_path, "alerts.toml", channel)
    problems = invalid(tmp_path)
    assert any(str(path) in p and "channel 'x'" in p and expected in p for p in problems)


def test_valid_directory_checks_ok(tmp_path: Path) -> None:
    write(tmp_path, "alerts.toml", SEED_TOML)
    write(tmp_path, "more.toml", rule_toml(name="release_build", frequency="0 9 * * mon-fri"))
    result = check(tmp_path)
    assert result.exit_code == 0, result.output
    assert "ok: 4 rule(s)" in result.output
    assert "release_build: build -> slack (0 9 * * mon-fri)" in result.output
    assert "error:" not in result.output


def test_shipped_directory_checks_ok() -> None:
    result = check(SHIPPED)
    assert result.exit_code == 0, result.output
    assert "ok: 6 rule(s)" in result.output
    assert "coverage_drop: coverage -> slack (daily_digest)" in result.output


# --- 4. Escapes ------------------------------------------------------------------------------

ESCAPES = [
    "build.__class__",
    "build.status.__class__.__mro__",
    "().__class__.__bases__[0].__subclasses__()",
    "__import__('os')",
    "__import__('os').system('true')",
    "open('/etc/passwd')",
    "open('/etc/passwd').read()",
    "build.status.upper()",
    "[x for x in (1,)]",
    "{x: 1 for x in build}",
    "lambda: 1",
    "(lambda: build)()",
    "build.get('status')",
    "getattr(build, 'status')",
    "'a' * 10**9",
    "f'{build.status}'",
    "f'{build.__class__}'",
    "(x := build.status)",
    "build.status if (x := 1) else 0",
    "str.__class__",
    "len.__self__",
    "max.__globals__",
    "build.status[0:1]",
    "len(build, key=1)",
    "{'a': 1}",
]


@pytest.mark.parametrize("text", ESCAPES)
def test_escape_attempts_fail_to_compile(text: str) -> None:
    with pytest.raises(ConditionError):
        compile_condition(text)


@pytest.mark.parametrize("text", ["build.__class__", "__import__('os')", "'a' * 10**9"])
def test_escape_attempts_fail_at_load(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "alerts.toml", rule_toml(condition=text))
    problems = invalid(tmp_path)
    assert str(path) in problems[0] and "rule 'x'" in problems[0] and "condition" in problems[0]


# Even if a tree got past the load-time check, the evaluator reaches no attribute, method,
# builtin or unbounded value: each of these fails when evaluated.
EVAL_ESCAPES = [
    "build.__class__",
    "build.status.__class__.__mro__",
    "().__class__.__bases__[0].__subclasses__()",
    "__import__('os')",
    "open('/etc/passwd')",
    "build.status.upper()",
    "lambda: 1",
    "build.get('status')",
    "getattr(build, 'status')",
    "'a' * 10**9",
    "(x := build.status)",
    "len.__self__",
]


@pytest.mark.parametrize("text", EVAL_ESCAPES)
def test_escape_attempts_fail_at_evaluation(text: str) -> None:
    tree = ast.parse(text, mode="eval")  # deliberately not compile_condition
    with pytest.raises(InvalidExpression):
        Evaluator().evaluate(tree, "build", build_data(), text, frozenset({"status"}))


# --- 5. Evaluation ---------------------------------------------------------------------------


def evaluate(condition: str, data: dict[str, Any]) -> bool:
    tree, kind, fields = compile_condition(condition)
    return Evaluator().evaluate(tree, kind, data, condition, fields)


@pytest.mark.parametrize(
    ("condition", "overrides", "expected"),
    [
        ("startswith(build.branch, 'release/')", {"branch": "release/1.2"}, True),
        ("startswith(build.branch, 'release/')", {"branch": "main"}, False),
        ("startswith(build.branch, 'release/')", {"branch": None}, False),
        ("endswith(build.workflow, 'nightly')", {"workflow": "CI nightly"}, True),
        ("matches(build.workflow, '^CI')", {"workflow": "CI / test"}, True),
        ("matches(build.workflow, '^CI')", {"workflow": "Release CI"}, False),
        ("matches(build.workflow, '^CI')", {"workflow": None}, False),
        ("len(build.workflow) > 1", {"workflow": "CI"}, True),
        ("len(build.workflow) > 1", {"workflow": "C"}, False),
        ("upper(build.status) == 'FAILURE'", {"status": "failure"}, True),
        ("build.status in ['failure', 'timed_out'] and not build.default_branch", {}, False),
        ("build.attempt >= 2 or build.run_id % 2 == 1", {"attempt": 1, "run_id": 3}, True),
        ("build.job is null", {}, True),
        ("build.status == 'failure' if build.branch == 'main' else false", {}, False),
        ("build.workflow[0] == 't'", {}, True),
    ],
)
def test_build_conditions(condition: str, overrides: dict[str, Any], expected: bool) -> None:
    assert evaluate(condition, build_data(**overrides)) is expected


@pytest.mark.parametrize(
    ("severity", "expected"), [("HIGH", True), ("Critical", True), ("low", False)]
)
def test_lower_in_list(severity: str, expected: bool) -> None:
    condition = "lower(vulnerability.severity) in ['high','critical']"
    assert evaluate(condition, {"repo": "o/r", "severity": severity}) is expected


def test_comparison_with_a_null_field_is_false_not_an_error() -> None:
    assert evaluate("coverage.delta < -5", coverage_data(delta=None)) is False
    assert evaluate("coverage.delta < -5", coverage_data(delta=-7.5)) is True
    assert evaluate("coverage.delta < -5", coverage_data(delta=-1.0)) is False
    assert evaluate("coverage.delta is None", coverage_data(delta=None)) is True


def test_real_type_error_raises() -> None:
    with pytest.raises(TypeError):
        evaluate("len(build.status) > 'x'", build_data(status="failure"))


def test_reading_a_field_missing_from_the_data_fails() -> None:
    tree, kind, fields = compile_condition("build.status == 'failure'")
    with pytest.raises(InvalidExpression):
        Evaluator().evaluate(tree, kind, {"repo": "o/r"}, "", fields)


def test_evaluator_is_reusable_across_facts() -> None:
    tree, kind, fields = compile_condition("build.status == 'failure' and build.branch == 'main'")
    evaluator = Evaluator()
    assert evaluator.evaluate(tree, kind, build_data(status="failure", branch="main"), "", fields)
    assert not evaluator.evaluate(tree, kind, build_data(status="success"), "", fields)
    assert evaluator.evaluate(tree, kind, build_data(status="failure", branch="main"), "", fields)


build_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.text(max_size=12),
    st.sampled_from(["failure", "success", "main", "release/1", "CI", "CI nightly"]),
)
BUILD_FIELDS = [f.name for f in dataclasses.fields(Build)]
DETERMINISM_CONDITION = (
    "(build.status == 'failure' and startswith(build.branch, 'release/'))"
    " or matches(build.workflow, '^CI') or len(str(build.job)) > 3"
    " or lower(build.actor) in ['octocat', 'dependabot[bot]'] or build.attempt > 1"
)


def _outcome(evaluator: Evaluator, tree: ast.Expression, data: dict[str, Any]) -> tuple[Any, ...]:
    fields = frozenset({"status", "branch", "workflow", "job", "actor", "attempt"})
    try:
        return ("ok", evaluator.evaluate(tree, "build", data, DETERMINISM_CONDITION, fields))
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({name: build_values for name in BUILD_FIELDS}))
def test_evaluation_is_deterministic(data: dict[str, Any]) -> None:
    tree, kind, fields = compile_condition(DETERMINISM_CONDITION)
    assert kind == "build"
    assert fields == frozenset({"status", "branch", "workflow", "job", "actor", "attempt"})
    evaluator = Evaluator()
    first = _outcome(evaluator, tree, data)
    again = _outcome(evaluator, tree, data)
    fresh = _outcome(Evaluator(), tree, dict(data))
    assert first == again == fresh
    if first[0] == "ok":
        assert isinstance(first[1], bool)


def parsed_rule(condition: str) -> Rule:
    rule, problems = rule_from_dict(
        {"name": "r", "condition": condition, "channels": ["slack"]}, Path("r.toml"), 0
    )
    assert rule is not None, problems
    return rule


# Conditions whose top-level equalities can be pre-checked (guards) and some that cannot.
GUARDED_CONDITIONS = [
    "build.status == 'failure' and build.branch == 'main'",
    "'main' == build.branch and startswith(build.workflow, 'CI')",
    "build.status in ['failure', 'timed_out'] and build.attempt > 2",
    "build.attempt == 2 and build.status != 'success'",
    "build.run_id in (2, 3) and build.status == 'failure'",
    "build.status == 'failure' or build.branch == 'main'",
    "not build.status == 'failure'",
    "build.default_branch == True and build.status == 'failure'",
    "build.attempt > 2 and build.status == 'failure'",
]
guard_values = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([2, 3, 2.0, 7, "failure", "timed_out", "success", "main", "CI x", "x"]),
)


def _result(call: Any) -> tuple[Any, ...]:
    try:
        return ("ok", call())
    except Exception as exc:
        return ("error", type(exc).__name__)


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from(GUARDED_CONDITIONS),
    st.fixed_dictionaries(
        {
            **{name: guard_values for name in ("status", "branch", "workflow", "attempt")},
            "run_id": guard_values,
            "default_branch": st.booleans(),
        }
    ),
)
def test_guarded_match_agrees_with_full_evaluation(condition: str, data: dict[str, Any]) -> None:
    rule = parsed_rule(condition)
    fact = build_data(**data)
    full = _result(
        lambda: Evaluator().evaluate(rule.tree, rule.fact, fact, rule.condition, rule.fields)
    )
    quick = _result(lambda: Evaluator().matches(rule, fact))
    if full[0] == "ok":
        assert quick == full
    else:  # a pre-check may rule a fact out before the full evaluation would fail
        assert quick in (full, ("ok", False))


def test_guards_are_read_off_top_level_equalities() -> None:
    rule = parsed_rule("build.status == 'failure' and build.branch in ['main', 'master']")
    assert dict(rule.guards) == {
        "status": frozenset({"failure"}),
        "branch": frozenset({"main", "master"}),
    }
    assert parsed_rule("build.status == 'failure' or build.branch == 'main'").guards == ()
    evaluator = Evaluator()
    assert evaluator.matches(rule, build_data(status="failure", branch="master"))
    assert not evaluator.matches(rule, build_data(status="failure", branch="dev"))


# --- 6. ``rules test`` -----------------------------------------------------------------------


def rules_test(*args: str) -> Result:
    return CliRunner().invoke(main, ["rules", "test", *args, "--rules-dir", str(SHIPPED)])


def test_rules_test_failed_run_on_the_default_branch_fires_build_failure(
    tmp_path: Path,
) -> None:
    data = payload("workflow_run.completed")  # on master, the repository's default
    data["workflow_run"]["conclusion"] = "failure"
    file = tmp_path / "failed.json"
    file.write_text(json.dumps(data))
    result = rules_test(str(file), "--event", "workflow_run")
    assert result.exit_code == 0, result.output
    assert "FIRES build_failure" in result.output
    assert "1 rule(s) would fire" in result.output
    assert "nothing was sent" in result.output
    assert "[FIRING] build_failure — octo-org/octo-repo" in result.output


def test_rules_test_successful_run_fires_nothing() -> None:
    result = rules_test(str(PAYLOADS / "workflow_run.completed.json"), "--event", "workflow_run")
    assert result.exit_code == 0, result.output
    assert "FIRES" not in result.output
    assert "no    build_failure" in result.output
    assert "0 rule(s) would fire; nothing was sent." in result.output


def test_rules_test_with_a_fact_fires_critical_vulnerability() -> None:
    fact = 'vulnerability={"repo":"o/r","severity":"critical","package":"lodash"}'
    result = rules_test("--fact", fact)
    assert result.exit_code == 0, result.output
    assert "FIRES critical_vulnerability -> slack, email" in result.output
    assert "lodash" in result.output
    assert "nothing was sent" in result.output


@pytest.mark.parametrize(
    ("fact", "expected"),
    [
        ('vulnerability={"repo":', "--fact JSON is invalid"),
        ("vulnerability=[1, 2]", "--fact JSON must be an object"),
        ('widget={"a": 1}', "--fact takes KIND=JSON"),
        ("vulnerability", "--fact takes KIND=JSON"),
    ],
)
def test_rules_test_bad_fact_is_a_usage_error(fact: str, expected: str) -> None:
    result = rules_test("--fact", fact)
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


def test_rules_test_needs_a_payload_and_event_or_a_fact() -> None:
    result = rules_test(str(PAYLOADS / "push.json"))
    assert result.exit_code == 2
    assert "--event" in result.output


def test_rules_test_leaves_out_a_repository_the_rule_excludes(tmp_path: Path) -> None:
    """As the service does: a rule that does not cover the fact's repository never fires."""
    write(tmp_path, "alerts.toml", rule_toml(exclude_repos=["o/*"]))
    fact = 'build={"repo": "o/r", "status": "failure"}'
    result = CliRunner().invoke(
        main, ["rules", "test", "--fact", fact, "--rules-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "skip  x: o/r is not among its repos" in result.output
    assert "0 rule(s) would fire" in result.output
    other = fact.replace("o/r", "p/r")
    covered = CliRunner().invoke(
        main, ["rules", "test", "--fact", other, "--rules-dir", str(tmp_path)]
    )
    assert "FIRES x" in covered.output


def test_rules_test_says_a_fixed_alert_resolves_rather_than_fires() -> None:
    """A fixed advisory is still "critical": the service closes its alert, never fires."""
    fact = 'vulnerability={"repo":"o/r","severity":"critical","package":"lodash","state":"fixed"}'
    result = rules_test("--fact", fact)
    assert result.exit_code == 0, result.output
    assert "FIRES" not in result.output
    assert "no    critical_vulnerability (resolves its alert if one is firing)" in result.output


def test_rules_test_with_invalid_rules_exits_1(tmp_path: Path) -> None:
    write(tmp_path, "alerts.toml", rule_toml(condition="build.colour == 1"))
    result = CliRunner().invoke(
        main, ["rules", "test", "--fact", 'build={"repo": "o/r"}', "--rules-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "unknown field build.colour" in result.output


# --- 7. Message templates --------------------------------------------------------------------


def templated_rule(tmp_path: Path, message: str) -> Rule:
    write(tmp_path, "alerts.toml", rule_toml(message=message))
    rule = load_rules(tmp_path, {}).rules[0]
    assert rule.message == message
    return rule


def test_message_template_renders(tmp_path: Path) -> None:
    rule = templated_rule(tmp_path, "{{ build.workflow }} broke on {{ build.branch }}")
    message = render(rule, "firing", build_data(workflow="CI", branch="main", status="failure"))
    assert "CI broke on main" in message.title
    assert "CI broke on main" in message.markdown
    assert "CI broke on main" in message.text
    assert message.title.startswith("[FIRING] x — octo-org/octo-repo")
    # A resolved notice describes the fact instead of using the template.
    resolved = render(rule, "resolved", build_data(workflow="CI", branch="main", status="success"))
    assert "broke" not in resolved.title and resolved.severity == "info"


@pytest.mark.parametrize(
    "template",
    [
        "{{ build.__class__ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ build.__class__.__mro__[1].__subclasses__() }}",
        "{{ workflow.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ self.__init__ }}",
        "{{ build.update({'status': 'ok'}) }}",
    ],
)
def test_message_template_cannot_reach_internals(tmp_path: Path, template: str) -> None:
    rule = templated_rule(tmp_path, template)
    data = build_data(workflow="CI", branch="main", status="failure")
    message = render(rule, "firing", data)
    for text in (message.title, message.markdown, message.text):
        assert "<class" not in text
        assert "<built-in" not in text and "<function" not in text
    rendered = message.title.split("octo-org/octo-repo: ", 1)[1]
    assert rendered == "" or "message template failed" in rendered
    assert data["status"] == "failure"


def test_message_template_syntax_error_is_rejected_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, "alerts.toml", rule_toml(name="bad_msg", message="{% if build %}"))
    problems = invalid(tmp_path)
    assert any(
        str(path) in p and "rule 'bad_msg'" in p and "message template" in p for p in problems
    )
    result = check(tmp_path)
    assert result.exit_code == 1 and "rule 'bad_msg'" in result.output


# --- Bugs found (expected to fail until fixed) -----------------------------------------------


def test_python_literal_with_unhashable_key_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "alerts.py", "ALERT_RULES = {[]: 1}\n")
    problems = invalid(tmp_path)
    assert str(path) in problems[0] and "line 1" in problems[0]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("alerts.toml", rule_toml(repeat_interval=["1h"])),
        ("alerts.toml", rule_toml() + "repeat_interval = 10:00:00\n"),
    ],
)
def test_non_string_repeat_interval_is_reported(tmp_path: Path, name: str, text: str) -> None:
    path = write(tmp_path, name, text)
    problems = invalid(tmp_path)
    assert any(str(path) in p and "rule 'x'" in p and "repeat_interval" in p for p in problems)


def test_non_utf8_rule_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_bytes(b'[[rule]]\nname = "\xff"\n')
    problems = invalid(tmp_path)
    assert str(path) in problems[0]


def test_message_template_runtime_error_falls_back(tmp_path: Path) -> None:
    rule = templated_rule(tmp_path, "{{ build.workflow + 1 }}")
    message = render(rule, "firing", build_data(workflow="CI"))
    assert "message template failed" in message.title


@pytest.mark.parametrize(
    "template", ["{{ 'a' * 10**9 }}", "{{ 9 ** 999999 }}", "{{ [1] * 100000000 }}"]
)
def test_message_template_cannot_allocate_without_bound(tmp_path: Path, template: str) -> None:
    rule = templated_rule(tmp_path, template)
    message = render(rule, "firing", build_data(workflow="CI"))
    assert "message template failed" in message.title
    assert len(message.markdown) < 5000


def test_guard_on_in_a_string_keeps_substring_semantics() -> None:
    rule = parsed_rule("build.status in 'failure timed_out'")
    fact = build_data(status="failure")
    assert Evaluator().evaluate(rule.tree, rule.fact, fact, rule.condition, rule.fields)
    assert Evaluator().matches(rule, fact)


def test_evaluator_sees_changes_to_the_same_data_dict() -> None:
    rule = parsed_rule("build.status == 'failure'")
    evaluator = Evaluator()
    fact = build_data(status="success")
    assert not evaluator.evaluate(rule.tree, rule.fact, fact, rule.condition, rule.fields)
    fact["status"] = "failure"
    assert evaluator.evaluate(rule.tree, rule.fact, fact, rule.condition, rule.fields)
