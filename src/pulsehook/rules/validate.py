"""One rule table -> a Rule, or the problems that stop it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from ..timing import parse_duration, valid_cron
from .evaluate import FACT_FIELDS, ConditionError, compile_condition
from .guards import guards
from .model import FREQUENCIES, GROUP_WINDOW, SEVERITIES, Rule

KEYS = {
    "name",
    "condition",
    "channels",
    "frequency",
    "severity",
    "repeat_interval",
    "notify_resolved",
    "message",
    "repos",
    "exclude_repos",
    "group",
    "group_by",
    "group_window",
}
REQUIRED = ("name", "condition", "channels")


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def rule_from_dict(raw: Any, path: Path, index: int) -> tuple[Rule | None, list[str]]:
    if not isinstance(raw, dict):
        return None, [f"{path}: rule #{index + 1}: must be a table/dict"]
    name = raw.get("name")
    label = (
        f"{path}: rule {name!r}" if isinstance(name, str) and name else f"{path}: rule #{index + 1}"
    )
    problems = [f"{label}: missing {key!r}" for key in REQUIRED if key not in raw]
    problems += [f"{label}: unknown key {key!r}" for key in sorted(set(raw) - KEYS)]
    if "name" in raw and (not isinstance(name, str) or not name.strip()):
        problems.append(f"{label}: name must be a non-empty string")
    channels = _strings(raw.get("channels", []))
    if channels is None or (not channels and "channels" in raw):
        problems.append(f"{label}: channels must be a non-empty list of channel names")
    frequency = raw.get("frequency", "immediate")
    if not isinstance(frequency, str) or (
        frequency not in FREQUENCIES and not valid_cron(frequency)
    ):
        problems.append(
            f"{label}: bad frequency {frequency!r}: use {', '.join(FREQUENCIES)}"
            " or a cron expression such as '0 8 * * mon-fri'"
        )
    severity = raw.get("severity", "error")
    if severity not in SEVERITIES:
        problems.append(f"{label}: bad severity {severity!r}: use {', '.join(SEVERITIES)}")
    repeat = _duration(raw, "repeat_interval", label, problems)
    if repeat is not None and repeat <= timedelta(0):
        problems.append(f"{label}: repeat_interval must be longer than zero")
    notify_resolved = raw.get("notify_resolved", True)
    if not isinstance(notify_resolved, bool):
        problems.append(f"{label}: notify_resolved must be true or false")
    message = raw.get("message")
    if message is not None and not isinstance(message, str):
        problems.append(f"{label}: message must be a string template")
    elif message is not None:
        from .templates import check_template

        error = check_template(message)
        if error:
            problems.append(f"{label}: message template: {error}")
    repos = _strings(raw.get("repos", []))
    exclude = _strings(raw.get("exclude_repos", []))
    if repos is None or exclude is None:
        problems.append(f"{label}: repos and exclude_repos must be lists of patterns")
    condition = raw.get("condition")
    tree = kind = fields = None
    if "condition" in raw:
        try:
            tree, kind, fields = compile_condition(str(condition))
        except ConditionError as exc:
            problems.append(f"{label}: condition {condition!r}: {exc}")
    group, group_by, window = _grouping(raw, label, kind, problems)
    if problems or tree is None or kind is None or fields is None:
        return None, problems
    return Rule(
        name=str(name),
        condition=str(condition),
        channels=channels or (),
        frequency=str(frequency),
        fact=kind,
        tree=tree,
        fields=fields,
        guards=guards(tree, kind),
        severity=str(severity),
        repeat_interval=repeat,
        notify_resolved=bool(notify_resolved),
        message=message,
        repos=repos or (),
        exclude_repos=exclude or (),
        source=str(path),
        group=group,
        group_by=group_by,
        group_window=window,
    ), []


def _grouping(
    raw: dict[str, Any], label: str, kind: str | None, problems: list[str]
) -> tuple[bool, tuple[str, ...], timedelta]:
    """``group``, ``group_by`` and ``group_window``, checked against the rule's fact."""
    group = raw.get("group", True)
    if not isinstance(group, bool):
        problems.append(f"{label}: group must be true or false")
        group = True
    group_by = _strings(raw.get("group_by", []))
    if group_by is None:
        problems.append(f"{label}: group_by must be a list of fact fields")
        group_by = ()
    elif kind is not None:
        known = FACT_FIELDS.get(kind, frozenset())
        for name in group_by:
            if name not in known:
                problems.append(
                    f"{label}: group_by: {kind} facts have no field {name!r}"
                    f" (fields: {', '.join(sorted(known))})"
                )
    window = _duration(raw, "group_window", label, problems)
    if window is not None and window > timedelta(hours=24):
        problems.append(f"{label}: group_window must be between 0 and 24 hours")
    return group, tuple(dict.fromkeys(group_by)), GROUP_WINDOW if window is None else window


def _duration(raw: dict[str, Any], key: str, label: str, problems: list[str]) -> timedelta | None:
    """The rule's duration ``key``, when it is given and valid (else None, the problem said)."""
    if raw.get(key) is None:
        return None
    try:
        return parse_duration(raw[key])
    except (ValueError, TypeError) as exc:
        problems.append(f"{label}: {key}: {exc}")
        return None
