"""The summary in pulseox's formats (pure): markdown, org-mode and its JSON.

The text follows pulseox's own layout: sections ``Changes``, ``ERROR``,
``MISSING``, ``OK`` (empty ones omitted), entries ``- <link> <note> <updated>``,
and a ``Metadata`` footer; org-mode uses ``*`` headings and ``[[link][text]]``.
The JSON is a ``PulseOxDashboard`` document that pulseox itself loads.

Paths, notes and links come from outside (webhook payloads, heartbeat reports)
and readers parse these files line by line (pulseox's own reader looks for a
``Metadata`` section): every such string is made one line first, so none can
forge an entry, a section or a footer. In markdown, text is HTML-escaped and its
brackets and backslashes escaped, so it makes no raw HTML and no link of its own;
in org-mode, a zero-width space keeps its brackets from forming a link. Entries
link to http(s) URLs only; otherwise to the item's path, relative (a path that
looks like ``javascript:`` is made ``./javascript:``).
"""

from __future__ import annotations

import functools
import html
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..notify.escape import link_url, single_line
from ..timing import iso_duration
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


@functools.lru_cache(maxsize=65536)
def fmt_time(value: datetime | None, tz: str) -> str:
    if value is None:
        return "None"
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")


_MD_SPECIAL = re.compile(r"([\\\[\]])")
# Characters that end a markdown or org link target early (spaces only unlink it).
_TARGET_UNSAFE = re.compile(r"[()<>\[\]\\\"'`]")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


# Item keys are made one line on every regeneration: cached like the rest.
_key = functools.lru_cache(maxsize=65536)(single_line)


def shown(text: str, mode: str) -> str:
    """Outside text as it may appear in the summary: one line, inert markup."""
    line = single_line(text)
    if mode == "md":
        return _MD_SPECIAL.sub(r"\\\1", html.escape(line, quote=False))
    # Org: no "[[" or "]]" (link syntax), no "@@" (raw export snippets).
    return line.replace("[", "[\u200b").replace("]", "\u200b]").replace("@@", "@\u200b@")


def target(path: str, url: str | None) -> str:
    """An http(s) URL, or else the path as a relative link that cannot be a scheme."""
    if (safe := link_url(url)) is not None:
        return safe
    relative = _TARGET_UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", single_line(path))
    return f"./{relative}" if _SCHEME.match(relative) else relative


def link(text: str, url: str | None, mode: str) -> str:
    to, label = target(text, url), shown(text, mode)
    return f"[{label}]({to})" if mode == "md" else f"[[{to}][{label}]]"


# Items are frozen values: between two regenerations most are unchanged, so
# their rendered lines and spec documents are reused instead of rebuilt.
@functools.lru_cache(maxsize=65536)
def entry(item: Item, note: str | None, tz: str, mode: str, outside: bool = True) -> str:
    """One entry line; ``outside``: the note came from outside (else it is pulsehook's)."""
    parts = [f"- {link(item.path, item.link, mode)}"]
    if note:
        parts.append(shown(note, mode) if outside else note)
    if item.implicit and item.crons:
        # Nobody declared it: say where the expectation comes from.
        where = f"(scheduled {' | '.join(item.crons)} UTC in {item.source})"
        parts.append(shown(where, mode))
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
            lines.append(entry(c.item, f"{c.previous} --> {c.current}", tz, mode, False))
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


@functools.lru_cache(maxsize=65536)
def spec(item: Item) -> dict[str, Any]:
    """The pulseox spec of an item (cached: callers must not modify it)."""
    schedule = item.schedule if item.schedule is not None else NO_SCHEDULE
    # One line each: pulseox writes its own summary text from these.
    return {
        "owner": single_line(item.owner),
        "repo": single_line(item.repo),
        # Within the repository, so pulseox re-reading the spec finds its file here.
        "path": single_line(item.file),
        # pulseox takes one cron: of a workflow's several, the first.
        "schedule": iso_duration(schedule)
        if isinstance(schedule, timedelta)
        else (item.crons[0] if item.crons else schedule),
        "note": single_line(item.note) if item.note is not None else None,
        "report": item.report,
        "updated": item.updated.isoformat() if item.updated else None,
    }


@functools.lru_cache(maxsize=65536)
def spec_json(item: Item) -> str:
    return json.dumps(spec(item), separators=(",", ":"))


def _object(pairs: list[tuple[str, str]]) -> str:
    """A JSON object from keys and already-encoded values."""
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}"


def summary_json(snapshot: Snapshot, body: str, tz: str) -> str:
    """pulseox's ``PulseOxSummary`` as JSON, assembled from cached per-item parts."""
    groups: dict[str, list[tuple[str, str]]] = {name: [] for name in STATUSES}
    for item, state in snapshot.items:
        groups[state].append((_key(item.path), spec_json(item)))
    return _object(
        [
            ("status", _object([(name, _object(groups[name])) for name in STATUSES])),
            ("text", json.dumps(body)),
            ("updated", json.dumps(snapshot.generated.isoformat() if snapshot.generated else None)),
            ("show_tz", json.dumps(tz)),
        ]
    )


def dashboard_json(
    snapshot: Snapshot,
    previous: str | None,
    *,
    owner: str,
    repo: str,
    tz: str = "UTC",
    body: str | None = None,
) -> tuple[str, str]:
    """``summary.md.json`` (what ``PulseOxDashboard.model_validate_json`` loads), and
    its ``summary`` part, which the next document carries as ``previous_summary``.

    ``previous`` is that part of the previous document, as JSON text. The
    document is assembled from per-item JSON cached between regenerations:
    encoding 10,000 unchanged specs again would dominate the time.
    """
    body = body if body is not None else text(snapshot, mode="md", tz=tz)
    # Only the items that changed: pulseox lists every item here, but readers
    # use it for transitions, and 10,000 unchanged items would triple the file.
    changes: dict[str, list[tuple[str, str]]] = {name: [] for name in STATUSES}
    for c in snapshot.changes:
        change = _object(
            [
                ("current_item", spec_json(c.item)),
                ("current_status", json.dumps(c.current)),
                ("previous_item", spec_json(c.item) if c.previous else "null"),
                ("previous_status", json.dumps(c.previous)),
            ]
        )
        changes[c.current].append((_key(c.item.path), change))
    summary = summary_json(snapshot, body, tz)
    document = _object(
        [
            ("owner", json.dumps(owner)),
            ("repo", json.dumps(repo)),
            ("spec_list", "[" + ",".join(spec_json(i) for i, _ in snapshot.items) + "]"),
            ("summary", summary),
            ("previous_summary", previous or "null"),
            ("changes", _object([(name, _object(changes[name])) for name in STATUSES])),
        ]
    )
    return document, summary
