"""The summary in pulseox's formats (pure): markdown, org-mode and its JSON.

The text follows pulseox's own layout: sections ``Changes``, ``ERROR``,
``MISSING``, ``OK`` (empty ones omitted), entries ``- <link> <note> <updated>``,
and a ``Metadata`` footer; org-mode uses ``*`` headings and ``[[link][text]]``.
The JSON is a ``PulseOxDashboard`` document that pulseox itself loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..schedule.maths import iso_duration
from .model import STATUSES, Item

# pulseox specs need a schedule; an item with none is shown with this one.
NO_SCHEDULE = timedelta(days=36500)


@dataclass(frozen=True)
class Change:
    item: Item
    previous: str | None
    current: str


@dataclass(frozen=True)
class Snapshot:
    """One summary: every item with its status, and what changed since the last."""

    items: list[tuple[Item, str]]
    changes: list[Change] = field(default_factory=list)
    generated: datetime | None = None


def fmt_time(value: datetime | None, tz: str) -> str:
    if value is None:
        return "None"
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


def link(text: str, url: str | None, mode: str) -> str:
    target = url or text
    return f"[{text}]({target})" if mode == "md" else f"[[{target}][{text}]]"


def entry(item: Item, note: str | None, tz: str, mode: str) -> str:
    parts = [f"- {link(item.path, item.link, mode)}"]
    if note:
        parts.append(note)
    parts.append(fmt_time(item.updated, tz))
    return " ".join(parts)


def heading(title: str, mode: str) -> str:
    return f"# {title}" if mode == "md" else f"* {title}"


def text(snapshot: Snapshot, *, mode: str = "md", tz: str = "UTC") -> str:
    """The summary text, byte for byte in pulseox's layout."""
    sections: list[str] = []
    changed = [c for c in snapshot.changes if c.previous != c.current]
    if changed:
        lines = [heading("Changes", mode), ""]
        order = {s: i for i, s in enumerate(STATUSES)}
        for c in sorted(changed, key=lambda c: (order[c.current], c.item.path)):
            lines.append(entry(c.item, f"{c.previous} --> {c.current}", tz, mode))
        sections.append("\n".join(lines))
    for name in STATUSES:
        members = sorted((i for i, s in snapshot.items if s == name), key=lambda i: i.path)
        if members:
            sections.append(
                "\n".join([heading(name, mode), ""] + [entry(i, i.note, tz, mode) for i in members])
            )
    footer = "\n".join(
        [
            heading("Metadata", mode),
            "- report: GOOD",
            f"- updated: {fmt_time(snapshot.generated, tz)}",
        ]
    )
    return "\n\n".join([*sections, footer]) if sections else footer


def spec(item: Item) -> dict[str, Any]:
    schedule = item.schedule if item.schedule is not None else NO_SCHEDULE
    return {
        "owner": item.owner,
        "repo": item.repo,
        "path": item.path,
        "schedule": iso_duration(schedule) if isinstance(schedule, timedelta) else schedule,
        "note": item.note,
        "report": item.report,
        "updated": item.updated.isoformat() if item.updated else None,
    }


def summary_model(snapshot: Snapshot, body: str, tz: str) -> dict[str, Any]:
    status: dict[str, dict[str, Any]] = {name: {} for name in STATUSES}
    for item, state in snapshot.items:
        status[state][item.path] = spec(item)
    return {
        "status": status,
        "text": body,
        "updated": snapshot.generated.isoformat() if snapshot.generated else None,
        "show_tz": tz,
    }


def dashboard_json(
    snapshot: Snapshot, previous: dict[str, Any] | None, *, owner: str, repo: str, tz: str = "UTC"
) -> str:
    """``summary.md.json``: what ``PulseOxDashboard.model_validate_json`` loads.

    ``previous`` is the ``summary`` part of the previous document, as pulseox
    keeps it.
    """
    body = text(snapshot, mode="md", tz=tz)
    prior = {c.item.path: c for c in snapshot.changes}
    changes: dict[str, dict[str, Any]] = {name: {} for name in STATUSES}
    for item, state in snapshot.items:
        c = prior.get(item.path)
        changes[state][item.path] = {
            "current_item": spec(item),
            "current_status": state,
            "previous_item": spec(item) if c and c.previous else None,
            "previous_status": c.previous if c else state,
        }
    document = {
        "owner": owner,
        "repo": repo,
        "spec_list": [spec(i) for i, _ in snapshot.items],
        "summary": summary_model(snapshot, body, tz),
        "previous_summary": previous,
        "changes": changes,
    }
    return json.dumps(document, indent=2)
