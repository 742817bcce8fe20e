"""The code's boundaries, read from its source: SQL in store/ only, imports down the flow.

The data flow is web -> runtime -> ingest -> store / rules / alerts -> pure core;
an import against it, SQL outside ``store/`` or a table written by two store
modules fails here, before it becomes what a second backend would have to undo.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "pulsehook"

# Statements as they appear in SQL text, not words in prose ("select a rule").
SQL = re.compile(
    r"\b(SELECT\s+[\w*(]|INSERT\s+(OR\s+\w+\s+)?INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b"
    r"|CREATE\s+(TABLE|INDEX|VIEW)\b|PRAGMA\s+\w|SAVEPOINT\b|BEGIN\s+IMMEDIATE\b)"
)
WRITES = re.compile(
    # Not a row lock: SELECT ... FOR UPDATE writes nothing.
    r"\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|(?<!FOR )UPDATE|REPLACE\s+INTO)\s+([a-z_][a-z0-9_]*)",
    re.I,
)

# Modules that take data and ``now`` and do no I/O: they import none of the layers
# above them, and nothing that talks to a database or the network.
PURE = (
    "clock",
    "errors",
    "facts",
    "health",
    "timing",
    "retry_after",
    "github/verify",
    "github/normalize",
    "github/payload",
    "github/events_ci",
    "github/events_issues",
    "github/events_pulsehook",
    "github/events_repo",
    "github/events_security",
    "rules/evaluate",
    "rules/model",
    "summary/model",
    "summary/render",
    "alerts/grouping",
)
# What sits above the core and the store, in the order of the flow.
UPPER = ("__init__", "__main__", "app", "runtime", "web", "cli")
IO = ("sqlite3", "sqlite_utils", "httpx", "psycopg", "socket", "urllib.request")


def modules() -> dict[str, ast.Module]:
    return {
        str(p.relative_to(SRC).with_suffix("")).removesuffix("/__init__"): ast.parse(
            p.read_text(encoding="utf-8"), filename=str(p)
        )
        for p in sorted(SRC.rglob("*.py"))
    }


def imported(name: str, tree: ast.Module) -> set[str]:
    """Every module ``name`` imports, as slash paths inside the package or dotted outside."""
    package = name.split("/")
    is_package = (SRC / name / "__init__.py").exists()
    here = package if is_package else package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = (node.module or "").split(".")
                if base[0] != "pulsehook":
                    found.add(node.module or "")
                    continue
                parts = base[1:]
            else:
                parts = here[: len(here) - (node.level - 1)] + (
                    node.module.split(".") if node.module else []
                )
            target = "/".join(parts)
            found.add(target)
            for alias in node.names:  # ``from . import health`` imports a module
                candidate = "/".join([*parts, alias.name])
                if (SRC / f"{candidate}.py").exists() or (SRC / candidate).is_dir():
                    found.add(candidate)
    return found


def strings(tree: ast.Module) -> list[tuple[int, str]]:
    """String constants that are not docstrings, with their line numbers."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def in_store(name: str) -> bool:
    return name == "store" or name.startswith("store/")


def test_no_sql_and_no_database_driver_outside_store() -> None:
    problems = []
    for name, tree in modules().items():
        if in_store(name):
            continue
        for module in imported(name, tree):
            if module.split(".")[0] in ("sqlite3", "sqlite_utils", "psycopg", "psycopg_pool"):
                problems.append(f"{name}: imports {module}")
        for line, text in strings(tree):
            if SQL.search(text):
                problems.append(f"{name}:{line}: SQL {text[:60]!r}")
    assert not problems, "\n".join(problems)


def test_every_table_has_one_writing_module() -> None:
    """Migrations create and reshape every table; retention prunes them by policy.

    Outside those, a table's rows are written by exactly one store module, its
    owner; reporting queries may read across tables.
    """
    writers: defaultdict[str, set[str]] = defaultdict(set)
    for name, tree in modules().items():
        if not in_store(name) or name == "store/migrations" or name.startswith("store/retention"):
            continue
        for _, text in strings(tree):
            for table in WRITES.findall(text):
                if table.lower() not in ("set", "or"):
                    writers[table].add(name)
    shared = {t: sorted(m) for t, m in writers.items() if len(m) > 1}
    assert writers, "no table writes found: the pattern no longer matches the store's SQL"
    assert not shared, f"tables written by more than one store module: {shared}"


def test_pure_core_imports_no_layer_above_it_and_no_io() -> None:
    trees = modules()
    problems = []
    for name in PURE:
        assert name in trees, f"{name} is listed as pure but does not exist"
        for module in imported(name, trees[name]):
            top = module.split("/")[0]
            if top in UPPER or in_store(module) or top in ("ingest", "intake", "monitor"):
                problems.append(f"{name} imports {module}")
            if module.split(".")[0] in IO or module in IO:
                problems.append(f"{name} imports {module} (I/O)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("lower", "forbidden"),
    [
        # Nothing below the runtime reaches up to it, to the app, the web or the CLI.
        ("", UPPER),
        # The store imports no processing, rules or alerting logic above it.
        ("store", ("alerts", "rules", "ingest", "intake", "schedule", "summary", "monitor")),
        # Rules and alerts use the pure timing maths, not the scheduler's package.
        ("rules", ("schedule", "alerts", "ingest", "intake", "summary", "github/api")),
        ("alerts", ("schedule", "ingest", "intake", "summary", "github")),
        # Processing sits below the runtime and above the store, rules and alerts.
        ("ingest", ("schedule", "github/api", "github/scan", "github/backfill")),
        # Settings are plain values: building parts from them is the runtime's job.
        ("settings", ("summary", "alerts", "github/scan", "notify", "store")),
    ],
)
def test_imports_run_down_the_flow(lower: str, forbidden: tuple[str, ...]) -> None:
    problems = []
    for name, tree in modules().items():
        top = name.split("/")[0]
        if lower and not (name == lower or name.startswith(f"{lower}/")):
            continue
        if not lower and top in UPPER:
            continue
        for module in imported(name, tree):
            if any(module == f or module.startswith(f"{f}/") for f in forbidden):
                problems.append(f"{name} imports {module}")
    assert not problems, "\n".join(problems)
