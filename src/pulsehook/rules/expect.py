"""``[[expect]]`` / ``EXPECT = [...]``: what must report, and how often."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from ..timing import parse_duration, valid_cron
from .model import Expectation

KEYS = {"repo", "owner", "workflow", "path", "schedule", "grace", "note", "ignore", "channel"}


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
    ignore = raw.get("ignore", False)
    if not isinstance(ignore, bool):
        problems.append(f"{label}: ignore must be true or false")
    if schedule_raw is None and (workflow is not None or ignore is True):
        # An override of what the workflow's own file schedules (grace, channel, ignore).
        pass
    elif isinstance(schedule_raw, str) and valid_cron(schedule_raw) and " " in schedule_raw:
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
    grace: timedelta | None = None
    if "grace" in raw:
        try:
            grace = parse_duration(raw["grace"])
        except (ValueError, TypeError) as exc:
            problems.append(f"{label}: grace: {exc}")
    channel = raw.get("channel", [])
    channels = [channel] if isinstance(channel, str) else channel
    if not (isinstance(channels, list) and all(isinstance(c, str) and c for c in channels)):
        problems.append(f"{label}: channel must be a channel name or a list of them")
        channels = []
    note = raw.get("note")
    if problems:
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
        ignore=ignore is True,
        channels=tuple(channels),
    ), []
