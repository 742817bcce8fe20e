"""Payloads for one story, made from GitHub's examples by changing only named fields."""

from __future__ import annotations

import copy
from typing import Any

from .conftest import payload


def workflow_run(
    run_id: int = 1001, conclusion: str = "failure", updated: str = "2026-01-01T10:00:00Z"
) -> dict[str, Any]:
    """GitHub's workflow_run example as a completed run on the default branch ``main``."""
    data = copy.deepcopy(payload("workflow_run.completed"))
    data["repository"]["default_branch"] = "main"
    data["workflow_run"].update(
        id=run_id, head_branch="main", conclusion=conclusion, updated_at=updated
    )
    return data


def critical_alert() -> dict[str, Any]:
    """GitHub's dependabot_alert example, made critical."""
    data = copy.deepcopy(payload("dependabot_alert.created"))
    data["alert"]["security_advisory"]["severity"] = "critical"
    data["alert"]["security_vulnerability"]["severity"] = "critical"
    return data


def codecov_status(description: str, at: str) -> dict[str, Any]:
    """GitHub's status example as Codecov's project status on the default branch head."""
    data = copy.deepcopy(payload("status"))
    data.update(context="codecov/project", description=description, updated_at=at)
    data["branches"][0]["commit"]["sha"] = data["sha"]
    return data
