"""Loading rule files: TOML ``[[rule]]`` tables and the seed's literal Python.

Neither format is executed: TOML is data, and a ``.py`` rule file is parsed
with ``ast`` and its assignments read with ``ast.literal_eval``. Everything is
validated here; every problem is reported with its file and rule, all at once.
"""

from __future__ import annotations

import ast
import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .channels import resolve_channels
from .evaluate import ConditionError, compile_condition
from .expect import expectation_from_dict
from .model import Expectation, Rule, RuleSet
from .validate import rule_from_dict

PY_NAMES = ("ALERT_RULES", "WEBHOOKS", "CHANNELS", "EXPECT", "ALERTS")
TOML_KEYS = ("rule", "channels", "expect", "alerts")


class RulesInvalid(ConfigError):
    """The rule set cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid rules:\n  " + "\n  ".join(problems))
        self.problems = problems


def read_python(path: Path) -> dict[str, Any]:
    """The literal assignments of a seed-style rule file, without running it."""
    source = _read(path)
    try:
        module = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise RulesInvalid([f"{path}: line {exc.lineno}: syntax error: {exc.msg}"]) from exc
    except ValueError as exc:  # e.g. a NUL byte
        raise RulesInvalid([f"{path}: cannot be parsed: {exc}"]) from exc
    values: dict[str, Any] = {}
    for node in module.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            raise RulesInvalid(
                [
                    f"{path}: line {node.lineno}: only assignments of literal"
                    f" values ({', '.join(PY_NAMES)}) are allowed"
                ]
            )
        name = node.targets[0].id
        if name not in PY_NAMES:
            raise RulesInvalid(
                [
                    f"{path}: line {node.lineno}: unknown name {name!r};"
                    f" expected one of {', '.join(PY_NAMES)}"
                ]
            )
        try:
            values[name] = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
            raise RulesInvalid(
                [
                    f"{path}: line {node.lineno}: {name} must be a literal"
                    f" (no calls, names or expressions): {exc}"
                ]
            ) from exc
    return values


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesInvalid([f"{path}: cannot be read as UTF-8 text: {exc}"]) from exc


def read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(_read(path))
    except tomllib.TOMLDecodeError as exc:
        raise RulesInvalid([f"{path}: TOML error: {exc}"]) from exc
    unknown = sorted(set(data) - set(TOML_KEYS))
    if unknown:
        raise RulesInvalid(
            [f"{path}: unknown table(s) {', '.join(unknown)}; expected {', '.join(TOML_KEYS)}"]
        )
    return {
        "ALERT_RULES": data.get("rule", []),
        "CHANNELS": data.get("channels", {}),
        "EXPECT": data.get("expect", []),
        "ALERTS": data.get("alerts", {}),
    }


def rule_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in (".toml", ".py") and not p.name.startswith(("_", "."))
    )


# Collects every problem of every file before refusing, one branch per problem.
def load_rules(directory: Path, env: Mapping[str, str]) -> RuleSet:  # noqa: C901
    """Load and validate every rule file in ``directory``; raise RulesInvalid on any problem."""
    if not directory.is_dir():
        raise RulesInvalid([f"{directory}: rules directory does not exist"])
    problems: list[str] = []
    rules: list[Rule] = []
    expectations: list[Expectation] = []
    channel_specs: dict[str, tuple[Path, Any]] = {}
    routes: dict[str, tuple[Path, Any]] = {}  # ALERTS: rule -> its channels
    for path in rule_files(directory):
        try:
            data = read_python(path) if path.suffix == ".py" else read_toml(path)
        except RulesInvalid as exc:
            problems.extend(exc.problems)
            continue
        for name, url in _as_dict(data.get("WEBHOOKS", {}), path, "WEBHOOKS", problems).items():
            channel_specs[name] = (path, {"webhook_url": url})
        for name, spec in _as_dict(data.get("CHANNELS", {}), path, "CHANNELS", problems).items():
            channel_specs[name] = (path, spec)
        for name, where in _as_dict(data.get("ALERTS", {}), path, "ALERTS", problems).items():
            if name in routes:
                problems.append(
                    f"{path}: ALERTS[{name!r}]: rule routed twice (also in {routes[name][0]})"
                )
            routes[name] = (path, where)
        raw_expect = data.get("EXPECT", [])
        if not isinstance(raw_expect, list):
            problems.append(f"{path}: EXPECT must be a list of tables")
            raw_expect = []
        for index, raw in enumerate(raw_expect):
            expectation, errors = expectation_from_dict(raw, path, index)
            problems.extend(errors)
            if expectation is not None:
                expectations.append(expectation)
        raw_rules = data.get("ALERT_RULES", [])
        if not isinstance(raw_rules, list):
            problems.append(f"{path}: ALERT_RULES must be a list of rule tables")
            continue
        for index, raw in enumerate(raw_rules):
            rule, errors = rule_from_dict(raw, path, index)
            problems.extend(errors)
            if rule is not None:
                rules.append(rule)
    paths: set[str] = set()
    for expectation in expectations:
        if expectation.item_path in paths:
            problems.append(
                f"{expectation.source}: expect {expectation.item_path!r}: declared twice"
            )
        paths.add(expectation.item_path)
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.name in seen:
            problems.append(
                f"{rule.source}: rule {rule.name!r}: duplicate name (also in {seen[rule.name]})"
            )
        seen.setdefault(rule.name, rule.source)
    rules = _routed(rules, routes, problems)
    channels, unconfigured, channel_problems = resolve_channels(channel_specs, env)
    problems.extend(channel_problems)
    warnings: list[str] = []
    for rule in rules:
        for name in rule.channels:
            if name in unconfigured:
                warnings.append(
                    f"{rule.source}: rule {rule.name!r}: channel {name!r} is not"
                    f" configured ({unconfigured[name]}); its notices are parked"
                )
            elif name not in channels:
                problems.append(
                    f"{rule.source}: rule {rule.name!r}: unknown channel {name!r}"
                    f" (configured: {', '.join(sorted(channels)) or 'none'})"
                )
    for expectation in expectations:
        for name in expectation.channels:
            if name not in channels and name not in unconfigured:
                problems.append(
                    f"{expectation.source}: expect {expectation.item_path!r}: unknown channel"
                    f" {name!r} (configured: {', '.join(sorted(channels)) or 'none'})"
                )
    if problems:
        raise RulesInvalid(problems)
    return RuleSet(
        rules=tuple(rules),
        expectations=tuple(expectations),
        channels=channels,
        unconfigured=unconfigured,
        warnings=tuple(dict.fromkeys(warnings)),
    )


def _routed(
    rules: list[Rule], routes: Mapping[str, tuple[Path, Any]], problems: list[str]
) -> list[Rule]:
    """The rules with the channels ``ALERTS`` gives them (the guide's ``pulse/config.py``:
    ``ALERTS = {"build_failure": ["slack"]}``), in place of their own."""
    by_name = {rule.name: rule for rule in rules}
    for name, (path, where) in routes.items():
        if name not in by_name:
            problems.append(
                f"{path}: ALERTS[{name!r}]: no rule of that name"
                f" (rules: {', '.join(sorted(by_name)) or 'none'})"
            )
            continue
        channels = [where] if isinstance(where, str) else where
        if (
            not isinstance(channels, list | tuple)
            or not channels
            or not all(isinstance(c, str) and c for c in channels)
        ):
            problems.append(f"{path}: ALERTS[{name!r}] must be a non-empty list of channel names")
            continue
        by_name[name] = dataclasses.replace(by_name[name], channels=tuple(dict.fromkeys(channels)))
    return [by_name.get(rule.name, rule) for rule in rules]


def _as_dict(value: Any, path: Path, what: str, problems: list[str]) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    problems.append(f"{path}: {what} must be a table/dict")
    return {}


__all__ = ["ConditionError", "RulesInvalid", "compile_condition", "load_rules"]
