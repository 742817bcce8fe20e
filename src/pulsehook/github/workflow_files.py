"""What a workflow file says of its schedule, and what GitHub's state of it means (pure).

A workflow's ``on.schedule`` lists its crons (in UTC, as GitHub runs them). The
file is hostile input: it is size-capped, parsed with YAML's safe loader, and any
shape that is not a schedule is read as "no schedule", with the reason kept so the
API can say why a file was not watched.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import yaml

from ..clock import parse_iso_or_none
from ..timing import valid_cron

MAX_BYTES = 512 * 1024  # GitHub's own editor warns far below this; larger is not a workflow
MAX_CRONS = 20  # more schedules than any real workflow has: the rest are left out
WORKFLOWS_DIR = ".github/workflows/"
# GitHub's states for a workflow (the Actions API's ``state``).
ACTIVE = "active"
DISABLED = frozenset({"disabled_inactivity", "disabled_manually", "disabled_fork"})
DELETED = "deleted"  # GitHub's word for a workflow whose file is gone; also one no longer listed


@dataclass(frozen=True)
class Schedules:
    """A workflow file's crons, and why none were read when the file could not be."""

    crons: tuple[str, ...] = ()
    problem: str | None = None


def _triggers(doc: Any) -> Any:
    if not isinstance(doc, dict):
        return None
    # YAML 1.1 reads a bare ``on`` key as the boolean true.
    return doc.get("on", doc.get(True))


def schedules(text: str) -> Schedules:
    """The crons of a workflow file's ``on.schedule``."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return Schedules(problem=f"file larger than {MAX_BYTES // 1024} KiB")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        return Schedules(problem=f"invalid YAML{where}")
    except RecursionError:
        return Schedules(problem="invalid YAML: nested too deeply")
    except (ValueError, KeyError, TypeError) as exc:
        # The safe loader refuses values it cannot build (2024-02-30, !!int seven).
        return Schedules(problem=f"invalid YAML: {type(exc).__name__}")
    triggers = _triggers(doc)
    if not isinstance(triggers, dict):
        return Schedules()  # ``on: push`` or ``on: [push, pull_request]``: no schedule
    listed = triggers.get("schedule")
    if listed is None:
        return Schedules()
    if not isinstance(listed, list):
        return Schedules(problem="on.schedule is not a list")
    crons: list[str] = []
    bad: list[str] = []
    for entry in listed:
        cron = entry.get("cron") if isinstance(entry, dict) else None
        squeezed = " ".join(cron.split()) if isinstance(cron, str) else ""
        if len(squeezed.split()) == 5 and valid_cron(squeezed):
            if squeezed not in crons:
                crons.append(squeezed)
        else:
            bad.append(repr(cron)[:60])
    problem = f"invalid cron {', '.join(bad[:3])}" if bad else None
    return Schedules(crons=tuple(crons[:MAX_CRONS]), problem=problem)


def touches_workflows(paths: list[str]) -> bool:
    """Whether a push changed (added, modified or removed) a workflow file."""
    return any(p.startswith(WORKFLOWS_DIR) for p in paths)


def blob_text(body: Any) -> str | None:
    """A git blob's text (the REST API answers base64); None when it is not one."""
    if not isinstance(body, dict) or body.get("encoding") != "base64":
        return None
    content = body.get("content")
    if not isinstance(content, str) or len(content) > MAX_BYTES * 2:
        return None
    try:
        return base64.b64decode(content, validate=False).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


def idle_days(last_activity: str | None, now: str) -> int | None:
    """Whole days from the repository's last activity to ``now`` (ISO strings)."""
    try:
        last, at = parse_iso_or_none(last_activity), parse_iso_or_none(now)
        if last is None or at is None:
            return None
        return max(0, (at - last).days)
    except (ValueError, TypeError):  # not a time, or one without its zone
        return None
