"""Rule conditions: checked at load, evaluated with simpleeval over plain data.

A condition sees one fact as a dict (``build.status``), a few constants and a
short allow-list of functions. Attribute access works only as a field lookup
on those dicts; no method, no dunder, no import, no object is reachable, and
the expression is bounded in size. Conditions are parsed once, at load.

``matches()`` runs RE2 (google-re2): its time is linear in the text whatever the
pattern, so no crafted branch name can stall ingestion. RE2 has no backreferences
or lookaround; a pattern it cannot compile is refused at load.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Mapping
from dataclasses import fields as dataclass_fields
from typing import Any

import re2
from simpleeval import EvalWithCompoundTypes, FeatureNotAvailable

from ..errors import PulsehookError
from ..facts import FACT_TYPES, RULE_FACTS
from .guards import admits
from .model import Rule

MAX_LENGTH = 1000  # characters
MAX_NODES = 200  # syntax-tree nodes


class ConditionError(PulsehookError, ValueError):
    """A condition that cannot be accepted (the message names the problem)."""


PATTERN_LIMIT = 200  # characters of a matches() pattern
TEXT_LIMIT = 10_000  # characters of the value a pattern is searched in
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # refusals are reported as ConditionError, not on stderr
_RE2_OPTIONS.max_mem = 2 << 20  # bytes per compiled pattern (RE2's default is 8 MiB)


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Any:
    """The RE2 program for a ``matches()`` pattern; ConditionError names a refused one."""
    if len(pattern) > PATTERN_LIMIT:
        raise ConditionError(
            f"matches() pattern {pattern[:40]!r}... is longer than {PATTERN_LIMIT} characters"
        )
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ConditionError(
            f"matches() pattern {pattern!r} is not supported: {reason} (patterns are RE2:"
            " no backreferences or lookaround)"
        ) from None


def _matches(value: Any, pattern: str) -> bool:
    if not isinstance(value, str) or not isinstance(pattern, str):
        return False
    program = compile_pattern(pattern)
    text = value[:TEXT_LIMIT]
    try:
        return program.search(text) is not None
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape: RE2 reads UTF-8
        return program.search(text.encode("utf-8", "replace").decode()) is not None


def _startswith(value: Any, prefix: str) -> bool:
    return isinstance(value, str) and value.startswith(prefix)


def _endswith(value: Any, suffix: str) -> bool:
    return isinstance(value, str) and value.endswith(suffix)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "int": int,
    "float": float,
    "str": str,
    "lower": _lower,
    "upper": _upper,
    "startswith": _startswith,
    "endswith": _endswith,
    "matches": _matches,
}
CONSTANTS = {"True": True, "False": False, "None": None, "true": True, "false": False, "null": None}

ALLOWED_NODES = (
    ast.Expression,
    ast.Expr,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Mod,
    ast.FloorDiv,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Is,
    ast.IsNot,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Attribute,
    ast.Call,
    ast.List,
    ast.Tuple,
    ast.IfExp,
    ast.Subscript,
)

FACT_FIELDS: dict[str, frozenset[str]] = {
    name: frozenset(f.name for f in dataclass_fields(FACT_TYPES[name])) for name in RULE_FACTS
}


def _check_pattern(call: ast.Call) -> None:
    """A literal ``matches()`` pattern is compiled now, so a bad one stops the load."""
    if len(call.args) != 2:
        raise ConditionError("matches() takes a value and a pattern")
    pattern = call.args[1]
    if isinstance(pattern, ast.Constant) and isinstance(pattern.value, str):
        compile_pattern(pattern.value)


# Each refusal of a condition is one branch here, so the load names its reason.
def compile_condition(text: str) -> tuple[ast.Expression, str, frozenset[str]]:  # noqa: C901
    """Parse and check a condition: (tree, the fact kind it speaks of, fields read)."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("condition is empty")
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"condition is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"syntax error at column {exc.offset}: {exc.msg}") from exc
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ConditionError(f"condition has more than {MAX_NODES} parts")
    facts: set[str] = set()
    fields: set[str] = set()
    for node in nodes:
        if not isinstance(node, ALLOWED_NODES):
            raise ConditionError(f"{type(node).__name__} is not allowed in a condition")
        if isinstance(node, ast.Attribute):
            if not isinstance(node.value, ast.Name) or node.value.id not in FACT_FIELDS:
                raise ConditionError(
                    f"'.{node.attr}' is only allowed on a fact name ({', '.join(RULE_FACTS)})"
                )
            kind = node.value.id
            if node.attr not in FACT_FIELDS[kind]:
                raise ConditionError(
                    f"unknown field {kind}.{node.attr}; {kind} has: "
                    f"{', '.join(sorted(FACT_FIELDS[kind]))}"
                )
            facts.add(kind)
            fields.add(node.attr)
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise ConditionError(
                    f"only these functions can be called: {', '.join(sorted(FUNCTIONS))}"
                )
            if node.keywords:
                raise ConditionError("keyword arguments are not allowed")
            if node.func.id == "matches":
                _check_pattern(node)
        elif isinstance(node, ast.Name):
            if node.id in FACT_FIELDS:
                facts.add(node.id)
            elif node.id not in FUNCTIONS and node.id not in CONSTANTS:
                raise ConditionError(f"unknown name {node.id!r}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str | bytes)
            and len(node.value) > 500
        ):
            raise ConditionError("string literal is too long")
    if not facts:
        raise ConditionError(f"condition uses no fact ({', '.join(RULE_FACTS)})")
    if len(facts) > 1:
        raise ConditionError(
            f"condition mixes facts {', '.join(sorted(facts))}; a rule speaks of one fact"
        )
    return tree, facts.pop(), frozenset(fields)


_ALLOWED_CALLABLES = frozenset(id(f) for f in FUNCTIONS.values())


class _Evaluator(EvalWithCompoundTypes):  # type: ignore[misc]
    """simpleeval with attribute access reduced to a field lookup on plain dicts."""

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        # Validated at load: the base is always the name of a fact (plain data).
        base = self.names.get(node.value.id) if isinstance(node.value, ast.Name) else None
        if isinstance(base, dict) and not node.attr.startswith("_") and node.attr in base:
            return base[node.attr]
        raise FeatureNotAvailable(f"no field {node.attr!r}")

    def _check_disallowed_items(self, item: Any) -> None:
        # simpleeval walks every container it sees, every time; the names here
        # are plain data pulsehook built itself, so only callables need a look.
        if callable(item) and id(item) not in _ALLOWED_CALLABLES:
            raise FeatureNotAvailable("this value is not available in conditions")


class Evaluator:
    """Evaluates parsed conditions; one per thread (simpleeval keeps state)."""

    def __init__(self) -> None:
        self._eval = _Evaluator(functions=dict(FUNCTIONS), names={})
        self._kind: str | None = None
        self._data: Mapping[str, Any] | None = None  # held, so identity stays meaningful

    def matches(self, rule: Rule, data: Mapping[str, Any]) -> bool:
        """Whether ``rule`` holds for the fact ``data``: guards first, then simpleeval."""
        if not admits(rule.guards, data):
            return False
        return self.evaluate(rule.tree, rule.fact, data, rule.condition, rule.fields)

    def evaluate(
        self,
        tree: ast.Expression,
        kind: str,
        data: Mapping[str, Any],
        expr: str = "",
        fields: frozenset[str] = frozenset(),
    ) -> bool:
        """True if the condition holds for the fact ``data`` of kind ``kind``.

        A comparison against a missing (null) field the condition reads is
        false, not an error: ``coverage.delta < -5`` is simply not true for a
        first measurement. Any other failure raises, so the caller can record
        the rule as erroring.
        """
        if self._data is not data or self._kind != kind:
            # Bound once per fact, not once per rule: the rules of a fact share it.
            # Not copied: the evaluator reads the caller's dict, so it can never
            # answer for values that were changed since.
            self._eval.names = {**CONSTANTS, kind: data}
            self._kind, self._data = kind, data
        try:
            return bool(self._eval.eval(expr, previously_parsed=tree.body))
        except TypeError:
            if any(data.get(f) is None for f in fields):
                return False
            raise
