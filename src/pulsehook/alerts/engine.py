"""Rules meet facts: decide, record, and queue notices — inside the caller's transaction."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from sqlite_utils import Database

from ..clock import iso, parse_iso
from ..facts import Fact, HookPing, fact_dict
from ..notify import escape
from ..notify.base import Message
from ..rules.evaluate import Evaluator
from ..rules.messages import render, summary
from ..rules.model import Rule, RuleSet
from ..store import outbox
from . import lifecycle, silences
from .grouping import Member, group_key
from .lifecycle import Alert, Step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policy:
    flap: timedelta = timedelta(minutes=5)
    timezone: str = "UTC"


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


def load_alert(db: Database, key: str) -> Alert | None:
    row = next(db.query("SELECT * FROM alerts WHERE key = ?", (key,)), None)
    if row is None:
        return None
    values = {k: row[k] for k in _ALERT_FIELDS}
    for flag in ("notified_firing", "silenced"):
        values[flag] = bool(values[flag])
    values["changes"] = tuple(json.loads(values["changes"] or "[]"))
    return Alert(**values)


_ALERT_COLUMNS = (*_ALERT_FIELDS, "fact")
_SAVE_ALERT = (
    f"INSERT INTO alerts ({', '.join(_ALERT_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in _ALERT_COLUMNS)}) ON CONFLICT(key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _ALERT_COLUMNS if c != "key")
)


def save_alert(db: Database, alert: Alert, fact: dict[str, Any]) -> None:
    values = [getattr(alert, name) for name in _ALERT_FIELDS]
    values[_ALERT_FIELDS.index("changes")] = json.dumps(list(alert.changes))
    db.execute(_SAVE_ALERT, [*values, json.dumps(fact, default=str)])


def _applies(rule: Rule, repo: str) -> bool:
    if rule.repos and not any(fnmatchcase(repo, p) for p in rule.repos):
        return False
    return not any(fnmatchcase(repo, p) for p in rule.exclude_repos)


def _rule_error(db: Database, rule: str, error: str, now: str) -> None:
    db.execute(
        "INSERT INTO rule_stats (rule, errors, last_error, last_error_at) VALUES (?, 1, ?, ?)"
        " ON CONFLICT(rule) DO UPDATE SET errors = errors + 1, last_error = excluded.last_error,"
        " last_error_at = excluded.last_error_at",
        (rule, error, now),
    )


def _fired(db: Database, rule: str, now: str) -> None:
    db.execute(
        "INSERT INTO rule_stats (rule, fired, last_fired_at) VALUES (?, 1, ?)"
        " ON CONFLICT(rule) DO UPDATE SET fired = fired + 1,"
        " last_fired_at = excluded.last_fired_at",
        (rule, now),
    )


def queue_notice(
    db: Database,
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
    for channel in rule.channels:
        if rule.is_digest:
            db.execute(
                "INSERT INTO digest_entries (schedule, channel, rule, repo, alert_key, state,"
                " title, url, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rule.cron,
                    channel,
                    rule.name,
                    step.alert.repo,
                    step.alert.key,
                    step.notice,
                    message.title,
                    message.url,
                    now,
                ),
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
    db: Database,
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
    db: Database,
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
            _fired(db, rule.name, now)
    save_alert(db, alert, fact)
    db.execute(
        "INSERT INTO alert_events (alert_key, event, at, detail) VALUES (?, ?, ?, ?)",
        (alert.key, step.event, now, step.notice),
    )
    told = (Change(rule.name, step.notice, alert.repo, alert.key),) if step.notice else ()
    return Outcome(queued, 1 if step.event in HOLDING_EVENTS else 0, told)


def evaluate(
    db: Database,
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
        active_silences = silences.load(db, now)
    for fact in facts:
        if isinstance(fact, HookPing):
            continue
        data = fact_dict(fact)
        repo = str(data.get("repo") or "")
        for rule in rules.by_fact(fact.name):
            if not _applies(rule, repo):
                continue
            try:
                matched = evaluator.matches(rule, data)
            except Exception as exc:  # one rule failing on one fact must not stop the rest
                error = f"{type(exc).__name__}: {exc}"
                _rule_error(db, rule.name, error, at)
                outcome += Outcome(errors=((rule.name, error),))
                continue
            subj = lifecycle.subject(rule.fact, data)
            key = lifecycle.alert_key(rule.name, repo, subj)
            current = load_alert(db, key)
            closing = lifecycle.closes(rule.fact, data)
            if matched and not closing:
                quiet = silences.silenced(active_silences, rule.name, repo, now, policy.timezone)
                step = lifecycle.on_match(
                    current,
                    key=key,
                    rule=rule.name,
                    repo=repo,
                    subj=subj,
                    severity=rule.severity,
                    kind=rule.fact,
                    now=now,
                    silenced=quiet,
                    repeat=rule.repeat_interval,
                    flap=policy.flap,
                )
            elif (
                current
                and current.state == "firing"
                and (closing or lifecycle.recovers(rule.fact, data))
            ):
                step = lifecycle.on_recover(
                    current, now=now, notify_resolved=rule.notify_resolved, flap=policy.flap
                )
            else:
                continue
            outcome += _commit_step(db, rules, rule, step, data, at, received_at)
    return outcome


def release_held(db: Database, rules: RuleSet, *, now: datetime) -> int:
    """Send what flap damping held back, once each subject's interval is over."""
    at = iso(now)
    queued = 0
    for row in list(
        db.query(
            "SELECT key, rule, fact FROM alerts WHERE held_until IS NOT NULL AND held_until <= ?",
            (at,),
        )
    ):
        rule = rules.rule(row["rule"])
        current = load_alert(db, row["key"])
        if current is None:
            continue
        if rule is None:  # the rule is gone: nothing to say any more
            save_alert(db, dataclasses.replace(current, held_until=None), json.loads(row["fact"]))
            continue
        step = lifecycle.release(current, now=now, notify_resolved=rule.notify_resolved)
        queued += _commit_step(db, rules, rule, step, json.loads(row["fact"]), at).queued
    return queued


def release_unsilenced(db: Database, rules: RuleSet, *, now: datetime, policy: Policy) -> int:
    """Tell the firing alerts whose silence has ended, at its end."""
    at = iso(now)
    active_silences = silences.load(db, now)
    queued = 0
    for row in list(db.query("SELECT key, fact FROM alerts WHERE silenced = 1")):
        current = load_alert(db, row["key"])
        if current is None or silences.silenced(
            active_silences, current.rule, current.repo, now, policy.timezone
        ):
            continue
        rule = rules.rule(current.rule)
        fact = json.loads(row["fact"])
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


def release_repeats(db: Database, rules: RuleSet, *, now: datetime) -> int:
    """Remind of what still fires a ``repeat_interval`` after its last notice."""
    at = iso(now)
    queued = 0
    for rule in _repeating(rules):
        assert rule.repeat_interval is not None
        for row in list(
            db.query(
                "SELECT key, fact FROM alerts WHERE rule = ? AND state = 'firing'"
                " AND last_notified_state = 'firing' AND silenced = 0 AND held_until IS NULL"
                " AND last_notified_at <= ?",
                (rule.name, iso(now - rule.repeat_interval)),
            )
        ):
            current = load_alert(db, row["key"])
            if current is None:
                continue
            step = lifecycle.remind(current, now=now)
            queued += _commit_step(db, rules, rule, step, json.loads(row["fact"]), at).queued
    return queued


def next_due(db: Database, rules: RuleSet, *, now: datetime, timezone: str) -> datetime | None:
    """The next moment an alert needs the scheduler: a hold ends, a silence over a
    firing alert ends, or a reminder falls due."""
    candidates: list[datetime] = []
    row = next(
        db.query("SELECT min(held_until) AS at FROM alerts WHERE held_until IS NOT NULL"), None
    )
    if row and row["at"]:
        candidates.append(parse_iso(row["at"]))
    if next(db.query("SELECT 1 FROM alerts WHERE silenced = 1 LIMIT 1"), None):
        end = silences.next_end(silences.load(db, now), now, timezone)
        if end is not None:
            candidates.append(end)
    for rule in _repeating(rules):
        assert rule.repeat_interval is not None
        row = next(
            db.query(
                "SELECT min(last_notified_at) AS at FROM alerts WHERE rule = ?"
                " AND state = 'firing' AND last_notified_state = 'firing' AND silenced = 0"
                " AND held_until IS NULL",
                (rule.name,),
            ),
            None,
        )
        if row and row["at"]:
            candidates.append(parse_iso(row["at"]) + rule.repeat_interval)
    return min(candidates) if candidates else None
