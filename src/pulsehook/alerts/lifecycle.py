"""The alert state machine (pure): what to record and whom to tell.

An alert is keyed by rule + repository + subject. It notifies when it starts
firing, repeats only after ``repeat_interval``, and resolves when the same
subject recovers. A subject flaps when it changes state more than
``FLAP_CHANGES`` times inside the flap interval: from then on a notice is held
until the interval since the last notice ends, the changes are counted, and the
current state is sent then (if it differs from what was last said). One failure
and one recovery are not flapping: both are told at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from .. import facts
from ..clock import iso, parse_iso

# One-shot facts: each match is its own notice; there is nothing to resolve.
EVENT_KINDS = facts.ONE_SHOT
# More state changes than this inside the flap interval is flapping.
FLAP_CHANGES = 2


def subject(kind: str, fact: dict[str, Any]) -> str:
    """What an alert on this fact is about (its kind says)."""
    return facts.kind(kind).subject(fact)


def alert_key(rule: str, repo: str, subj: str) -> str:
    return f"{rule}|{repo}|{subj}"


def closes(kind: str, fact: dict[str, Any]) -> bool:
    """A fact that ends its subject whatever the rule says: a fixed, dismissed or
    withdrawn vulnerability (still "critical"), a closed pull request."""
    return facts.kind(kind).closes(fact)


def recovers(kind: str, fact: dict[str, Any]) -> bool:
    """Whether a fact that does not match the rule says its subject is well again."""
    return facts.kind(kind).recovers(fact)


@dataclass(frozen=True)
class Alert:
    key: str
    rule: str
    repo: str
    subject: str
    state: str  # firing | resolved
    severity: str
    started_at: str
    last_seen_at: str
    resolved_at: str | None = None
    last_notified_at: str | None = None
    last_notified_state: str | None = None
    notified_firing: bool = False
    occurrences: int = 1
    flips: int = 0
    silenced: bool = False
    held_until: str | None = None
    changes: tuple[str, ...] = ()  # times of its state changes inside the flap interval
    group_key: str | None = None  # the group its notices speak for (alerts/grouping.py)


@dataclass(frozen=True)
class Step:
    alert: Alert
    notice: str | None  # firing | repeat | resolved — to queue now
    event: str  # what to write in the alert's history


def _notify(alert: Alert, notice: str, now: str) -> Alert:
    # flips are kept for the notice's text; the engine resets them once rendered.
    return replace(
        alert,
        last_notified_at=now,
        last_notified_state=notice.replace("repeat", "firing"),
        held_until=None,
        notified_firing=alert.notified_firing or notice in ("firing", "repeat"),
    )


def _changed(alert: Alert, now: datetime, flap: timedelta) -> Alert:
    """Record a change of state now, forgetting those older than the flap interval."""
    recent = tuple(t for t in alert.changes if now - parse_iso(t) < flap)
    return replace(alert, changes=(*recent, iso(now)))


def flapping(alert: Alert) -> bool:
    return len(alert.changes) > FLAP_CHANGES


def _held(alert: Alert, now: datetime, flap: timedelta) -> str | None:
    """While the subject flaps, a notice now would come too soon: until when to hold it."""
    if not alert.last_notified_at or flap <= timedelta(0) or not flapping(alert):
        return None
    until = parse_iso(alert.last_notified_at) + flap
    return iso(until) if until > now else None


def on_match(
    current: Alert | None,
    *,
    key: str,
    rule: str,
    repo: str,
    subj: str,
    severity: str,
    kind: str,
    now: datetime,
    silenced: bool,
    repeat: timedelta | None,
    flap: timedelta,
) -> Step:
    at = iso(now)
    if current is None or current.state == "resolved" or kind in EVENT_KINDS:
        alert = Alert(
            key=key,
            rule=rule,
            repo=repo,
            subject=subj,
            state="firing",
            severity=severity,
            started_at=at,
            last_seen_at=at,
            silenced=silenced,
        )
        if current is not None:
            # Back to firing: keep what was said, and when, for damping and resolving.
            alert = replace(
                alert,
                flips=current.flips + 1,
                last_notified_at=current.last_notified_at,
                last_notified_state=current.last_notified_state,
                notified_firing=current.notified_firing,
                changes=current.changes,
            )
        if kind not in EVENT_KINDS:
            alert = _changed(alert, now, flap)
        if silenced:
            return Step(alert, None, "silenced")
        until = _held(alert, now, flap) if kind not in EVENT_KINDS else None
        if until:
            return Step(replace(alert, held_until=until), None, "held")
        return Step(_notify(alert, "firing", at), "firing", "fired")
    # The subject's severity as it is now: an advisory can be re-scored while open.
    alert = replace(
        current,
        last_seen_at=at,
        occurrences=current.occurrences + 1,
        silenced=silenced,
        severity=severity,
    )
    if silenced or current.held_until:
        return Step(alert, None, "seen")
    last = current.last_notified_at
    if repeat is not None and last is not None and current.last_notified_state == "firing":
        since = now - parse_iso(last)
        if since >= repeat:
            return Step(_notify(alert, "repeat", at), "repeat", "repeated")
    if last is None and not silenced:
        # Firing but never told (it started silenced): the silence is over now.
        return Step(_notify(alert, "firing", at), "firing", "fired")
    return Step(alert, None, "seen")


def on_recover(current: Alert, *, now: datetime, notify_resolved: bool, flap: timedelta) -> Step:
    at = iso(now)
    alert = _changed(
        replace(
            current, state="resolved", resolved_at=at, last_seen_at=at, flips=current.flips + 1
        ),
        now,
        flap,
    )
    if not (notify_resolved and current.notified_firing):
        return Step(replace(alert, held_until=None), None, "resolved")
    until = _held(alert, now, flap)
    if until:
        return Step(replace(alert, held_until=until), None, "held")
    return Step(
        replace(_notify(alert, "resolved", at), notified_firing=False), "resolved", "resolved"
    )


def release(current: Alert, *, now: datetime, notify_resolved: bool) -> Step:
    """A held notice whose interval ended: say the current state if it changed."""
    at = iso(now)
    alert = replace(current, held_until=None)
    said = current.last_notified_state
    if current.state == "firing" and said != "firing" and not current.silenced:
        return Step(_notify(alert, "firing", at), "firing", "fired")
    if current.state == "resolved" and said == "firing" and notify_resolved:
        return Step(
            replace(_notify(alert, "resolved", at), notified_firing=False), "resolved", "resolved"
        )
    return Step(alert, None, "released")


def unsilence(current: Alert, *, now: datetime) -> Step:
    """Its silence ended while it fires: tell it now, unless that was told already."""
    alert = replace(current, silenced=False)
    if current.last_notified_state != "firing":
        return Step(_notify(alert, "firing", iso(now)), "firing", "fired")
    return Step(alert, None, "unsilenced")


def remind(current: Alert, *, now: datetime) -> Step:
    """Still firing a ``repeat_interval`` after the last notice: say it again."""
    return Step(_notify(current, "repeat", iso(now)), "repeat", "repeated")
