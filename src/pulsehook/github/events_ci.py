"""CI events -> Build and Coverage facts (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ..facts import Build, Coverage, Fact
from .payload import Json, integer, obj, repository, text, timestamp

# Codecov's project status: "87.50% (+0.15%) compared to abc1234" or
# "91.20% (target 80.00%)". The patch status (codecov/patch) measures only the
# diff and must never be read as the project's coverage.
CODECOV_PROJECT = "codecov/project"
_PERCENT = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)\s*%")

# GitHub Actions reports each workflow run as a check suite too; workflow_run
# already covers those, so only other CI apps' suites become builds.
ACTIONS_APP = "github-actions"


def _status(status: str | None, conclusion: str | None) -> str:
    if status == "completed":
        return conclusion or "completed"
    return status or "unknown"


def workflow_run(payload: Json) -> list[Build]:
    full_name, repo_id, default = repository(payload)
    run = obj(payload, "workflow_run")
    run_id = integer(run, "id")
    if run_id is None:
        return []
    status = _status(text(run, "status"), text(run, "conclusion"))
    branch = text(run, "head_branch")
    actor = obj(run, "triggering_actor") or obj(run, "actor") or obj(payload, "sender")
    completed = text(run, "status") == "completed"
    return [
        Build(
            repo=full_name,
            repo_id=repo_id,
            workflow=text(obj(payload, "workflow"), "name")
            or text(run, "name")
            or text(run, "path")
            or str(run_id),
            branch=branch,
            default_branch=branch is not None and branch == default,
            status=status,
            event=text(run, "event"),
            run_id=run_id,
            attempt=integer(run, "run_attempt") or 1,
            url=text(run, "html_url"),
            started_at=timestamp(run.get("run_started_at") or run.get("created_at")),
            completed_at=timestamp(run.get("updated_at")) if completed else None,
            actor=text(actor, "login"),
            head_sha=text(run, "head_sha"),
            source="workflow_run",
            updated_at=timestamp(run.get("updated_at")),
            workflow_path=text(run, "path") or text(obj(payload, "workflow"), "path"),
        )
    ]


def workflow_job(payload: Json) -> list[Build]:
    full_name, repo_id, default = repository(payload)
    job = obj(payload, "workflow_job")
    job_id, run_id = integer(job, "id"), integer(job, "run_id")
    if job_id is None or run_id is None:
        return []
    branch = text(job, "head_branch")
    completed = text(job, "status") == "completed"
    return [
        Build(
            repo=full_name,
            repo_id=repo_id,
            workflow=text(job, "workflow_name") or str(run_id),
            branch=branch,
            default_branch=branch is not None and branch == default,
            status=_status(text(job, "status"), text(job, "conclusion")),
            event=None,
            run_id=run_id,
            attempt=integer(job, "run_attempt") or 1,
            url=text(job, "html_url"),
            started_at=timestamp(job.get("started_at") or job.get("created_at")),
            completed_at=timestamp(job.get("completed_at")) if completed else None,
            actor=text(obj(payload, "sender"), "login"),
            head_sha=text(job, "head_sha"),
            source="workflow_job",
            updated_at=timestamp(job.get("completed_at") or job.get("started_at")),
            job=text(job, "name"),
        )
    ]


def check_suite(payload: Json) -> list[Build]:
    full_name, repo_id, default = repository(payload)
    suite = obj(payload, "check_suite")
    suite_id = integer(suite, "id")
    app = obj(suite, "app")
    if suite_id is None or text(app, "slug") == ACTIONS_APP:
        return []
    branch = text(suite, "head_branch")
    sha = text(suite, "head_sha")
    html = text(obj(payload, "repository"), "html_url")
    completed = text(suite, "status") == "completed"
    return [
        Build(
            repo=full_name,
            repo_id=repo_id,
            workflow=text(app, "name") or text(app, "slug") or "check suite",
            branch=branch,
            default_branch=branch is not None and branch == default,
            status=_status(text(suite, "status"), text(suite, "conclusion")),
            event=None,
            run_id=suite_id,
            attempt=1,
            url=f"{html}/commit/{sha}/checks" if html and sha else text(suite, "url"),
            started_at=timestamp(suite.get("created_at")),
            completed_at=timestamp(suite.get("updated_at")) if completed else None,
            actor=text(obj(payload, "sender"), "login"),
            head_sha=sha,
            source="check_suite",
            updated_at=timestamp(suite.get("updated_at")),
        )
    ]


def parse_codecov(description: str | None) -> float | None:
    """The project coverage in a Codecov status description, if it has one."""
    if not description:
        return None
    match = _PERCENT.match(description)
    if not match:
        return None
    value = float(match.group(1))
    return value if 0.0 <= value <= 100.0 else None


def _coverage(
    payload: Json,
    *,
    branch: str | None,
    sha: str | None,
    description: str | None,
    url: str | None,
    at: str | None,
    source: str,
) -> list[Coverage]:
    value = parse_codecov(description)
    if value is None:
        return []
    full_name, repo_id, _ = repository(payload)
    return [
        Coverage(
            repo=full_name,
            repo_id=repo_id,
            branch=branch,
            sha=sha,
            value=value,
            delta=None,
            url=url,
            at=at,
            source=source,
        )
    ]


def status(payload: Json) -> list[Coverage]:
    if text(payload, "context") != CODECOV_PROJECT:
        return []
    sha = text(payload, "sha")
    _, _, default = repository(payload)
    # A commit can be on several branches; prefer the default branch.
    names = [
        text(b, "name")
        for b in payload.get("branches") or []
        if isinstance(b, dict) and text(b, "commit", "sha") in (sha, None)
    ]
    names = [n for n in names if n]
    branch = default if default in names else (names[0] if names else None)
    return _coverage(
        payload,
        branch=branch,
        sha=sha,
        description=text(payload, "description"),
        url=text(payload, "target_url"),
        at=timestamp(payload.get("updated_at") or payload.get("created_at")),
        source="status",
    )


def check_run(payload: Json) -> list[Coverage]:
    run = obj(payload, "check_run")
    if text(run, "name") != CODECOV_PROJECT or text(run, "status") != "completed":
        return []
    output = obj(run, "output")
    suite = obj(run, "check_suite")
    return _coverage(
        payload,
        branch=text(suite, "head_branch"),
        sha=text(run, "head_sha"),
        description=text(output, "title") or text(output, "summary"),
        url=text(run, "details_url") or text(run, "html_url"),
        at=timestamp(run.get("completed_at")),
        source="check_run",
    )


# The events this module reads, each with its normalizer (github/normalize.py gathers them).
EVENTS: dict[str, Callable[[Json], Sequence[Fact]]] = {
    "workflow_run": workflow_run,
    "workflow_job": workflow_job,
    "check_suite": check_suite,
    "check_run": check_run,
    "status": status,
}
