"""Normalized facts: what rules, scores and summaries see.

Field names here are the rule language's vocabulary (``build.status``,
``vulnerability.severity`` ...) and are kept stable. Timestamps are ISO-8601
strings in UTC (``2026-01-31T08:00:00Z``), so facts are plain data all the way
into rule conditions and the API, and compare correctly as strings.

Each kind of fact is one class here, and it says all pulsehook needs to know of
it besides its normalizer (``github/events_*.py``) and its state writer
(``store/state.py``): its name, whether rules see it, what an alert on it is
about, what ends that alert, and the one line a notice says of it. ``KINDS``
lists every kind; every other list of kinds is derived from it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

# Marks a value taken from a fact (payload text) for escaping where the line goes.
Mark = Callable[[Any], str]

# What a finished CI run's conclusion says of the code: the one rule for build
# state, workflow state, summary items, the health score and alert recovery.
# A neutral conclusion (cancelled, skipped ...) says nothing: the run is not
# counted at all. Any other counts; one in neither of the first two sets (a CI
# report's own word, a conclusion GitHub adds later) is a build that did not
# pass, and the health score's pass rate leaves it out.
PASSED_CONCLUSIONS = frozenset({"success"})
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "startup_failure"})
NEUTRAL_CONCLUSIONS = frozenset({"cancelled", "skipped", "neutral", "stale", "action_required"})
PENDING_STATES = frozenset({"queued", "in_progress", "requested", "waiting", "pending"})
ADVISORY_SEVERITIES = frozenset({"critical", "high", "medium", "low"})
VULNERABILITY_CLOSED = frozenset({"fixed", "dismissed", "auto_dismissed", "withdrawn"})


def counted(conclusion: str) -> bool:
    """Whether a finished run with this conclusion counts (says something of the code)."""
    return conclusion not in NEUTRAL_CONCLUSIONS


class Kind:
    """What every kind of fact says of itself, besides its fields.

    ``name``: the kind in rules (``build.status``), the API and alert history.
    ``for_rules``: alert rules may speak of it. ``one_shot``: each match is its
    own notice and there is nothing to resolve. ``internal``: pulsehook makes it
    itself (from the state, not from a payload), so no normalizer gives it.

    Each kind also has, reading a fact as plain data (``fact_dict``, or an
    alert's stored fact, which an older version may have written with fewer
    fields): ``subject(f)``, what an alert on it is about (rule, repository and
    subject key the alert), and ``describe(f, mark)``, one line saying what
    happened with every value of the fact passed through ``mark``. ``closes``
    and ``recovers`` say here that a kind never ends an alert; kinds that do
    say when.
    """

    name: ClassVar[str]
    for_rules: ClassVar[bool] = True
    one_shot: ClassVar[bool] = False
    internal: ClassVar[bool] = False

    @classmethod
    def closes(cls, _f: Mapping[str, Any]) -> bool:
        """Ends its subject whatever the rule says (a fixed vulnerability ...)."""
        return False

    @classmethod
    def recovers(cls, _f: Mapping[str, Any]) -> bool:
        """Not matching the rule, says its subject is well again."""
        return False

    @classmethod
    def severity_of(cls, _f: Mapping[str, Any]) -> str | None:
        """The subject's own severity (an advisory's), when it has one: an alert on it
        shows that rather than its rule's."""
        return None

    @classmethod
    def particulars(cls, _f: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
        """What a reader needs besides the one line: (label, value, link or None), the
        values payload text, to be escaped where they go."""
        return []


@dataclass(frozen=True)
class Build(Kind):
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
    workflow_path: str | None = None  # its file, ``.github/workflows/ci.yml``

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
            and counted(self.status)
        )

    @classmethod
    def subject(cls, f: Mapping[str, Any]) -> str:
        return f"{f.get('workflow')}@{f.get('branch')}"

    @classmethod
    def recovers(cls, f: Mapping[str, Any]) -> bool:
        # Only by passing: a cancelled or skipped run says nothing. And one job
        # passing says nothing of its run's other jobs: only runs (and other CI
        # suites) recover a build alert. A failing job may still fire one.
        return f.get("status") in PASSED_CONCLUSIONS and f.get("source") != "workflow_job"

    @classmethod
    def describe(cls, f: Mapping[str, Any], mark: Mark) -> str:
        where = f"on {mark(f.get('branch'))}" if f.get("branch") else ""
        job = f" (job {mark(f['job'])})" if f.get("job") else ""
        return f"{mark(f.get('workflow'))}{job} {where}: {mark(f.get('status'))}".replace("  ", " ")


@dataclass(frozen=True)
class Vulnerability(Kind):
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
    affected_range: str | None = None  # "< 7.5.2": the versions the advisory names
    patched_version: str | None = None  # the first fixed one; None: no fix yet
    advisory_url: str | None = None  # the advisory's page (github.com/advisories/GHSA-...)

    @classmethod
    def subject(cls, f: Mapping[str, Any]) -> str:
        return f"alert#{f.get('number')}"

    @classmethod
    def severity_of(cls, f: Mapping[str, Any]) -> str | None:
        found = f.get("severity")
        return found if found in ADVISORY_SEVERITIES else None

    @classmethod
    def particulars(cls, f: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
        package = f.get("package")
        if package and f.get("ecosystem"):
            package = f"{f['ecosystem']}/{package}"
        cve = f.get("cve_id")
        rows: list[tuple[str, Any, Any]] = [
            ("Package", package, None),
            ("Manifest", f.get("manifest"), None),
            ("Affected versions", f.get("affected_range"), None),
            ("Patched version", f.get("patched_version") or "none yet", None),
            ("Advisory", f.get("ghsa_id"), f.get("advisory_url")),
            # NVD's page for it; escape.link_url refuses what would not be a plain link.
            ("CVE", cve, f"https://nvd.nist.gov/vuln/detail/{cve}" if cve else None),
            ("Summary", f.get("summary"), None),
        ]
        return [row for row in rows if row[1]]

    @classmethod
    def closes(cls, f: Mapping[str, Any]) -> bool:
        # Fixed, dismissed or withdrawn: over, though still "critical".
        return f.get("state") in VULNERABILITY_CLOSED

    @classmethod
    def recovers(cls, f: Mapping[str, Any]) -> bool:
        return cls.closes(f)

    @classmethod
    def describe(cls, f: Mapping[str, Any], mark: Mark) -> str:
        ident = f.get("ghsa_id") or f.get("cve_id") or f"#{f.get('number')}"
        return (
            f"{mark(f.get('severity'))} vulnerability in {mark(f.get('package'))}"
            f" ({mark(ident)}): {mark(f.get('summary') or '')} [{mark(f.get('state'))}]"
        )


@dataclass(frozen=True)
class Coverage(Kind):
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

    @classmethod
    def subject(cls, f: Mapping[str, Any]) -> str:
        return f"coverage@{f.get('branch')}"

    @classmethod
    def recovers(cls, _f: Mapping[str, Any]) -> bool:
        return True  # any figure the rule does not match is a recovery

    @classmethod
    def describe(cls, f: Mapping[str, Any], mark: Mark) -> str:
        delta = f.get("delta")
        change = f" ({delta:+.2f})" if isinstance(delta, int | float) else ""
        value = f.get("value")
        shown = f"{value:.2f}%" if isinstance(value, int | float) else "?"
        return f"coverage on {mark(f.get('branch'))}: {shown}{change}"


@dataclass(frozen=True)
class Dependency(Kind):
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

    @classmethod
    def subject(cls, f: Mapping[str, Any]) -> str:
        return f"pr#{f.get('number')}"

    @classmethod
    def closes(cls, f: Mapping[str, Any]) -> bool:
        return f.get("state") == "closed"  # merged or not: the pull request is over

    @classmethod
    def recovers(cls, f: Mapping[str, Any]) -> bool:
        return cls.closes(f)

    @classmethod
    def describe(cls, f: Mapping[str, Any], mark: Mark) -> str:
        return (
            f"Dependabot PR #{mark(f.get('number'))}: {mark(f.get('title'))}"
            f" [{mark(f.get('state'))}]"
        )


@dataclass(frozen=True)
class Push(Kind):
    name: ClassVar[str] = "push"
    one_shot: ClassVar[bool] = True
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
    # It changed a dependency manifest or lock file: the dependency graph moved.
    manifests: bool = False
    workflows: bool = False  # it changed a workflow file: its schedule may have moved

    @classmethod
    def subject(cls, f: Mapping[str, Any]) -> str:
        return f"push@{f.get('branch')}:{f.get('head_sha')}"

    @classmethod
    def describe(cls, f: Mapping[str, Any], mark: Mark) -> str:
        forced = "force-" if f.get("forced") else ""
        return (
            f"{forced}push of {mark(f.get('commits'))} commit(s) to {mark(f.get('branch'))}"
            f" by {mark(f.get('author'))}"
        )


@dataclass(frozen=True)
class Repo(Kind):
    """Repository lifecycle: created, archived, unarchived, renamed, deleted,
    transferred, privatized, publicized, tracked (installation added) and
    untracked (installation removed)."""

    name: ClassVar[str] = "repo"
    one_shot: ClassVar[bool] = True
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

    @classmethod
    def subject(cls, f: Mapping[str, Any]) -> str:
        return f"repo:{f.get('action')}:{f.get('at')}"

    @classmethod
    def describe(cls, f: Mapping[str, Any], mark: Mark) -> str:
        return f"repository {mark(f.get('action'))}"


@dataclass(frozen=True)
class HookPing(Kind):
    """GitHub's ``ping`` when a webhook is created: which hook, which events (not for rules)."""

    name: ClassVar[str] = "hook"
    for_rules: ClassVar[bool] = False
    hook_id: int | None
    events: tuple[str, ...]
    content_type: str | None
    target: str | None
    repo: str | None
    at: str | None
    org: str | None = None  # the organisation, for an organisation's hook

    @classmethod
    def subject(cls, f: Mapping[str, Any]) -> str:
        return f"hook#{f.get('hook_id')}"

    @classmethod
    def describe(cls, f: Mapping[str, Any], mark: Mark) -> str:
        return f"webhook {mark(f.get('hook_id'))} created"


@dataclass(frozen=True)
class Profile(Kind):
    """What a scan learned of a repository: documentation and Dependabot (not for rules)."""

    name: ClassVar[str] = "profile"
    for_rules: ClassVar[bool] = False
    repo: str
    repo_id: int | None
    readme: bool | None
    api_docs: bool | None
    dependabot: bool | None
    at: str | None

    @classmethod
    def subject(cls, _f: Mapping[str, Any]) -> str:
        return "profile"

    @classmethod
    def describe(cls, f: Mapping[str, Any], mark: Mark) -> str:
        return (
            f"profile checked: readme {mark(f.get('readme'))},"
            f" Dependabot {mark(f.get('dependabot'))}"
        )


@dataclass(frozen=True)
class Package:
    """One package of a dependency graph, as GitHub's SBOM names it (github/sbom.py)."""

    spdx_id: str
    ecosystem: str | None  # Dependabot's name for it: npm, pip, rubygems, maven...
    name: str
    version: str | None


@dataclass(frozen=True)
class DependencyGraph(Kind):
    """A repository's whole dependency graph, read from GitHub's SBOM by a scan (not
    for rules): every package, and which depends on which. ``state`` is ``ok``, or
    ``disabled`` when GitHub has no graph for it (disabled, or hidden from the token):
    unknown then, never zero."""

    name: ClassVar[str] = "dependency_graph"
    for_rules: ClassVar[bool] = False
    repo: str
    repo_id: int | None
    state: str
    root: str | None
    packages: tuple[Package, ...]
    edges: tuple[tuple[str, str], ...]
    truncated: bool
    reason: str | None
    at: str | None

    @classmethod
    def subject(cls, _f: Mapping[str, Any]) -> str:
        return "dependency_graph"

    @classmethod
    def describe(cls, f: Mapping[str, Any], mark: Mark) -> str:
        if f.get("state") != "ok":
            return f"dependency graph {mark(f.get('state'))}"
        return f"dependency graph read: {mark(len(f.get('packages') or ()))} packages"


@dataclass(frozen=True)
class IssueActivity(Kind):
    """Someone opened, changed or commented on an issue or pull request (not for rules).

    Feeds the activity score; bots' activity is recorded but does not count.
    """

    name: ClassVar[str] = "issue_activity"
    for_rules: ClassVar[bool] = False
    repo: str
    repo_id: int | None
    number: int | None
    action: str
    author: str | None
    bot: bool
    at: str | None

    @classmethod
    def subject(cls, f: Mapping[str, Any]) -> str:
        return f"issue#{f.get('number')}"

    @classmethod
    def describe(cls, f: Mapping[str, Any], mark: Mark) -> str:
        return f"issue #{mark(f.get('number'))} {mark(f.get('action'))} by {mark(f.get('author'))}"


@dataclass(frozen=True)
class WorkflowState(Kind):
    """A workflow as a scan read it: GitHub's state of it and its schedule.

    ``state`` is GitHub's (``active``, ``disabled_inactivity``, ``disabled_manually``,
    ``disabled_fork``) or ``deleted`` once it is no longer listed. ``at_risk``: an
    active scheduled workflow of a public repository without activity for
    ``idle_days``, past the warning threshold, which GitHub will soon disable.
    """

    name: ClassVar[str] = "workflow"
    repo: str
    repo_id: int | None
    workflow: str  # its name, as runs name it
    path: str  # its file, ``.github/workflows/nightly.yml``
    state: str
    disabled: bool
    scheduled: bool
    crons: tuple[str, ...]
    problem: str | None  # why its schedule could not be read
    idle_days: int | None
    at_risk: bool
    url: str | None
    at: str | None
    grace_s: int = 3600  # the grace its implicit summary item gets
    archived: bool = False  # its repository is archived: nothing of it runs, nothing expected

    @classmethod
    def subject(cls, f: Mapping[str, Any]) -> str:
        return f"workflow:{f.get('path')}"

    @classmethod
    def recovers(cls, _f: Mapping[str, Any]) -> bool:
        # Each reading is the workflow's whole current state: not matching, it is well.
        return True

    @classmethod
    def describe(cls, f: Mapping[str, Any], mark: Mark) -> str:
        name, repo = mark(f.get("workflow")), mark(f.get("repo"))
        state = f.get("state")
        if state == "disabled_inactivity":
            return f"GitHub disabled {name} in {repo} after 60 days without activity — re-enable it"
        if f.get("disabled"):
            return f"{name} in {repo} is disabled ({mark(state)})"
        if f.get("at_risk"):
            return (
                f"{name} in {repo}: no activity for {mark(f.get('idle_days'))} days;"
                " GitHub disables scheduled workflows at 60"
            )
        return f"{name} in {repo} is {mark(state)}"


@dataclass(frozen=True)
class Spec(Kind):
    """A summary item changed status (ERROR / MISSING / OK)."""

    name: ClassVar[str] = "spec"
    internal: ClassVar[bool] = True
    path: str
    status: str
    previous: str | None
    note: str | None
    repo: str
    url: str | None
    at: str | None
    implicit: bool = False  # expected from its workflow file's schedule, not declared
    workflow: str | None = None  # the workflow's name, for a workflow item
    source: str | None = None  # the workflow file an implicit item comes from
    channels: tuple[str, ...] = ()  # an [[expect]]'s channels, instead of the rule's

    @classmethod
    def subject(cls, f: Mapping[str, Any]) -> str:
        return str(f.get("path"))

    @classmethod
    def recovers(cls, f: Mapping[str, Any]) -> bool:
        return f.get("status") == "OK"

    @classmethod
    def describe(cls, f: Mapping[str, Any], mark: Mark) -> str:
        return (
            f"{mark(f.get('path'))}: {mark(f.get('previous'))} --> {mark(f.get('status'))}"
            f" {mark(f.get('note') or '')}"
        )


@dataclass(frozen=True)
class Health(Kind):
    """A repository's health score changed."""

    name: ClassVar[str] = "health"
    internal: ClassVar[bool] = True
    repo: str
    repo_id: int | None
    score: float
    previous: float | None
    components: dict[str, Any]
    at: str | None

    @classmethod
    def subject(cls, _f: Mapping[str, Any]) -> str:
        return "health"  # one score per repository

    @classmethod
    def recovers(cls, _f: Mapping[str, Any]) -> bool:
        return True  # any score the rule does not match is a recovery

    @classmethod
    def describe(cls, f: Mapping[str, Any], mark: Mark) -> str:
        return f"health score {mark(f.get('previous'))} --> {mark(f.get('score'))}"


# Every kind of fact. (``Fact`` below is the same list for the type checker.)
KINDS = (
    Build,
    Vulnerability,
    Coverage,
    Dependency,
    Push,
    Repo,
    HookPing,
    Profile,
    DependencyGraph,
    IssueActivity,
    WorkflowState,
    Spec,
    Health,
)

Fact = (
    Build
    | Vulnerability
    | Coverage
    | Dependency
    | Push
    | Repo
    | HookPing
    | Profile
    | DependencyGraph
    | IssueActivity
    | WorkflowState
    | Spec
    | Health
)

# Each kind by name (``type[Any]``: the CLI builds facts from loose JSON with it).
FACT_TYPES: dict[str, type[Any]] = {k.name: k for k in KINDS}
# The facts alert rules can speak of, and those each match of which is its own notice.
RULE_FACTS = tuple(k.name for k in KINDS if k.for_rules)
ONE_SHOT = frozenset(k.name for k in KINDS if k.one_shot)


def kind(name: str) -> type[Fact]:
    """The kind called ``name``. There is no default: an unknown name is a bug."""
    found: type[Fact] | None = FACT_TYPES.get(name)
    if found is None:
        raise LookupError(f"unknown fact kind {name!r}")
    return found


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
