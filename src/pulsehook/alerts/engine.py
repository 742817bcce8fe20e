"""Rules meet facts: decide, record, and queue notices — inside the caller's transaction."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from ..clock import iso, parse_iso
from ..facts import Fact, HookPing, fact_dict
from ..notify import escape
from ..notify.base import Message
from ..rules.evaluate import Evaluator
from ..rules.messages import render, severity, summary
from ..rules.model import Rule, RuleSet
from ..store import alerts as alert_store
from ..store import digests, outbox
from ..store import silences as silence_store
from ..store.db import Tx
from ..timing import parse_duration
from . import lifecycle, silences
from .grouping import Member, group_key
from .lifecycle import Alert, Step

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    flap: timedelta = timedelta(minutes=5)
    timezone: str = "UTC"

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        """The policy the settings give (``PULSEHOOK_FLAP_INTERVAL``, ``PULSEHOOK_TIMEZONE``)."""
        return cls(flap=parse_duration(settings.flap_interval), timezone=settings.timezone)


@dataclass(frozen=True)
class Change:
    """A notice an alert's change committed: told (log, metrics) once it is."""

    rule: str
    kind: str  # firing, repeat, resolved
    repo: str
    key: str


@dataclass(frozen=True)
class Outcome:
    """What an evaluation did: notices queued now, and notices held for later —
    after either, someone must look again (the dispatcher, the scheduler) — and
    the changes and rule errors to tell once the transaction commits."""

    queued: int = 0
    held: int = 0
    changes: tuple[Change, ...] = ()
    errors: tuple[tuple[str, str], ...] = ()  # (rule, error)

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(
            self.queued + other.queued,
            self.held + other.held,
            self.changes + other.changes,
            self.errors + other.errors,
        )


HOLDING_EVENTS = frozenset({"held", "silenced"})


_ALERT_FIELDS = [f.name for f in dataclasses.fields(Alert)]


def load_alert(db: Tx, key: str) -> Alert | None:
    row = alert_store.load(db, key)
    return Alert(**{k: row[k] for k in _ALERT_FIELDS}) if row is not None else None


def _with_fact(db: Tx, key: str) -> tuple[Alert, dict[str, Any]] | None:
    """The alert and the fact it last saw."""
    row = alert_store.load(db, key, fact=True)
    if row is None:
        return None
    return Alert(**{k: row[k] for k in _ALERT_FIELDS}), row["fact"]


def save_alert(db: Tx, alert: Alert, fact: dict[str, Any]) -> None:
    alert_store.save(db, {name: getattr(alert, name) for name in _ALERT_FIELDS}, fact)


def _applies(rule: Rule, repo: str) -> bool:
    if rule.repos and not any(fnmatchcase(repo, p) for p in rule.repos):
        return False
    return not any(fnmatchcase(repo, p) for p in rule.exclude_repos)


@dataclass(frozen=True)
class Verdict:
    """What one rule says of one fact, before any alert's state is looked at."""

    applies: bool  # the fact's repository is among the rule's repos, not excluded
    fires: bool = False  # the condition matches and the fact does not end its subject
    ends: bool = False  # were its alert firing, it would resolve (closed, or recovered)
    error: str | None = None  # the condition failed on this fact


def verdict(rule: Rule, data: dict[str, Any], evaluator: Evaluator) -> Verdict:
    """The rule on the fact (pure): what the service acts on and ``rules test`` shows."""
    if not _applies(rule, str(data.get("repo") or "")):
        return Verdict(applies=False)
    try:
        matched = evaluator.matches(rule, data)
    except Exception as exc:  # noqa: BLE001 — one rule failing must not stop the rest
        return Verdict(applies=True, error=f"{type(exc).__name__}: {exc}")
    closing = lifecycle.closes(rule.fact, data)
    if matched and not closing:
        return Verdict(applies=True, fires=True)
    return Verdict(applies=True, ends=closing or lifecycle.recovers(rule.fact, data))


def queue_notice(
    db: Tx,
    rules: RuleSet,
    rule: Rule,
    step: Step,
    fact: dict[str, Any],
    now: str,
    received_at: str | None = None,
) -> int:
    """Render the step's notice and queue it per channel (outbox or digest); return count."""
    assert step.notice is not None
    what = summary(rule, step.notice, fact)
    message = render(
        rule,
        step.notice,
        fact,
        key=step.alert.key,
        flips=step.alert.flips,
        occurrences=step.alert.occurrences,
        what=what,
        started_at=step.alert.started_at,
        resolved_at=step.alert.resolved_at if step.notice == "resolved" else None,
        notified_at=now,
    )
    # What a grouped notice says of this alert (a grouped rule's only; see _commit_step).
    member = (
        dataclasses.asdict(
            Member(
                rule=rule.name,
                repo=step.alert.repo,
                state=step.notice,
                severity=message.severity,
                what=escape.single_line(what),
                url=message.url,
            )
        )
        if rule.grouped
        else None
    )
    queued = 0
    # An [[expect]] that names channels sends its item's notices there instead.
    override = fact.get("channels") if rule.fact == "spec" else None
    targets = tuple(override) if isinstance(override, list | tuple) and override else rule.channels
    for channel in targets:
        if rule.is_digest:
            assert rule.cron is not None  # a digest rule has its schedule
            digests.add_entry(
                db,
                schedule=rule.cron,
                channel=channel,
                rule=rule.name,
                repo=step.alert.repo,
                alert_key=step.alert.key,
                state=step.notice,
                title=message.title,
                url=message.url,
                at=now,
            )
        else:
            reason = rules.unconfigured.get(channel) if channel not in rules.channels else None
            if member is not None and not reason:
                queued += _queue_grouped(db, rule, step, message, member, channel, now, received_at)
                continue
            outbox.enqueue(
                db,
                channel=channel,
                kind=step.notice,
                message=message,
                alert_key=step.alert.key,
                now=now,
                parked_reason=f"channel {channel!r} is not configured: {reason}"
                if reason
                else None,
                received_at=received_at,
            )
            queued += 1
    return queued


def _queue_grouped(
    db: Tx,
    rule: Rule,
    step: Step,
    message: Message,
    member: dict[str, Any],
    channel: str,
    now: str,
    received_at: str | None,
) -> int:
    """A grouped rule's notice: on its own when it opens its group's window, else
    gathered into the notice the window ends with."""
    key = step.alert.group_key
    assert key is not None  # _commit_step keys every alert of a grouped rule
    target = outbox.gathering(db, channel, key, step.alert.key, rule.group_window, parse_iso(now))
    if target is None:
        target = outbox.enqueue(
            db,
            channel=channel,
            kind=step.notice or "firing",
            message=message,
            alert_key=step.alert.key,
            now=now,
            received_at=received_at,
            group_key=key,
        )
    outbox.add_member(db, target, step.alert.key, member, now)
    return 1


def _commit_step(
    db: Tx,
    rules: RuleSet,
    rule: Rule,
    step: Step,
    fact: dict[str, Any],
    now: str,
    received_at: str | None = None,
) -> Outcome:
    queued = 0
    if rule.grouped:
        step = dataclasses.replace(
            step,
            alert=dataclasses.replace(
                step.alert, group_key=group_key(rule.name, rule.group_by, fact)
            ),
        )
    alert = step.alert
    if step.notice:
        queued = queue_notice(db, rules, rule, step, fact, now, received_at)
        alert = dataclasses.replace(alert, flips=0)
        if step.notice == "firing":
            alert_store.rule_fired(db, rule.name, now)
    save_alert(db, alert, fact)
    alert_store.record_event(db, alert.key, step.event, now, step.notice)
    told = (Change(rule.name, step.notice, alert.repo, alert.key),) if step.notice else ()
    return Outcome(queued, 1 if step.event in HOLDING_EVENTS else 0, told)


def evaluate(
    db: Tx,
    rules: RuleSet,
    facts: list[Fact],
    *,
    now: datetime,
    evaluator: Evaluator,
    policy: Policy,
    active_silences: list[dict[str, Any]] | None = None,
    received_at: str | None = None,
) -> Outcome:
    """Evaluate every applicable rule on every fact: what was queued, what was held.

    ``active_silences``: the silences as loaded in this transaction, when the
    caller evaluates many deliveries in one (else they are read here).
    ``received_at``: when the delivery the facts came from was answered.
    """
    outcome = Outcome()
    if not rules.rules or not facts:
        return outcome
    at = iso(now)
    if active_silences is None:
        active_silences = silence_store.load(db, now)
    for fact in facts:
        if isinstance(fact, HookPing):
            continue
        data = fact_dict(fact)
        repo = str(data.get("repo") or "")
        for rule in rules.by_fact(fact.name):
            said = verdict(rule, data, evaluator)
            if not said.applies:
                continue
            if said.error is not None:
                alert_store.rule_error(db, rule.name, said.error, at)
                outcome += Outcome(errors=((rule.name, said.error),))
                continue
            subj = lifecycle.subject(rule.fact, data)
            key = lifecycle.alert_key(rule.name, repo, subj)
            current = load_alert(db, key)
            if said.fires:
                quiet = silences.silenced(active_silences, rule.name, repo, now, policy.timezone)
                step = lifecycle.on_match(
                    current,
                    key=key,
                    rule=rule.name,
                    repo=repo,
                    subj=subj,
                    # The advisory's own (critical...) when the fact has one, else the rule's.
                    severity=severity(rule, data),
                    kind=rule.fact,
                    now=now,
                    silenced=quiet,
                    repeat=rule.repeat_interval,
                    flap=policy.flap,
                )
            elif current and current.state == "firing" and said.ends:
                step = lifecycle.on_recover(
                    current, now=now, notify_resolved=rule.notify_resolved, flap=policy.flap
                )
            else:
                continue
            outcome += _commit_step(db, rules, rule, step, data, at, received_at)
    return outcome


def release_held(db: Tx, rules: RuleSet, *, now: datetime) -> int:
    """Send what flap damping held back, once each subject's interval is over."""
    at = iso(now)
    queued = 0
    for key in alert_store.held_until(db, at):
        if (found := _with_fact(db, key)) is None:
            continue
        current, fact = found
        rule = rules.rule(current.rule)
        if rule is None:  # the rule is gone: nothing to say any more
            save_alert(db, dataclasses.replace(current, held_until=None), fact)
            continue
        step = lifecycle.release(current, now=now, notify_resolved=rule.notify_resolved)
        queued += _commit_step(db, rules, rule, step, fact, at).queued
    return queued


def release_unsilenced(db: Tx, rules: RuleSet, *, now: datetime, policy: Policy) -> int:
    """Tell the firing alerts whose silence has ended, at its end."""
    at = iso(now)
    active_silences = silence_store.load(db, now)
    queued = 0
    for key in alert_store.silenced(db):
        if (found := _with_fact(db, key)) is None:
            continue
        current, fact = found
        if silences.silenced(active_silences, current.rule, current.repo, now, policy.timezone):
            continue
        rule = rules.rule(current.rule)
        if rule is None or current.state != "firing":
            save_alert(db, dataclasses.replace(current, silenced=False), fact)
            continue
        step = lifecycle.unsilence(current, now=now)
        queued += _commit_step(db, rules, rule, step, fact, at).queued
    return queued


def _repeating(rules: RuleSet) -> list[Rule]:
    return [
        r
        for r in rules.rules
        if r.repeat_interval is not None and r.fact not in lifecycle.EVENT_KINDS
    ]


def release_repeats(db: Tx, rules: RuleSet, *, now: datetime) -> int:
    """Remind of what still fires a ``repeat_interval`` after its last notice."""
    at = iso(now)
    queued = 0
    for rule in _repeating(rules):
        assert rule.repeat_interval is not None
        for key in alert_store.remindable(db, rule.name, iso(now - rule.repeat_interval)):
            if (found := _with_fact(db, key)) is None:
                continue
            current, fact = found
            step = lifecycle.remind(current, now=now)
            queued += _commit_step(db, rules, rule, step, fact, at).queued
    return queued


def next_due(db: Tx, rules: RuleSet, *, now: datetime, timezone: str) -> datetime | None:
    """The next moment an alert needs the scheduler: a hold ends, a silence over a
    firing alert ends, or a reminder falls due."""
    candidates: list[datetime] = []
    if (held := alert_store.next_hold_end(db)) is not None:
        candidates.append(parse_iso(held))
    if alert_store.any_silenced(db):
        end = silences.next_end(silence_store.load(db, now), now, timezone)
        if end is not None:
            candidates.append(end)
    for rule in _repeating(rules):
        assert rule.repeat_interval is not None
        if (told := alert_store.first_reminder_from(db, rule.name)) is not None:
            candidates.append(parse_iso(told) + rule.repeat_interval)
    return min(candidates) if candidates else None
