"""``[[expect]]`` / ``EXPECT = [...]``: what must report, and how often."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from ..timing import parse_duration, valid_cron
from .model import Expectation

KEYS = {"repo", "owner", "workflow", "path", "schedule", "grace", "note"}


def expectation_from_dict(raw: Any, path: Path, index: int) -> tuple[Expectation | None, list[str]]:
    label = f"{path}: expect #{index + 1}"
    if not isinstance(raw, dict):
        return None, [f"{label}: must be a table/dict"]
    problems = [f"{label}: unknown key {k!r}" for k in sorted(set(raw) - KEYS)]
    repo = raw.get("repo")
    owner = raw.get("owner")
    if isinstance(repo, str) and "/" in repo and owner is None:
        owner, _, repo = repo.partition("/")
    if not (isinstance(owner, str) and owner and isinstance(repo, str) and repo):
        problems.append(f"{label}: needs repo = 'owner/name' (or owner and repo)")
    workflow, file_path = raw.get("workflow"), raw.get("path")
    if (workflow is None) == (file_path is None):
        problems.append(f"{label}: give exactly one of workflow or path")
    elif not isinstance(workflow or file_path, str):
        problems.append(f"{label}: workflow/path must be a string")
    schedule_raw = raw.get("schedule")
    schedule: timedelta | str | None = None
    if isinstance(schedule_raw, str) and valid_cron(schedule_raw) and " " in schedule_raw:
        schedule = schedule_raw
    else:
        try:
            schedule = parse_duration(schedule_raw)
            if schedule <= timedelta(0):
                problems.append(f"{label}: schedule must be longer than zero")
        except (ValueError, TypeError):
            problems.append(
                f"{label}: bad schedule {schedule_raw!r}: use an ISO-8601 duration"
                " (PT10M), a short form (10m, 1h30m, 2d) or a cron string"
            )
    grace = timedelta(0)
    try:
        grace = parse_duration(raw.get("grace", 0))
    except (ValueError, TypeError) as exc:
        problems.append(f"{label}: grace: {exc}")
    note = raw.get("note")
    if problems or schedule is None:
        return None, problems
    return Expectation(
        owner=str(owner),
        repo=str(repo),
        workflow=workflow,
        path=file_path,
        schedule=schedule,
        grace=grace,
        note=note if isinstance(note, str) else None,
        source=str(path),
    ), []
