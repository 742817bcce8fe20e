"""Exact facts from GitHub's real example payloads (tests/payloads, see SOURCES.md).

Every expected value below was read from the payload files. Cases the real
examples lack are made by loading a real payload and changing only the named
fields (on a deep copy); each such test says so in a comment.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from pulsehook.errors import UnsupportedEvent
from pulsehook.facts import (
    Build,
    Coverage,
    Dependency,
    HookPing,
    IssueActivity,
    Push,
    Repo,
    Vulnerability,
    fact_dict,
)
from pulsehook.github.events_ci import parse_codecov
from pulsehook.github.normalize import NORMALIZERS, normalize, snapshot, supported
from pulsehook.github.payload import timestamp

from .conftest import payload

SUPPORTED = {
    "push",
    "workflow_run",
    "workflow_job",
    "check_suite",
    "check_run",
    "status",
    "dependabot_alert",
    "repository_vulnerability_alert",
    "pull_request",
    "issues",
    "issue_comment",
    "repository",
    "installation",
    "installation_repositories",
    "ping",
    # pulsehook's own events (scan findings, CI reports), stored like deliveries
    "pulsehook.profile",
    "pulsehook.report",
    "pulsehook.sbom",
    "pulsehook.workflows",
}


def load(name: str) -> dict[str, Any]:
    """A fresh deep copy of a real payload, safe to change in a test."""
    return copy.deepcopy(payload(name))


def test_supported_events_are_exactly_the_documented_set() -> None:
    assert set(NORMALIZERS) == SUPPORTED
    assert all(supported(name) for name in SUPPORTED)
    assert not supported("discussion")


# --------------------------------------------------------------------------- workflow_run

# workflow_run.completed.json: octo-org/octo-repo (id 300029405, default branch master),
# workflow "test", run 289782451 on master, conclusion success, triggering_actor Codertocat.
WORKFLOW_RUN_SUCCESS = Build(
    repo="octo-org/octo-repo",
    repo_id=300029405,
    workflow="test",
    branch="master",
    default_branch=True,
    status="success",
    event="repository_dispatch",
    run_id=289782451,
    attempt=1,
    url="https://github.com/octo-org/octo-repo/actions/runs/289782451",
    started_at="2020-10-05T16:33:49Z",
    completed_at="2020-10-05T16:33:49Z",
    actor="Codertocat",
    head_sha="3484a3fb816e0859fd6e1cea078d76385ff50625",
    source="workflow_run",
    updated_at="2020-10-05T16:33:49Z",
    job=None,
    workflow_path=".github/workflows/test.yml",
)


def test_workflow_run_completed_success() -> None:
    assert normalize("workflow_run", payload("workflow_run.completed")) == [WORKFLOW_RUN_SUCCESS]


def test_workflow_run_completed_fact_dict() -> None:
    [fact] = normalize("workflow_run", payload("workflow_run.completed"))
    assert isinstance(fact, Build)
    assert fact.completed
    assert fact_dict(fact) == {
        "repo": "octo-org/octo-repo",
        "repo_id": 300029405,
        "workflow": "test",
        "branch": "master",
        "default_branch": True,
        "status": "success",
        "event": "repository_dispatch",
        "run_id": 289782451,
        "attempt": 1,
        "url": "https://github.com/octo-org/octo-repo/actions/runs/289782451",
        "started_at": "2020-10-05T16:33:49Z",
        "completed_at": "2020-10-05T16:33:49Z",
        "actor": "Codertocat",
        "head_sha": "3484a3fb816e0859fd6e1cea078d76385ff50625",
        "source": "workflow_run",
        "updated_at": "2020-10-05T16:33:49Z",
        "job": None,
        "workflow_path": ".github/workflows/test.yml",
    }


def test_workflow_run_with_pull_requests_gives_the_same_build() -> None:
    # The file differs from workflow_run.completed.json only in pull_requests.
    assert normalize("workflow_run", payload("workflow_run.completed.with_pull_requests")) == [
        WORKFLOW_RUN_SUCCESS
    ]


def test_workflow_run_failure_on_default_branch() -> None:
    # No real failure example exists: conclusion and head_branch changed on the success one.
    data = load("workflow_run.completed")
    data["workflow_run"]["conclusion"] = "failure"
    data["workflow_run"]["head_branch"] = data["repository"]["default_branch"]
    assert normalize("workflow_run", data) == [
        dataclasses.replace(WORKFLOW_RUN_SUCCESS, status="failure", branch="master")
    ]


def test_workflow_run_on_other_branch_is_not_default() -> None:
    # head_branch changed from master to a feature branch.
    data = load("workflow_run.completed")
    data["workflow_run"]["head_branch"] = "feature/x"
    assert normalize("workflow_run", data) == [
        dataclasses.replace(WORKFLOW_RUN_SUCCESS, branch="feature/x", default_branch=False)
    ]


@pytest.mark.parametrize(
    "conclusion", ["startup_failure", "cancelled", "timed_out", "skipped", "neutral", "stale"]
)
def test_workflow_run_conclusion_passes_through_as_status(conclusion: str) -> None:
    # conclusion changed on the real success example; unknown ones pass through as is.
    data = load("workflow_run.completed")
    data["workflow_run"]["conclusion"] = conclusion
    assert normalize("workflow_run", data) == [
        dataclasses.replace(WORKFLOW_RUN_SUCCESS, status=conclusion)
    ]


def test_workflow_run_requested_is_queued() -> None:
    [fact] = normalize("workflow_run", payload("workflow_run.requested"))
    assert fact == dataclasses.replace(
        WORKFLOW_RUN_SUCCESS,
        status="queued",
        completed_at=None,
        updated_at="2020-10-05T16:33:24Z",
    )
    assert isinstance(fact, Build)
    assert not fact.completed


def test_workflow_run_requested_with_conclusion() -> None:
    # Real example: action requested, but status completed with conclusion action_required.
    assert normalize("workflow_run", payload("workflow_run.requested.with_conclusion")) == [
        dataclasses.replace(
            WORKFLOW_RUN_SUCCESS,
            status="action_required",
            completed_at="2020-10-05T16:33:24Z",
            updated_at="2020-10-05T16:33:24Z",
        )
    ]


def test_workflow_run_docs_example_status_queued() -> None:
    # GitHub's docs example says action completed but status queued / conclusion null;
    # it has no triggering_actor or actor, so the sender is the actor.
    assert normalize("workflow_run", payload("workflow_run.completed.docs")) == [
        Build(
            repo="Codertocat/Hello-World",
            repo_id=283462325,
            workflow="Manually triggered workflow",
            branch="main",
            default_branch=True,
            status="queued",
            event="workflow_dispatch",
            run_id=1589141559,
            attempt=1,
            url="https://github.com/octo-org/octo-repo/actions/runs/1589141559",
            started_at="2021-12-16T19:37:22Z",
            completed_at=None,
            actor="Codertocat",
            head_sha="5779607b49aab1200488439f02372c57b4f75444",
            source="workflow_run",
            updated_at="2021-12-16T19:37:22Z",
            workflow_path=".github/workflows/syntax.yml",
        )
    ]


def test_workflow_run_rerun_attempt() -> None:
    # run_attempt changed from 1 to 3 on the real example.
    data = load("workflow_run.completed")
    data["workflow_run"]["run_attempt"] = 3
    assert normalize("workflow_run", data) == [dataclasses.replace(WORKFLOW_RUN_SUCCESS, attempt=3)]


def test_workflow_run_without_repository_is_unsupported() -> None:
    # repository removed from the real example.
    data = load("workflow_run.completed")
    del data["repository"]
    with pytest.raises(UnsupportedEvent):
        normalize("workflow_run", data)


# --------------------------------------------------------------------------- workflow_job

# workflow_job.completed.json: Codertocat/Hello-World (186853002, default branch master),
# job "linters" of workflow CodeQL, run 2202229078 on branch main.
WORKFLOW_JOB_SUCCESS = Build(
    repo="Codertocat/Hello-World",
    repo_id=186853002,
    workflow="CodeQL",
    branch="main",
    default_branch=False,
    status="success",
    event=None,
    run_id=2202229078,
    attempt=1,
    url="https://github.com/octo-org/octo-repo/runs/1291536064",
    started_at="2021-08-05T10:34:58Z",
    completed_at="2021-08-05T10:38:16Z",
    actor="Codertocat",
    head_sha="3484a3fb816e0859fd6e1cea078d76385ff50625",
    source="workflow_job",
    updated_at="2021-08-05T10:38:16Z",
    job="linters",
)


def test_workflow_job_completed() -> None:
    assert normalize("workflow_job", payload("workflow_job.completed")) == [WORKFLOW_JOB_SUCCESS]


def test_workflow_job_completed_failure() -> None:
    assert normalize("workflow_job", payload("workflow_job.completed.failure")) == [
        dataclasses.replace(WORKFLOW_JOB_SUCCESS, status="failure")
    ]


def test_workflow_job_queued() -> None:
    assert normalize("workflow_job", payload("workflow_job.queued")) == [
        dataclasses.replace(
            WORKFLOW_JOB_SUCCESS,
            status="queued",
            started_at="2021-09-13T02:21:13Z",
            completed_at=None,
            updated_at="2021-09-13T02:21:13Z",
            job="update",
        )
    ]


def test_workflow_job_in_progress() -> None:
    assert normalize("workflow_job", payload("workflow_job.in_progress")) == [
        dataclasses.replace(
            WORKFLOW_JOB_SUCCESS,
            status="in_progress",
            started_at="2021-09-13T02:21:13Z",
            completed_at=None,
            updated_at="2021-09-13T02:21:13Z",
            job="Analyze (javascript)",
        )
    ]


# --------------------------------------------------------------------------- check_suite

# check_suite.completed.json: app octocoders-linter (no slug in the example), branch changes.
CHECK_SUITE_SUCCESS = Build(
    repo="Codertocat/Hello-World",
    repo_id=186853002,
    workflow="octocoders-linter",
    branch="changes",
    default_branch=False,
    status="success",
    event=None,
    run_id=118578147,
    attempt=1,
    url="https://github.com/Codertocat/Hello-World/commit/"
    "ec26c3e57ca3a959ca5aad62de7213c562f8c821/checks",
    started_at="2019-05-15T15:20:31Z",
    completed_at="2019-05-15T15:21:14Z",
    actor="Codertocat",
    head_sha="ec26c3e57ca3a959ca5aad62de7213c562f8c821",
    source="check_suite",
    updated_at="2019-05-15T15:21:14Z",
)


def test_check_suite_completed_from_other_app() -> None:
    assert normalize("check_suite", payload("check_suite.completed")) == [CHECK_SUITE_SUCCESS]


def test_check_suite_requested() -> None:
    assert normalize("check_suite", payload("check_suite.requested")) == [
        Build(
            repo="Codertocat/Hello-World",
            repo_id=186853002,
            workflow="octocoders-linter",
            branch="master",
            default_branch=True,
            status="queued",
            event=None,
            run_id=118578174,
            attempt=1,
            url="https://github.com/Codertocat/Hello-World/commit/"
            "f95f852bd8fca8fcc58a9a2d6c842781e32a215e/checks",
            started_at="2019-05-15T15:20:33Z",
            completed_at=None,
            actor="Codertocat",
            head_sha="f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
            source="check_suite",
            updated_at="2019-05-15T15:20:33Z",
        )
    ]


@pytest.mark.parametrize("name", ["check_suite.completed", "check_suite.requested"])
def test_check_suite_from_github_actions_is_ignored(name: str) -> None:
    # app.slug set to github-actions on the real example: workflow_run covers those.
    data = load(name)
    data["check_suite"]["app"]["slug"] = "github-actions"
    assert normalize("check_suite", data) == []


def test_check_suite_with_slug_uses_app_name() -> None:
    # A slug that is not github-actions added to the real example.
    data = load("check_suite.completed")
    data["check_suite"]["app"]["slug"] = "octocoders-linter"
    assert normalize("check_suite", data) == [CHECK_SUITE_SUCCESS]


# --------------------------------------------------------------------------- status

CODECOV_DELTA = "87.50% (+0.15%) compared to abc1234"
CODECOV_TARGET = "91.20% (target 80.00%)"

# status.json: sha 6113728f…, created/updated 2019-05-15T15:20:55+00:00, target_url null.
# None of its branches has that sha as its head commit, so no branch is named.
STATUS_COVERAGE = Coverage(
    repo="Codertocat/Hello-World",
    repo_id=186853002,
    branch=None,
    sha="6113728f27ae82c7b1a177c8d03f9e96e0adf246",
    value=87.5,
    delta=None,
    url=None,
    at="2019-05-15T15:20:55Z",
    source="status",
)


def codecov_status(context: str, description: str | None) -> dict[str, Any]:
    """The real status example with only context and description changed."""
    data = load("status")
    data["context"] = context
    data["description"] = description
    return data


def test_status_real_example_is_not_coverage() -> None:
    assert normalize("status", payload("status")) == []


def test_status_codecov_project_with_delta() -> None:
    # context and description changed on the real example.
    assert normalize("status", codecov_status("codecov/project", CODECOV_DELTA)) == [
        STATUS_COVERAGE
    ]


def test_status_codecov_project_with_target() -> None:
    # context and description changed on the real example.
    assert normalize("status", codecov_status("codecov/project", CODECOV_TARGET)) == [
        dataclasses.replace(STATUS_COVERAGE, value=91.2)
    ]


def test_status_codecov_patch_is_not_project_coverage() -> None:
    # context and description changed on the real example.
    assert normalize("status", codecov_status("codecov/patch", CODECOV_DELTA)) == []


@pytest.mark.parametrize("description", [None, "", "Coverage not affected", "pending", "abc%"])
def test_status_codecov_without_percentage(description: str | None) -> None:
    # context and description changed on the real example.
    assert normalize("status", codecov_status("codecov/project", description)) == []


@pytest.mark.parametrize(
    ("sha", "branch"),
    [
        # The head commits of master and changes in the real example's branches list.
        ("f95f852bd8fca8fcc58a9a2d6c842781e32a215e", "master"),
        ("ec26c3e57ca3a959ca5aad62de7213c562f8c821", "changes"),
    ],
)
def test_status_codecov_branch_from_branches_list(sha: str, branch: str) -> None:
    # context, description, sha and target_url changed on the real example.
    data = codecov_status("codecov/project", CODECOV_DELTA)
    data["sha"] = sha
    data["target_url"] = "https://codecov.io/gh/Codertocat/Hello-World"
    assert normalize("status", data) == [
        dataclasses.replace(
            STATUS_COVERAGE,
            sha=sha,
            branch=branch,
            url="https://codecov.io/gh/Codertocat/Hello-World",
        )
    ]


def test_status_codecov_prefers_default_branch() -> None:
    # context, description changed; every branch's head set to the status sha.
    data = codecov_status("codecov/project", CODECOV_DELTA)
    for item in data["branches"]:
        item["commit"]["sha"] = data["sha"]
    assert normalize("status", data) == [dataclasses.replace(STATUS_COVERAGE, branch="master")]


# --------------------------------------------------------------------------- parse_codecov


@pytest.mark.parametrize(
    ("description", "value"),
    [
        (CODECOV_DELTA, 87.5),
        (CODECOV_TARGET, 91.2),
        ("100.00% (+0.00%) compared to 0123abc", 100.0),
        ("0% (target 80.00%)", 0.0),
        ("  72% (-1.00%) compared to abc1234", 72.0),
    ],
)
def test_parse_codecov_formats(description: str, value: float) -> None:
    assert parse_codecov(description) == value


@pytest.mark.parametrize(
    "description",
    [
        None,
        "",
        "garbage",
        "Coverage not affected when comparing abc...def",
        "%",
        "coverage 87.50%",
        "150.00% (target 80.00%)",
        "-5% (target 80.00%)",
        "1234% (+0.15%)",
    ],
)
def test_parse_codecov_garbage(description: str | None) -> None:
    assert parse_codecov(description) is None


# --------------------------------------------------------------------------- check_run


def test_check_run_codecov_project() -> None:
    # check_run.completed.json with only name and output.title changed.
    data = load("check_run.completed")
    data["check_run"]["name"] = "codecov/project"
    data["check_run"]["output"]["title"] = CODECOV_DELTA
    assert normalize("check_run", data) == [
        Coverage(
            repo="Codertocat/Hello-World",
            repo_id=186853002,
            branch="changes",
            sha="ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            value=87.5,
            delta=None,
            url="https://octocoders.io",
            at="2019-05-15T15:21:12Z",
            source="check_run",
        )
    ]


def test_check_run_codecov_project_from_summary() -> None:
    # name and output.summary changed (title stays null as in the real example).
    data = load("check_run.completed")
    data["check_run"]["name"] = "codecov/project"
    data["check_run"]["output"]["summary"] = CODECOV_TARGET
    [fact] = normalize("check_run", data)
    assert isinstance(fact, Coverage)
    assert (fact.value, fact.source) == (91.2, "check_run")


@pytest.mark.parametrize(
    "name", ["check_run.completed", "check_run.completed.failure", "check_run.created"]
)
def test_check_run_real_examples_are_not_coverage(name: str) -> None:
    assert normalize("check_run", payload(name)) == []


def test_check_run_codecov_patch_is_not_coverage() -> None:
    # name and output.title changed on the real example.
    data = load("check_run.completed")
    data["check_run"]["name"] = "codecov/patch"
    data["check_run"]["output"]["title"] = CODECOV_DELTA
    assert normalize("check_run", data) == []


def test_check_run_codecov_project_not_completed() -> None:
    # check_run.created.json (status queued) with name and output.title changed.
    data = load("check_run.created")
    data["check_run"]["name"] = "codecov/project"
    data["check_run"]["output"]["title"] = CODECOV_DELTA
    assert normalize("check_run", data) == []


# --------------------------------------------------------------------------- dependabot_alert

DEPENDABOT_CREATED = Vulnerability(
    repo="wolfy1339/pika-pack",
    repo_id=512875663,
    number=20,
    action="created",
    state="open",
    severity="medium",
    package="semver",
    ecosystem="npm",
    manifest="package-lock.json",
    ghsa_id="GHSA-c2qf-rxjj-qqgw",
    cve_id="CVE-2022-25883",
    summary="semver vulnerable to Regular Expression Denial of Service",
    description=(
        "Versions of the package semver before 7.5.2 are vulnerable to Regular Expression "
        "Denial of Service (ReDoS) via the function new Range, when untrusted user data is "
        "provided as a range.\n\n\n"
    ),
    url="https://github.com/wolfy1339/pika-pack/security/dependabot/20",
    created_at="2023-06-24T13:57:12Z",
    updated_at="2023-06-24T13:57:12Z",
    fixed_at=None,
    dismissed_at=None,
    affected_range="< 7.5.2",
    patched_version="7.5.2",
    advisory_url="https://github.com/advisories/GHSA-c2qf-rxjj-qqgw",
)


def test_dependabot_alert_created() -> None:
    assert normalize("dependabot_alert", payload("dependabot_alert.created")) == [
        DEPENDABOT_CREATED
    ]


def test_dependabot_alert_fixed() -> None:
    data = payload("dependabot_alert.fixed")
    assert normalize("dependabot_alert", data) == [
        Vulnerability(
            repo="octocat/hello-world",
            repo_id=1296269,
            number=1,
            action="fixed",
            state="fixed",
            severity="medium",
            package="ansible",
            ecosystem="pip",
            manifest="path/to/requirements.txt",
            ghsa_id="GHSA-8f4m-hccc-8qph",
            cve_id="CVE-2021-20191",
            summary="Insertion of Sensitive Information into Log File in ansible",
            description=data["alert"]["security_advisory"]["description"],
            url="https://github.com/octocat/hello-world/security/dependabot/1",
            created_at="2022-06-14T15:21:52Z",
            updated_at="2022-06-15T13:55:40Z",
            fixed_at="2022-06-15T13:55:40Z",
            dismissed_at=None,
            affected_range="< 2.8.19",
            patched_version="2.8.19",
            # No GitHub page among its references: made from its id.
            advisory_url="https://github.com/advisories/GHSA-8f4m-hccc-8qph",
        )
    ]


@pytest.mark.parametrize(
    ("raw", "severity"),
    [
        ("moderate", "medium"),
        ("MODERATE", "medium"),
        ("critical", "critical"),
        ("weird", "unknown"),
    ],
)
def test_dependabot_alert_severity(raw: str, severity: str) -> None:
    # The advisory's and the vulnerability's severity changed on the real example.
    data = load("dependabot_alert.created")
    data["alert"]["security_advisory"]["severity"] = raw
    data["alert"]["security_vulnerability"]["severity"] = raw
    assert normalize("dependabot_alert", data) == [
        dataclasses.replace(DEPENDABOT_CREATED, severity=severity)
    ]


@pytest.mark.parametrize(
    ("action", "state"),
    [
        ("created", "open"),
        ("fixed", "fixed"),
        ("dismissed", "dismissed"),
        ("reopened", "open"),
        ("auto_dismissed", "auto_dismissed"),
        ("auto_reopened", "open"),
        ("reintroduced", "open"),
        ("withdrawn", "withdrawn"),
        ("frobnicated", "open"),  # an action GitHub may add one day
    ],
)
def test_dependabot_alert_every_action_gives_a_vulnerability(action: str, state: str) -> None:
    # No real examples for most actions: action and alert.state changed on created.
    data = load("dependabot_alert.created")
    data["action"] = action
    data["alert"]["state"] = state
    assert normalize("dependabot_alert", data) == [
        dataclasses.replace(DEPENDABOT_CREATED, action=action, state=state)
    ]


def test_dependabot_alert_dismissed_at() -> None:
    # action, alert.state and alert.dismissed_at changed on the real created example.
    data = load("dependabot_alert.created")
    data["action"] = "dismissed"
    data["alert"]["state"] = "dismissed"
    data["alert"]["dismissed_at"] = "2023-06-25T08:00:00Z"
    assert normalize("dependabot_alert", data) == [
        dataclasses.replace(
            DEPENDABOT_CREATED,
            action="dismissed",
            state="dismissed",
            dismissed_at="2023-06-25T08:00:00Z",
        )
    ]


def test_dependabot_alert_auto_dismissed_at() -> None:
    # action, alert.state and alert.auto_dismissed_at changed on the real created example.
    data = load("dependabot_alert.created")
    data["action"] = "auto_dismissed"
    data["alert"]["state"] = "auto_dismissed"
    data["alert"]["auto_dismissed_at"] = "2023-06-26T09:30:00Z"
    [fact] = normalize("dependabot_alert", data)
    assert isinstance(fact, Vulnerability)
    assert (fact.state, fact.dismissed_at) == ("auto_dismissed", "2023-06-26T09:30:00Z")


def test_dependabot_alert_cve_from_identifiers() -> None:
    # security_advisory.cve_id set to null: the CVE comes from the identifiers list.
    data = load("dependabot_alert.created")
    data["alert"]["security_advisory"]["cve_id"] = None
    assert normalize("dependabot_alert", data) == [DEPENDABOT_CREATED]


def test_dependabot_alert_without_state_withdrawn() -> None:
    # alert.state removed and action changed: the state falls back to the action's.
    data = load("dependabot_alert.created")
    data["action"] = "withdrawn"
    del data["alert"]["state"]
    [fact] = normalize("dependabot_alert", data)
    assert isinstance(fact, Vulnerability)
    assert fact.state == "withdrawn"


# ------------------------------------------------------------ repository_vulnerability_alert


def test_repository_vulnerability_alert_create() -> None:
    assert normalize(
        "repository_vulnerability_alert", payload("repository_vulnerability_alert.create")
    ) == [
        Vulnerability(
            repo="Codertocat/Hello-World",
            repo_id=186853002,
            number=2,
            action="create",
            state="open",
            severity="medium",  # GitHub's "moderate"
            package="rack",
            ecosystem=None,
            manifest=None,
            ghsa_id="GHSA-qqgx-2p2h-9c37",
            cve_id="CVE-2018-16470",
            summary=">= 2.0.4, < 2.0.6",
            description=None,
            url="https://nvd.nist.gov/vuln/detail/CVE-2018-16470",
            created_at="2021-03-01T01:23:45Z",
            updated_at="2021-03-01T01:23:45Z",
            fixed_at=None,
            dismissed_at=None,
            affected_range=">= 2.0.4, < 2.0.6",
            patched_version="2.0.6",
        )
    ]


def test_repository_vulnerability_alert_dismiss() -> None:
    assert normalize(
        "repository_vulnerability_alert", payload("repository_vulnerability_alert.dismiss")
    ) == [
        Vulnerability(
            repo="Codertocat/Hello-World",
            repo_id=186853002,
            number=2,
            action="dismiss",
            state="dismissed",
            severity="medium",
            package="many_versioned_gem",
            ecosystem=None,
            manifest=None,
            ghsa_id="GHSA-qqgx-2p2h-9c37",
            cve_id="CVE-2018-3728",
            summary="0.2.0",
            description=None,
            url="https://nvd.nist.gov/vuln/detail/CVE-2018-3728",
            created_at="2017-10-25T00:00:00Z",
            updated_at="2017-10-25T00:00:00Z",
            fixed_at=None,
            dismissed_at="2017-10-25T00:00:00Z",
            affected_range="0.2.0",
            patched_version="0.2.5",
        )
    ]


def test_repository_vulnerability_alert_resolve_without_state() -> None:
    # No real resolve example: action changed, alert.state removed, fixed_at added.
    data = load("repository_vulnerability_alert.create")
    data["action"] = "resolve"
    del data["alert"]["state"]
    data["alert"]["fixed_at"] = "2021-03-02T10:00:00+00:00"
    [fact] = normalize("repository_vulnerability_alert", data)
    assert isinstance(fact, Vulnerability)
    assert (fact.action, fact.state, fact.fixed_at, fact.updated_at) == (
        "resolve",
        "fixed",
        "2021-03-02T10:00:00Z",
        "2021-03-02T10:00:00Z",
    )


# --------------------------------------------------------------------------- pull_request


@pytest.mark.parametrize("name", ["pull_request.opened", "pull_request.closed"])
def test_pull_request_by_a_person_is_ignored(name: str) -> None:
    assert normalize("pull_request", payload(name)) == []


def dependabot_pr(name: str) -> dict[str, Any]:
    """A real pull request example with only user.login and title changed."""
    data = load(name)
    data["pull_request"]["user"]["login"] = "dependabot[bot]"
    data["pull_request"]["title"] = "Bump lodash from 4.17.15 to 4.17.21"
    return data


DEPENDABOT_PR_OPENED = Dependency(
    repo="Codertocat/Hello-World",
    repo_id=186853002,
    number=2,
    action="opened",
    state="open",
    merged=False,
    title="Bump lodash from 4.17.15 to 4.17.21",
    package="lodash",
    from_version="4.17.15",
    to_version="4.17.21",
    url="https://github.com/Codertocat/Hello-World/pull/2",
    opened_at="2019-05-15T15:20:33Z",
    closed_at=None,
    updated_at="2019-05-15T15:20:33Z",
)


def test_pull_request_by_dependabot_opened() -> None:
    # No real Dependabot example: user.login and title changed on pull_request.opened.
    assert normalize("pull_request", dependabot_pr("pull_request.opened")) == [DEPENDABOT_PR_OPENED]


def test_pull_request_by_dependabot_closed() -> None:
    # No real Dependabot example: user.login and title changed on pull_request.closed.
    assert normalize("pull_request", dependabot_pr("pull_request.closed")) == [
        dataclasses.replace(
            DEPENDABOT_PR_OPENED,
            action="closed",
            state="closed",
            closed_at="2019-05-15T15:21:18Z",
            updated_at="2019-05-15T15:21:18Z",
        )
    ]


def test_pull_request_by_dependabot_with_unparsable_title() -> None:
    # user.login and title changed on the real example; a title that is not a bump.
    data = dependabot_pr("pull_request.opened")
    data["pull_request"]["title"] = "Upgrade to GitHub-native Dependabot"
    assert normalize("pull_request", data) == [
        dataclasses.replace(
            DEPENDABOT_PR_OPENED,
            title="Upgrade to GitHub-native Dependabot",
            package=None,
            from_version=None,
            to_version=None,
        )
    ]


# --------------------------------------------------------------------------- push

PUSH_BRANCH = Push(
    repo="Codertocat/Hello-World",
    repo_id=186853002,
    branch="master",
    forced=False,
    commits=1,
    author="Codertocat",
    at="2019-05-15T15:19:25Z",
    bot=False,
    deleted=False,
    head_sha="6113728f27ae82c7b1a177c8d03f9e96e0adf246",
)


def test_push_to_branch() -> None:
    assert normalize("push", payload("push")) == [PUSH_BRANCH]


def test_push_fact_dict() -> None:
    [fact] = normalize("push", payload("push"))
    assert fact_dict(fact) == {
        "repo": "Codertocat/Hello-World",
        "repo_id": 186853002,
        "branch": "master",
        "forced": False,
        "commits": 1,
        "author": "Codertocat",
        "at": "2019-05-15T15:19:25Z",
        "bot": False,
        "deleted": False,
        "head_sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "manifests": False,  # the commit added README.md only
        "workflows": False,
    }


def test_push_tag_created() -> None:
    assert normalize("push", payload("push.docs_tag_created")) == [
        dataclasses.replace(PUSH_BRANCH, branch=None, commits=0, at="2019-05-15T15:20:41Z")
    ]


def test_push_tag_deleted_falls_back_to_epoch_pushed_at() -> None:
    # head_commit is null; repository.pushed_at is the integer 1557933657.
    assert normalize("push", payload("push.tag_deleted")) == [
        Push(
            repo="Codertocat/Hello-World",
            repo_id=186853002,
            branch=None,
            forced=False,
            commits=0,
            author="Codertocat",
            at="2019-05-15T15:20:57Z",
            bot=False,
            deleted=True,
            head_sha="0000000000000000000000000000000000000000",
        )
    ]


def test_push_branch_without_head_commit() -> None:
    # head_commit set to null on the branch push: `at` comes from repository.pushed_at.
    data = load("push")
    data["head_commit"] = None
    assert normalize("push", data) == [dataclasses.replace(PUSH_BRANCH, at="2019-05-15T15:20:57Z")]


def test_push_by_bot() -> None:
    # sender.type changed from User to Bot.
    data = load("push")
    data["sender"]["type"] = "Bot"
    assert normalize("push", data) == [dataclasses.replace(PUSH_BRANCH, bot=True)]


def test_push_forced() -> None:
    # forced changed from false to true.
    data = load("push")
    data["forced"] = True
    assert normalize("push", data) == [dataclasses.replace(PUSH_BRANCH, forced=True)]


# --------------------------------------------------------------------------- repository

REPO_CREATED = Repo(
    repo="Octocoders/Hello-World",
    repo_id=186853261,
    action="created",
    owner="Octocoders",
    default_branch="master",
    archived=False,
    private=False,
    url="https://github.com/Octocoders/Hello-World",
    previous_name=None,
    at="2019-05-15T15:20:41Z",
)

CODERTOCAT_REPO = Repo(
    repo="Codertocat/Hello-World",
    repo_id=186853002,
    action="privatized",
    owner="Codertocat",
    default_branch="master",
    archived=False,
    private=True,
    url="https://github.com/Codertocat/Hello-World",
    previous_name=None,
    at="2019-05-15T15:21:02Z",
)


def test_repository_created() -> None:
    assert normalize("repository", payload("repository.created")) == [REPO_CREATED]


def test_repository_renamed() -> None:
    # changes.repository.name.from is "Hello-World"; previous_name is the old full name.
    assert normalize("repository", payload("repository.renamed")) == [
        dataclasses.replace(REPO_CREATED, action="renamed", previous_name="Octocoders/Hello-World")
    ]


def test_repository_renamed_from_other_name() -> None:
    # changes.repository.name.from changed (the real example renames to the same name).
    data = load("repository.renamed")
    data["changes"]["repository"]["name"]["from"] = "Old-Name"
    assert normalize("repository", data) == [
        dataclasses.replace(REPO_CREATED, action="renamed", previous_name="Octocoders/Old-Name")
    ]


def test_repository_transferred() -> None:
    # changes.owner.from.user.login is octocat.
    assert normalize("repository", payload("repository.transferred")) == [
        dataclasses.replace(REPO_CREATED, action="transferred", previous_name="octocat/Hello-World")
    ]


def test_repository_privatized() -> None:
    assert normalize("repository", payload("repository.privatized")) == [CODERTOCAT_REPO]


def test_repository_publicized() -> None:
    assert normalize("repository", payload("repository.publicized")) == [
        dataclasses.replace(
            CODERTOCAT_REPO, action="publicized", private=False, at="2019-05-15T15:21:03Z"
        )
    ]


def test_repository_archived() -> None:
    # No real example: action and repository.archived changed on repository.created.
    data = load("repository.created")
    data["action"] = "archived"
    data["repository"]["archived"] = True
    assert normalize("repository", data) == [
        dataclasses.replace(REPO_CREATED, action="archived", archived=True)
    ]


def test_repository_deleted() -> None:
    # No real example: action changed on repository.created.
    data = load("repository.created")
    data["action"] = "deleted"
    assert normalize("repository", data) == [dataclasses.replace(REPO_CREATED, action="deleted")]


# --------------------------------------------------------------------------- installation


def tracked(repo: str, repo_id: int, action: str, owner: str) -> Repo:
    return Repo(
        repo=repo,
        repo_id=repo_id,
        action=action,
        owner=owner,
        default_branch=None,
        archived=False,
        private=False,
        url=None,
        previous_name=None,
        at=None,
    )


def test_installation_created() -> None:
    assert normalize("installation", payload("installation.created")) == [
        tracked("Codertocat/Hello-World", 186853002, "tracked", "Codertocat")
    ]


def test_installation_deleted() -> None:
    assert normalize("installation", payload("installation.deleted")) == [
        tracked("octocat/Hello-World", 1296269, "untracked", "octocat")
    ]


def test_installation_one_fact_per_repository() -> None:
    # A second repository appended to the real example's repositories list.
    data = load("installation.created")
    data["repositories"].append(
        {"id": 186853007, "name": "Space", "full_name": "Codertocat/Space", "private": True}
    )
    assert normalize("installation", data) == [
        tracked("Codertocat/Hello-World", 186853002, "tracked", "Codertocat"),
        dataclasses.replace(
            tracked("Codertocat/Space", 186853007, "tracked", "Codertocat"), private=True
        ),
    ]


def test_installation_other_action_says_nothing() -> None:
    # action changed to one that neither adds nor removes repositories.
    data = load("installation.created")
    data["action"] = "new_permissions_accepted_later"
    assert normalize("installation", data) == []


def test_installation_repositories_added() -> None:
    assert normalize("installation_repositories", payload("installation_repositories.added")) == [
        tracked("Codertocat/Space", 186853007, "tracked", "Codertocat")
    ]


def test_installation_repositories_removed() -> None:
    assert normalize("installation_repositories", payload("installation_repositories.removed")) == [
        tracked("octocat/Hello-World", 1296269, "untracked", "octocat")
    ]


# --------------------------------------------------------------------------- ping

PING_REPO = HookPing(
    hook_id=109948940,
    events=("*",),
    content_type="json",
    target="Repository",
    repo="Octocoders/Hello-World",
    at="2019-05-15T15:20:49Z",
)


def test_ping_repository_hook() -> None:
    assert normalize("ping", payload("ping")) == [PING_REPO]


def test_ping_fact_dict_lists_events() -> None:
    [fact] = normalize("ping", payload("ping"))
    assert fact_dict(fact) == {
        "hook_id": 109948940,
        "events": ["*"],
        "content_type": "json",
        "target": "Repository",
        "repo": "Octocoders/Hello-World",
        "at": "2019-05-15T15:20:49Z",
        "org": None,
    }


def test_ping_app_hook() -> None:
    assert normalize("ping", payload("ping.app")) == [PING_REPO]


def test_ping_organization_hook() -> None:
    # The top-level hook_id (109948940) is used; the example's hook.id differs.
    assert normalize("ping", payload("ping.organization")) == [
        HookPing(
            hook_id=109948940,
            events=(
                "code_scanning_alert",
                "deploy_key",
                "fork",
                "member",
                "membership",
                "organization",
                "org_block",
                "public",
                "repository",
                "repository_import",
                "repository_vulnerability_alert",
                "secret_scanning_alert",
                "team",
                "team_add",
            ),
            content_type="json",
            target="Organization",
            repo=None,
            at="2020-12-06T00:30:50Z",
            org="Octocoders",
        )
    ]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("event", ["discussion", "", "PUSH", "workflow_runs", "unknown"])
def test_unknown_event_is_unsupported(event: str) -> None:
    with pytest.raises(UnsupportedEvent):
        normalize(event, payload("push"))


@pytest.mark.parametrize("data", [None, [], [payload("push")], "push", 1, 1.5, True])
@pytest.mark.parametrize("event", sorted(SUPPORTED))
def test_non_object_payload_is_unsupported(event: str, data: object) -> None:
    with pytest.raises(UnsupportedEvent):
        normalize(event, data)


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ("workflow_run", "workflow_run.completed"),
        ("workflow_job", "workflow_job.completed"),
        ("check_suite", "check_suite.completed"),
        ("push", "push"),
        ("dependabot_alert", "dependabot_alert.created"),
        ("repository_vulnerability_alert", "repository_vulnerability_alert.create"),
        ("repository", "repository.created"),
        ("issues", "issues.opened"),
        ("issue_comment", "issue_comment.created"),
    ],
)
def test_payload_without_repository_is_unsupported(event: str, name: str) -> None:
    # repository removed from the real example.
    data = load(name)
    del data["repository"]
    with pytest.raises(UnsupportedEvent):
        normalize(event, data)


# --------------------------------------------------------------------------- issues


HELLO_WORLD_ID = 186853002


ISSUE_OPENED = IssueActivity(
    repo="Codertocat/Hello-World",
    repo_id=HELLO_WORLD_ID,
    number=1,
    action="opened",
    author="Codertocat",
    bot=False,
    at="2019-05-15T15:20:18Z",
)


def test_issue_opened_is_activity_at_its_last_update() -> None:
    assert normalize("issues", load("issues.opened")) == [ISSUE_OPENED]


def test_every_issue_action_is_activity() -> None:
    [fact] = normalize("issues", load("issues.edited.docs"))
    assert isinstance(fact, IssueActivity)
    assert (fact.action, fact.number, fact.bot) == ("edited", 1, False)


def test_issue_comment_is_activity_at_the_comment() -> None:
    assert normalize("issue_comment", load("issue_comment.created")) == [
        dataclasses.replace(ISSUE_OPENED, action="created", at="2019-05-15T15:20:21Z")
    ]


def test_a_bots_comment_is_marked_as_a_bot() -> None:
    data = load("issue_comment.created")
    bot = {"login": "github-actions[bot]", "type": "Bot"}
    data["comment"]["user"] = bot
    data["sender"] = bot
    [fact] = normalize("issue_comment", data)
    assert isinstance(fact, IssueActivity)
    assert fact.bot and fact.author == "github-actions[bot]"


# --------------------------------------------------------------------------- snapshot


def test_snapshot_of_payload_with_repository() -> None:
    assert snapshot(payload("workflow_run.completed")) == Repo(
        repo="octo-org/octo-repo",
        repo_id=300029405,
        action="seen",
        owner="octo-org",
        default_branch="master",
        archived=False,
        private=False,
        url="https://github.com/octo-org/octo-repo",
        previous_name=None,
        at="2020-10-05T16:32:10Z",
    )


def test_snapshot_of_private_repository() -> None:
    assert snapshot(payload("repository.privatized")) == dataclasses.replace(
        CODERTOCAT_REPO, action="seen"
    )


@pytest.mark.parametrize(
    "data",
    [
        payload("installation.created"),
        payload("ping.organization"),
        None,
        [],
        "repository",
        {"repository": "Codertocat/Hello-World"},
        {"repository": {"full_name": "Codertocat/Hello-World"}},  # no id
        {"repository": {"id": 186853002}},  # no full_name
        {"repository": {"full_name": "Codertocat/Hello-World", "id": True}},  # not an id
    ],
)
def test_snapshot_without_repository_is_none(data: object) -> None:
    assert snapshot(data) is None


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019-05-15T15:20:55Z", "2019-05-15T15:20:55Z"),
        ("2019-05-15T15:20:55+00:00", "2019-05-15T15:20:55Z"),
        ("2019-05-15T17:20:55+02:00", "2019-05-15T15:20:55Z"),
        ("2020-10-02T12:42:30.000Z", "2020-10-02T12:42:30Z"),
        ("2019-05-15T15:20:55", "2019-05-15T15:20:55Z"),
        (1557933657, "2019-05-15T15:20:57Z"),
        (1557933657.9, "2019-05-15T15:20:57Z"),
        (None, None),
        ("", None),
        ("not a time", None),
        (True, None),
        ([], None),
        (10**30, None),
        (float("inf"), None),
    ],
)
def test_timestamp_normalization(value: object, expected: str | None) -> None:
    assert timestamp(value) == expected


# Overflow: fromisoformat accepts these, but converting them to UTC leaves
# datetime's range (year 1..9999), and astimezone() raises OverflowError outside
# the try block in payload.timestamp.
OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_timestamp_out_of_range_after_utc_conversion_is_none(value: str) -> None:
    assert timestamp(value) is None


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_normalize_out_of_range_timestamp_raises_nothing_else(value: str) -> None:
    # updated_at changed on the real example to a time that leaves datetime's range in UTC.
    data = load("workflow_run.completed")
    data["workflow_run"]["updated_at"] = value
    assert normalize("workflow_run", data) == [
        dataclasses.replace(WORKFLOW_RUN_SUCCESS, completed_at=None, updated_at=None)
    ]


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_snapshot_out_of_range_timestamp(value: str) -> None:
    # repository.updated_at changed on the real example.
    data = load("workflow_run.completed")
    data["repository"]["updated_at"] = value
    seen = snapshot(data)
    assert seen is not None
    assert seen.at is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0999-01-01T00:00:00Z", "0999-01-01T00:00:00Z"),
        (-62135596800, "0001-01-01T00:00:00Z"),
    ],
)
def test_timestamp_years_before_1000_are_zero_padded(value: object, expected: str) -> None:
    assert timestamp(value) == expected


def test_fact_dict_copies_containers_so_callers_cannot_change_the_fact() -> None:
    from pulsehook.facts import Health

    fact = Health(
        repo="o/r", repo_id=1, score=80.0, previous=70.0, components={"ci": {"score": 90}}, at="t"
    )
    data = fact_dict(fact)
    data["components"]["ci"]["score"] = 0
    assert fact.components == {"ci": {"score": 90}}
