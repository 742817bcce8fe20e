"""Cheap pre-checks drawn from a condition's shape (pure).

A condition ``build.status == 'failure' and build.branch == 'main' and ...``
cannot hold unless each top-level equality (or ``in`` a literal list) holds.
Those conjuncts are read off the parsed tree once, at load, and checked with a
dict lookup before the full simpleeval evaluation — most rules are ruled out
for most facts without evaluating them.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

Guard = tuple[str, frozenset[Any]]  # (field, the values that let the condition hold)


def _field(node: ast.expr, kind: str) -> str | None:
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == kind
    ):
        return node.attr
    return None


def _constants(node: ast.expr) -> frozenset[Any] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        return frozenset([node.value])
    if isinstance(node, ast.List | ast.Tuple) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str | int | float | bool)
        for e in node.elts
    ):
        return frozenset(e.value for e in node.elts if isinstance(e, ast.Constant))
    return None


def _guard(node: ast.expr, kind: str) -> Guard | None:
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1):
        return None
    left, op, right = node.left, node.ops[0], node.comparators[0]
    if isinstance(op, ast.Eq):
        for a, b in ((left, right), (right, left)):
            name, values = _field(a, kind), _constants(b)
            if name and values is not None and not any(isinstance(v, bool) for v in values):
                return name, values
    if isinstance(op, ast.In) and isinstance(right, ast.List | ast.Tuple):
        # Only a literal list: ``x in 'abc'`` is a substring test, not membership.
        name, values = _field(left, kind), _constants(right)
        if name and values is not None and not any(isinstance(v, bool) for v in values):
            return name, values
    return None


def guards(tree: ast.Expression, kind: str) -> tuple[Guard, ...]:
    """The necessary equality conjuncts of a condition (possibly none)."""
    body = tree.body
    parts = body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
    found = (_guard(part, kind) for part in parts)
    return tuple(g for g in found if g is not None)


def admits(rule_guards: tuple[Guard, ...], data: Mapping[str, Any]) -> bool:
    """False when the fact fails a guard, so the condition cannot hold."""
    for name, values in rule_guards:
        value = data.get(name)
        # bool is an int: 1 == True would pass a dict lookup but not the intent.
        if isinstance(value, bool):
            return False
        try:
            if value not in values:
                return False
        except TypeError:  # an unhashable value: leave it to the full evaluation
            continue
    return True
