"""Rule evaluation throughput: the shipped rules plus synthetic ones over many facts.

Prints facts/s for pulsehook's evaluator next to a bare baseline in the same run
(the same loop calling a plain Python predicate), on one core.

    .venv/bin/python bench/rules.py [--facts 100000] [--synthetic 100]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import time
from pathlib import Path
from typing import Any

from pulsehook.facts import Build, Coverage, Fact, Vulnerability, fact_dict
from pulsehook.rules.evaluate import Evaluator
from pulsehook.rules.load import load_rules
from pulsehook.rules.model import Rule, RuleSet
from pulsehook.rules.validate import rule_from_dict

ROOT = Path(__file__).resolve().parent.parent
# What a team's rules look like: most name a repository, workflow, branch or
# severity, so they say nothing about most facts. Constants vary per rule.
TEMPLATES = [
    ("build", "build.status == 'failure' and build.repo == '{repo}'"),
    (
        "build",
        "build.status in ['failure', 'timed_out'] and build.workflow == '{wf}'"
        " and build.branch == '{branch}'",
    ),
    ("build", "build.repo == '{repo}' and startswith(build.branch, 'release/')"),
    ("build", "matches(build.workflow, '^{wf}$') and build.status == 'startup_failure'"),
    ("vulnerability", "vulnerability.severity == '{sev}' and vulnerability.repo == '{repo}'"),
    ("vulnerability", "vulnerability.package == '{pkg}' and vulnerability.state == 'open'"),
    (
        "vulnerability",
        "lower(vulnerability.ecosystem) == '{eco}'"
        " and vulnerability.severity in ['high', 'critical']",
    ),
    ("coverage", "coverage.delta < -{n} and coverage.repo == '{repo}'"),
    ("coverage", "coverage.value < {low} and coverage.branch == 'main'"),
]
REPOS = [f"o/r{i}" for i in range(300)]
WORKFLOWS = ["CI", "Deploy", "Nightly", "Lint", "Release"]


def synthetic(count: int, rng: random.Random) -> list[Rule]:
    rules = []
    for i in range(count):
        _, text = TEMPLATES[i % len(TEMPLATES)]
        text = text.format(
            repo=rng.choice(REPOS),
            wf=rng.choice(WORKFLOWS),
            branch=rng.choice(["main", "dev"]),
            sev=rng.choice(["low", "medium", "high", "critical"]),
            pkg=rng.choice(["lodash", "requests", "django", "log4j"]),
            eco=rng.choice(["npm", "pip", "maven"]),
            n=rng.randint(1, 9),
            low=rng.randint(30, 60),
        )
        rule, problems = rule_from_dict(
            {"name": f"synthetic_{i}", "condition": text, "channels": ["slack"]}, Path("bench"), i
        )
        assert rule is not None, problems
        rules.append(rule)
    return rules


def facts(count: int, rng: random.Random) -> list[Fact]:
    out: list[Fact] = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            out.append(
                Build(
                    repo=f"o/r{i % 300}",
                    repo_id=i % 300,
                    workflow=rng.choice(WORKFLOWS),
                    branch=rng.choice(["main", "dev", "release/1.2"]),
                    default_branch=True,
                    status="failure" if rng.random() < 0.1 else "success",
                    event="push",
                    run_id=i,
                    attempt=1,
                    url=None,
                    started_at=None,
                    completed_at=None,
                    actor=None,
                    head_sha=None,
                    source="workflow_run",
                    updated_at=None,
                )
            )
        elif kind == 1:
            out.append(
                Vulnerability(
                    repo=f"o/r{i % 300}",
                    repo_id=i % 300,
                    number=i,
                    action="created",
                    state="open",
                    severity=rng.choice(["low", "high", "critical"]),
                    package=rng.choice(["lodash", "requests", "left-pad"]),
                    ecosystem=rng.choice(["npm", "pip"]),
                    manifest=None,
                    ghsa_id=None,
                    cve_id=None,
                    summary=None,
                    description=None,
                    url=None,
                    created_at=None,
                    updated_at=None,
                    fixed_at=None,
                    dismissed_at=None,
                )
            )
        else:
            out.append(
                Coverage(
                    repo=f"o/r{i % 300}",
                    repo_id=i % 300,
                    branch="main",
                    sha=None,
                    value=rng.uniform(40, 95),
                    delta=rng.uniform(-3, 2),
                    url=None,
                    at=None,
                    source="status",
                )
            )
    return out


def run(rule_set: RuleSet, items: list[tuple[str, dict[str, Any]]]) -> tuple[float, int]:
    evaluator = Evaluator()
    fired = 0
    start = time.perf_counter()
    for kind, data in items:
        for rule in rule_set.by_fact(kind):
            fired += evaluator.matches(rule, data)
    return time.perf_counter() - start, fired


def baseline(items: list[tuple[str, dict[str, Any]]], per_fact: dict[str, int]) -> float:
    """The same loop with a plain Python predicate per rule: the floor of any evaluator."""
    start = time.perf_counter()
    hits = 0
    for kind, data in items:
        for _ in range(per_fact[kind]):
            hits += data.get("status") == "failure" and data.get("branch") == "main"
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--synthetic", type=int, default=100)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    rng = random.Random(7)
    shipped = load_rules(ROOT / "rules", {"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/x"})
    rule_set = RuleSet(rules=shipped.rules + tuple(synthetic(args.synthetic, rng)))
    items = [(f.name, fact_dict(f)) for f in facts(args.facts, rng)]
    per_fact = {k: len(rule_set.by_fact(k)) for k in ("build", "vulnerability", "coverage")}
    evaluations = sum(per_fact[k] for k, _ in items)
    elapsed, fired = run(rule_set, items)
    # Worst case: the same rules with their guards removed, so every applicable
    # rule goes through the full simpleeval evaluation.
    unguarded = RuleSet(rules=tuple(dataclasses.replace(r, guards=()) for r in rule_set.rules))
    worst_n = min(args.facts, 20_000)
    worst, _ = run(unguarded, items[:worst_n])
    floor = baseline(items, per_fact)
    rate = args.facts / elapsed
    print(
        f"rules: {len(rule_set.rules)} ({len(shipped.rules)} shipped + {args.synthetic}"
        f" synthetic); rules per fact kind: {per_fact}"
    )
    print(f"facts: {args.facts}, evaluations: {evaluations}, fired: {fired}")
    print(
        f"pulsehook evaluator: {elapsed:.2f} s = {rate:,.0f} facts/s"
        f" ({evaluations / elapsed:,.0f} evaluations/s)"
    )
    guarded = sum(bool(r.guards) for r in rule_set.rules)
    print(f"rules with guards (pre-checked by dict lookup): {guarded} of {len(rule_set.rules)}")
    print(
        f"worst case, guards off: {worst_n / worst:,.0f} facts/s"
        f" ({sum(per_fact[k] for k, _ in items[:worst_n]) / worst:,.0f} evaluations/s)"
    )
    print(f"bare Python predicate baseline: {floor:.2f} s = {args.facts / floor:,.0f} facts/s")
    print(f"target >= 20,000 facts/s: {'PASS' if rate >= 20_000 else 'FAIL'}")


if __name__ == "__main__":
    main()
