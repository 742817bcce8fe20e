"""Payload -> facts, one small pure function per event.

``normalize(event, payload)`` returns a list of facts (possibly empty: a
supported event that says nothing of interest, such as a pull request by a
person) or raises ``UnsupportedEvent`` — for an event it does not know or a
payload it cannot read. Each ``events_*`` module lists the events it reads
(``EVENTS``); a normalizer's return type names the kinds of fact it gives.

A normalizer reads any JSON without raising (the property tests hold each to
that). One that raises anyway is a bug, not a payload to ignore: it comes out as
``NormalizerFailed``, which processing keeps as an ``error`` and tries again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import NormalizerFailed, UnsupportedEvent
from ..facts import Fact, Repo
from . import events_ci, events_issues, events_pulsehook, events_repo, events_security
from .payload import integer

Normalizer = Callable[[dict[str, Any]], Sequence[Fact]]

# The modules that read events; each event is read by one of them.
MODULES = (events_ci, events_issues, events_pulsehook, events_repo, events_security)
NORMALIZERS: dict[str, Normalizer] = {
    event: handler for module in MODULES for event, handler in module.EVENTS.items()
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
        return list(handler(payload))
    except UnsupportedEvent:
        raise
    except Exception as exc:
        raise NormalizerFailed(f"{event} normalizer failed: {type(exc).__name__}: {exc}") from exc
