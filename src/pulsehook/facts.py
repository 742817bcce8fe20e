"""Normalized facts: what rules, scores and summaries see.

Field names here are the rule language's vocabulary (``build.status``,
``vulnerability.severity`` ...) and are kept stable. Timestamps are ISO-8601
strings in UTC (``2026-01-31T08:00:00Z``), so facts are plain data all the way
into rule conditions and the API, and compare correctly as strings.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class Build:
    """A CI run: from ``workflow_run``, ``check_suite`` or ``workflow_job``."""

    name: ClassVar[str] = "build"
    repo: str
    repo_id: int | None
    workflow: str
    branch: str | None
    default_branch: bool
    status: str  # the conclusion once completed, else queued / in_progress / ...
    event: str | None
    run_id: int
    attempt: int
    url: str | None
    started_at: str | None
    completed_at: str | None
    actor: str | None
    head_sha: str | None
    source: str  # workflow_run | check_suite | workflow_job
    updated_at: str | None
    job: str | None = None

    @property
    def completed(self) -> bool:
        return self.completed_at is not None or self.status not in PENDING_STATES

    @property
    def counts_on_default_branch(self) -> bool:
        """A finished run of a workflow (not a job) on the default branch, with a
        conclusion that says something about the code: what build state, the
        summary's workflow items and scores are made of."""
        return (
            self.default_branch
            and self.completed_at is not None
            and self.source != "workflow_job"
            and self.status not in NEUTRAL_CONCLUSIONS
        )


PENDING_STATES = frozenset({"queued", "in_progress", "requested", "waiting", "pending"})
# Conclusions that say nothing about the code's health: they are not counted.
NEUTRAL_CONCLUSIONS = frozenset({"cancelled", "skipped", "neutral", "stale", "action_required"})


@dataclass(frozen=True)
class Vulnerability:
    name: ClassVar[str] = "vulnerability"
    repo: str
    repo_id: int | None
    number: int
    action: str
    state: str  # open | fixed | dismissed | auto_dismissed | withdrawn
    severity: str  # low | medium | high | critical (GitHub's "moderate" maps to medium)
    package: str | None
    ecosystem: str | None
    manifest: str | None
    ghsa_id: str | None
    cve_id: str | None
    summary: str | None
    description: str | None
    url: str | None
    created_at: str | None
    updated_at: str | None
    fixed_at: str | None
    dismissed_at: str | None


@dataclass(frozen=True)
class Coverage:
    name: ClassVar[str] = "coverage"
    repo: str
    repo_id: int | None
    branch: str | None
    sha: str | None
    value: float
    # Against the previous value on the same branch; filled in by the ingest step,
    # which is the one place that can see the previous value.
    delta: float | None
    url: str | None
    at: str | None
    source: str  # status | check_run | api


@dataclass(frozen=True)
class Dependency:
    """A dependency update pull request opened by Dependabot (an outdated dependency)."""

    name: ClassVar[str] = "dependency"
    repo: str
    repo_id: int | None
    number: int
    action: str
    state: str  # open | closed
    merged: bool
    title: str
    package: str | None
    from_version: str | None
    to_version: str | None
    url: str | None
    opened_at: str | None
    closed_at: str | None
    updated_at: str | None


@dataclass(frozen=True)
class Push:
    name: ClassVar[str] = "push"
    repo: str
    repo_id: int | None
    branch: str | None
    forced: bool
    commits: int
    author: str | None
    at: str | None
    bot: bool  # pushes by bots do not count as activity
    deleted: bool
    head_sha: str | None


@dataclass(frozen=True)
class Repo:
    """Repository lifecycle: created, archived, unarchived, renamed, deleted,
    transferred, privatized, publicized, tracked (installation added) and
    untracked (installation removed)."""

    name: ClassVar[str] = "repo"
    repo: str
    repo_id: int | None
    action: str
    owner: str | None
    default_branch: str | None
    archived: bool
    private: bool
    url: str | None
    previous_name: str | None
    at: str | None


@dataclass(frozen=True)
class HookPing:
    """GitHub's ``ping`` when a webhook is created: which hook, which events."""

    name: ClassVar[str] = "hook"
    hook_id: int | None
    events: tuple[str, ...]
    content_type: str | None
    target: str | None
    repo: str | None
    at: str | None
    org: str | None = None  # the organisation, for an organisation's hook


@dataclass(frozen=True)
class Profile:
    """What a scan learned of a repository: documentation and Dependabot (internal)."""

    name: ClassVar[str] = "profile"
    repo: str
    repo_id: int | None
    readme: bool | None
    api_docs: bool | None
    dependabot: bool | None
    at: str | None


@dataclass(frozen=True)
class IssueActivity:
    """Someone opened, changed or commented on an issue or pull request (internal).

    Feeds the activity score; bots' activity is recorded but does not count.
    """

    name: ClassVar[str] = "issue_activity"
    repo: str
    repo_id: int | None
    number: int | None
    action: str
    author: str | None
    bot: bool
    at: str | None


@dataclass(frozen=True)
class Spec:
    """A summary item changed status (ERROR / MISSING / OK)."""

    name: ClassVar[str] = "spec"
    path: str
    status: str
    previous: str | None
    note: str | None
    repo: str
    url: str | None
    at: str | None


@dataclass(frozen=True)
class Health:
    """A repository's health score changed."""

    name: ClassVar[str] = "health"
    repo: str
    repo_id: int | None
    score: float
    previous: float | None
    components: dict[str, Any]
    at: str | None


Fact = (
    Build
    | Vulnerability
    | Coverage
    | Dependency
    | Push
    | Repo
    | HookPing
    | Profile
    | IssueActivity
    | Spec
    | Health
)

FACT_TYPES: dict[str, type[Any]] = {
    t.name: t
    for t in (
        Build,
        Vulnerability,
        Coverage,
        Dependency,
        Push,
        Repo,
        HookPing,
        Profile,
        IssueActivity,
        Spec,
        Health,
    )
}

# The facts alert rules can speak of (``hook`` is bookkeeping, not for rules).
RULE_FACTS = ("build", "vulnerability", "coverage", "dependency", "push", "repo", "spec", "health")


def _field_names(kind: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def fact_dict(fact: Fact) -> dict[str, Any]:
    """The fact as plain data (what rule conditions and the API see).

    Fields are strings, numbers and booleans, copied as they are; the few
    containers (a score's components) are copied deeply, so no caller can
    change the fact through its dict. (``dataclasses.asdict`` deep-copies
    every field: a third of processing time.)
    """
    data: dict[str, Any] = {}
    for name in _field_names(type(fact)):
        value = getattr(fact, name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dict | list):
            value = copy.deepcopy(value)
        data[name] = value
    return data
