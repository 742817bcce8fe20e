"""Digests: the alerts of a period, per channel, grouped by repository and rule.

Each digest schedule (a cron in the configured timezone) has a mark: the last
due time it was run for. When the latest due time passes the mark, entries
gathered since are sent — once, however many periods the service was down.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from ..clock import iso
from ..notify import escape, forms
from ..notify.base import Message
from ..rules.model import RuleSet
from ..store import digests, marks, outbox
from ..store.db import Tx
from ..timing import last_due, next_due


def schedules(rules: RuleSet) -> set[str]:
    return {r.cron for r in rules.rules if r.cron}


def _tag(e: dict[str, Any]) -> str:
    """`` [critical] (GHSA-..., CVE-...)``: the entry's severity and advisory ids, plain."""
    sev = f" [{e['severity']}]" if e.get("severity") else ""
    found = forms.ids(e.get("fact"))
    return escape.single_line(sev + (f" ({', '.join(found)})" if found else ""))


def render_digest(channel: str, due: str, entries: list[dict[str, Any]]) -> Message:
    """One digest message (pure): grouped by repository, then rule, with counts and links;
    each entry with its alert's severity and advisory ids (``severity``, ``fact``: the
    alert's, when the store has them).

    Repositories and titles come from payloads: each form escapes them for itself
    (Slack mrkdwn, Discord markdown, HTML), and links are made to http(s) URLs only.
    """
    groups: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for e in entries:
        groups[str(e["repo"])][str(e["rule"])].append(e)
    title = (
        f"[pulsehook digest] {len(entries)} alert notice(s) in {len(groups)}"
        f" repositor{'y' if len(groups) == 1 else 'ies'}"
    )
    text, md, dc = [title, ""], [f"*{title}*"], [f"**{title}**"]
    parts = [f"<h2>{escape.html_escape(title)}</h2>"]
    for repo in sorted(groups):
        text.append(escape.single_line(repo))
        md.append(f"\n*{escape.slack_escape(repo)}*")
        dc.append(f"\n**{escape.discord_escape(repo)}**")
        parts.append(f"<h3>{escape.html_escape(repo)}</h3><ul>")
        for rule in sorted(groups[repo]):
            items = groups[repo][rule]
            text.append(f"  {rule} ({len(items)})")
            md.append(f"• `{escape.slack_escape(rule)}` ({len(items)})")
            dc.append(f"• {escape.discord_escape(rule)} ({len(items)})")
            parts.append(f"<li><strong>{escape.html_escape(rule)}</strong> ({len(items)})<ul>")
            for e in items:
                state, label = str(e["state"]), escape.single_line(str(e["title"]))
                tag = _tag(e)
                url = escape.link_url(e.get("url"))
                text.append(f"    - {state}{tag}: {label}" + (f" {url}" if url else ""))
                shown = escape.slack_escape(label)
                md.append(
                    f"    – {state}{escape.slack_escape(tag)}: "
                    + (f"<{url}|{shown}>" if url else shown)
                )
                shown = escape.discord_escape(label)
                dc.append(
                    f"    – {state}{escape.discord_escape(tag)}: "
                    + (f"[{shown}]({url})" if url else shown)
                )
                shown = escape.html_escape(label)
                item = f'<a href="{escape.html_escape(url)}">{shown}</a>' if url else shown
                parts.append(
                    f"<li>{escape.html_escape(state)}{escape.html_escape(tag)}: {item}</li>"
                )
            parts.append("</ul></li>")
        parts.append("</ul>")
    return Message(
        title=title,
        subject=forms.cut(title, forms.SUBJECT_LIMIT),
        text="\n".join(text),
        markdown="\n".join(md),
        context=escape.slack_escape(f"digest of {channel} · due {forms.when(due) or due}"),
        discord="\n".join(dc),
        html="".join(parts),
        severity="info",
        state="digest",
        dedup_key=f"digest|{channel}|{due}",
        details={"entries": len(entries)},
    )


def _build(db: Tx, rules: RuleSet, schedule: str, due: str, now: str) -> int:
    """Turn the open entries of ``schedule`` into one digest per channel; return queued."""
    queued = 0
    for channel in digests.open_channels(db, schedule):
        entries = digests.open_entries(db, schedule, channel)
        if not entries:
            continue  # an empty digest is not sent
        if not digests.take(
            db, schedule=schedule, channel=channel, due=due, entries=entries, now=now
        ):
            continue
        reason = (
            None
            if channel in rules.channels
            else (f"channel {channel!r} is not configured: {rules.unconfigured.get(channel)}")
        )
        outbox.enqueue(
            db,
            channel=channel,
            kind="digest",
            message=render_digest(channel, due, entries),
            alert_key=None,
            now=now,
            parked_reason=reason,
        )
        queued += 1
    return queued


def run_due(db: Tx, rules: RuleSet, *, now: datetime, tz: str) -> int:
    """Send the digests whose time has come (at most one per schedule and channel)."""
    queued = 0
    at = iso(now)
    for schedule in sorted(schedules(rules)):
        name = f"digest:{schedule}"
        due = last_due(schedule, now, tz)
        mark = marks.last_run(db, name)
        if mark is None:
            # First sight of this schedule: start counting from its latest due time.
            marks.mark(db, name, due)
            continue
        if due <= mark:
            continue
        queued += _build(db, rules, schedule, iso(due), at)
        marks.mark(db, name, due)
    return queued


def send_now(db: Tx, rules: RuleSet, *, now: datetime) -> int:
    """Send every open digest entry now, whatever the schedule (``digest send --now``)."""
    return sum(_build(db, rules, s, iso(now), iso(now)) for s in sorted(schedules(rules)))


def next_run(rules: RuleSet, *, now: datetime, tz: str) -> datetime | None:
    times = [next_due(s, now, tz) for s in schedules(rules)]
    return min(times) if times else None
