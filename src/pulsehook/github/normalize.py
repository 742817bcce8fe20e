"""Payload -> facts, one small pure function per event.

``normalize(event, payload)`` returns a list of facts (possibly empty: a
supported event that says nothing of interest, such as a pull request by a
person) or raises ``UnsupportedEvent`` — for an event it does not know or a
payload it cannot read. It raises nothing else, whatever the JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import UnsupportedEvent
from ..facts import Fact, Repo
from . import events_ci, events_issues, events_pulsehook, events_repo, events_security
from .payload import integer

Normalizer = Callable[[dict[str, Any]], list[Fact]]

NORMALIZERS: dict[str, Normalizer] = {
    "push": events_repo.push,
    "workflow_run": events_ci.workflow_run,
    "workflow_job": events_ci.workflow_job,
    "check_suite": events_ci.check_suite,
    "check_run": events_ci.check_run,
    "status": events_ci.status,
    "dependabot_alert": events_security.dependabot_alert,
    "repository_vulnerability_alert": events_security.repository_vulnerability_alert,
    "pull_request": events_repo.pull_request,
    "issues": events_issues.issues,
    "issue_comment": events_issues.issue_comment,
    "repository": events_repo.repository_event,
    "installation": events_repo.installation,
    "installation_repositories": events_repo.installation_repositories,
    "ping": events_repo.ping,
    "pulsehook.profile": events_pulsehook.profile,
    "pulsehook.report": events_pulsehook.report,
}


def snapshot(payload: Any) -> Repo | None:
    """The repository as the payload describes it (url, default branch, flags).

    Most payloads carry the whole repository object; applying it keeps the
    repositories table current whatever the event. Not a rule-visible fact.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("repository"), dict):
        return None
    repo = payload["repository"]
    # The id as the fact will read it: a boolean is not an id (bool is an int).
    if not isinstance(repo.get("full_name"), str) or integer(repo, "id") is None:
        return None
    return events_repo.repo_fact(payload, repo, "seen")


def supported(event: str) -> bool:
    return event in NORMALIZERS


def normalize(event: str, payload: Any) -> list[Fact]:
    handler = NORMALIZERS.get(event)
    if handler is None:
        raise UnsupportedEvent(f"event {event!r} is not normalized")
    if not isinstance(payload, dict):
        raise UnsupportedEvent(f"{event} payload is not a JSON object")
    try:
        return handler(payload)
    except UnsupportedEvent:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # The readers are defensive; this is the last line, so a payload of an
        # unexpected shape is reported as unsupported rather than crashing a worker.
        raise UnsupportedEvent(f"{event} payload has an unexpected shape: {exc!r}") from exc
