"""pulsehook's own events, stored like deliveries so they share the same path (pure).

- ``pulsehook.profile``: a scan's findings on documentation and Dependabot.
- ``pulsehook.sbom``: a repository's dependency graph as GitHub's SBOM answered
  (``github/sbom.py``), or that it has none.
- ``pulsehook.workflows``: a repository's workflows as a scan read them: GitHub's
  state of each and the crons of its file (``github/workflow_files.py``).
- ``pulsehook.report``: a CI job's report (``POST /api/v1/report``): a build,
  and optionally a coverage figure, for what webhooks cannot tell.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from ..facts import Build, Coverage, DependencyGraph, Fact, Profile, WorkflowState
from . import sbom, workflow_files
from .payload import Json, integer, obj, repository, text, timestamp


def _maybe_bool(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def profile(payload: Json) -> list[Profile]:
    full_name, repo_id, _ = repository(payload)
    return [
        Profile(
            repo=full_name,
            repo_id=repo_id,
            readme=_maybe_bool(payload.get("readme")),
            api_docs=_maybe_bool(payload.get("api_docs")),
            dependabot=_maybe_bool(payload.get("dependabot")),
            at=timestamp(payload.get("checked_at")),
        )
    ]


def dependency_graph(payload: Json) -> list[DependencyGraph]:
    full_name, repo_id, _ = repository(payload)
    at = timestamp(payload.get("checked_at"))
    if payload.get("disabled") is True:
        return [
            DependencyGraph(
                repo=full_name,
                repo_id=repo_id,
                state="disabled",
                root=None,
                packages=(),
                edges=(),
                truncated=False,
                reason=text(payload, "reason"),
                at=at,
            )
        ]
    graph = sbom.parse(payload.get("sbom"))
    return [
        DependencyGraph(
            repo=full_name,
            repo_id=repo_id,
            state="ok",
            root=graph.root,
            packages=graph.packages,
            edges=graph.edges,
            truncated=graph.truncated or obj(payload, "sbom").get("truncated") is True,
            reason=None,
            at=at,
        )
    ]


WARN_DAYS = 50  # GitHub disables at 60 days: warn ten days before


def workflows(payload: Json) -> list[WorkflowState]:
    full_name, repo_id, _ = repository(payload)
    at = timestamp(payload.get("checked_at"))
    idle = workflow_files.idle_days(text(payload, "last_activity"), at or "")
    public = obj(payload, "repository").get("private") is False
    archived = obj(payload, "repository").get("archived") is True
    warn = integer(payload, "warn_days") or WARN_DAYS
    grace = integer(payload, "grace_s")
    found: list[WorkflowState] = []
    listed = payload.get("workflows")
    for entry in listed if isinstance(listed, list) else []:
        if not isinstance(entry, dict):
            continue
        name, path, state = text(entry, "name"), text(entry, "path"), text(entry, "state")
        if not (name and path and state):
            continue
        raw = entry.get("crons")
        crons = tuple(c for c in raw if isinstance(c, str)) if isinstance(raw, list) else ()
        active = state == workflow_files.ACTIVE
        found.append(
            WorkflowState(
                repo=full_name,
                repo_id=repo_id,
                workflow=name,
                path=path,
                state=state,
                disabled=state in workflow_files.DISABLED,
                scheduled=bool(crons),
                crons=crons,
                problem=text(entry, "problem"),
                idle_days=idle,
                at_risk=active
                and bool(crons)
                and public
                and not archived
                and idle is not None
                and idle > warn,
                url=text(entry, "html_url"),
                at=at,
                grace_s=grace if grace is not None and grace >= 0 else 3600,
                archived=archived,
            )
        )
    return found


def report(payload: Json) -> list[Build | Coverage]:
    full_name, repo_id, default = repository(payload)
    branch = text(payload, "branch") or default
    at = timestamp(payload.get("at"))
    workflow = text(payload, "workflow") or text(payload, "job") or "report"
    facts: list[Build | Coverage] = []
    status = text(payload, "status")
    if status:
        # A stable id per report, so a retried POST updates rather than duplicates.
        run_id = integer(payload, "run_id") or int(
            hashlib.sha1(
                f"{full_name}|{workflow}|{text(payload, 'id')}".encode(), usedforsecurity=False
            ).hexdigest()[:12],
            16,
        )
        facts.append(
            Build(
                repo=full_name,
                repo_id=repo_id,
                workflow=workflow,
                branch=branch,
                default_branch=branch is not None and branch == default,
                status=status,
                event="report",
                run_id=run_id,
                attempt=integer(payload, "attempt") or 1,
                url=text(payload, "url"),
                started_at=at,
                completed_at=at,
                actor=text(obj(payload, "sender"), "login"),
                head_sha=text(payload, "sha"),
                source="report",
                updated_at=at,
            )
        )
    value = payload.get("coverage")
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 100:
        facts.append(
            Coverage(
                repo=full_name,
                repo_id=repo_id,
                branch=branch,
                sha=text(payload, "sha"),
                value=float(value),
                delta=None,
                url=text(payload, "url"),
                at=at,
                source="api",
            )
        )
    return facts


# The events this module reads, each with its normalizer (github/normalize.py gathers them).
EVENTS: dict[str, Callable[[Json], Sequence[Fact]]] = {
    "pulsehook.profile": profile,
    "pulsehook.report": report,
    "pulsehook.sbom": dependency_graph,
    "pulsehook.workflows": workflows,
}
