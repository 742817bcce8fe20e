"""Alert groups (pure): which group a notice belongs to, and the grouped notice's text.

When a shared workflow breaks, hundreds of repositories fire the same rule within a
minute. The first notice of a group goes out at once; what follows inside the
group's window is gathered into one notice naming every alert it stands for, and
notices that waited for their channel's pace are merged into one the same way
(``store/outbox.py``). Groups are per rule by default; ``group_by`` splits a rule's
alerts by fact fields (``repo``, ``workflow``, ``package``...).

A grouped notice names as many members as its channel takes (Slack's message
length, Discord's 2,000 characters), then says how many more there are, with a
link to the dashboard's alert list. Every string a member carries came from a
payload: each form escapes it for itself, links are made to http(s) URLs only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from ..notify import escape, forms
from ..notify.base import Message
from ..notify.escape import value as v

TITLE_LIMIT = 300
# Characters of body each kind of channel takes for a grouped notice's names.
BUDGETS: dict[str, int] = {
    "slack": 30_000,  # Slack cuts message text after 40,000 characters
    "discord": 1_800,  # Discord refuses content over 2,000
    "email": 200_000,
    "pagerduty": 20_000,  # custom details: well under the Events API's 512 KB
}
OTHER_BUDGET = 4_000
DETAIL_NAMES = 500  # repositories listed in a PagerDuty incident's custom details
# A rule's severities and an advisory's (high, medium, low), worst first.
SEVERITY_ORDER = ("critical", "error", "high", "warning", "medium", "info", "low")
WORDS = {"firing": "FIRING", "resolved": "RESOLVED"}
ICONS = {"firing": ":red_circle:", "resolved": ":large_green_circle:"}
DISCORD_ICONS = {"firing": "\U0001f534", "resolved": "\U0001f7e2"}


def group_key(rule: str, group_by: tuple[str, ...], fact: dict[str, Any]) -> str:
    """The rule, and the value of each ``group_by`` field of the fact."""
    parts = [rule]
    for name in group_by:
        parts.append(f"{name}={fact.get(name)}")
    return "|".join(parts)


@dataclass(frozen=True)
class Member:
    """One alert a grouped notice speaks for."""

    rule: str
    repo: str
    state: str  # firing, repeat, resolved
    severity: str
    what: str  # one line, marked text: what happened
    url: str | None = None

    @property
    def bucket(self) -> str:
        return "resolved" if self.state == "resolved" else "firing"


@dataclass(frozen=True)
class Count:
    members: int
    repos: int


@dataclass(frozen=True)
class Tally:
    """A notice's members: those loaded, in order, and the counts of all of them."""

    members: tuple[Member, ...]
    counts: dict[tuple[str, str], Count] = field(default_factory=dict)  # (rule, bucket)

    @property
    def total(self) -> int:
        return sum(c.members for c in self.counts.values())

    @classmethod
    def of(
        cls, loaded: list[dict[str, Any]], counts: dict[tuple[str, str], tuple[int, int]]
    ) -> Tally:
        """From the store's rows (``store.outbox.members``)."""
        return cls(
            tuple(Member(**row) for row in loaded),
            {key: Count(*pair) for key, pair in counts.items()},
        )


@dataclass(frozen=True)
class _Form:
    """How one output format writes a grouped notice."""

    bold: Callable[[str], str]  # emphasis around text already in this format
    name: Callable[[str, str | None], str]  # a repository, linked when it can be
    what: Callable[[str], str]  # marked text -> this format
    inline: str  # between names on one line
    item: str  # before a line of its own
    newline: str = "\n"


_SLACK = _Form(
    bold=lambda t: f"*{t}*",
    name=lambda n, u: f"<{u}|{escape.slack_escape(n)}>" if u else escape.slack_escape(n),
    what=escape.slack,
    inline=", ",
    item="• ",
)
_DISCORD = _Form(
    bold=lambda t: f"**{t}**",
    name=lambda n, u: f"[{escape.discord_escape(n)}](<{u}>)" if u else escape.discord_escape(n),
    what=escape.discord,
    inline=", ",
    item="• ",
)
# Discord's 2,000 characters hold about 26 linked names, four times as many bare ones.
_DISCORD_BARE = replace(_DISCORD, name=lambda n, _url: escape.discord_escape(n))
_TEXT = _Form(
    bold=lambda t: t,
    name=lambda n, u: f"{escape.single_line(n)} {u}" if u else escape.single_line(n),
    what=lambda m: escape.single_line(escape.plain(m)),
    inline="\n  ",
    item="  - ",
)
_HTML = _Form(
    bold=lambda t: f"<strong>{t}</strong>",
    name=lambda n, u: (
        f'<a href="{escape.html_escape(u)}">{escape.html_escape(n)}</a>'
        if u
        else escape.html_escape(n)
    ),
    what=lambda m: escape.html_escape(escape.single_line(escape.plain(m))),
    inline=", ",
    item="<br>• ",
    newline="<br>\n",
)


def _sections(tally: Tally) -> list[tuple[str, str, list[Member]]]:
    """(rule, bucket, loaded members) in the order the first of each came."""
    out: dict[tuple[str, str], list[Member]] = {}
    for member in tally.members:
        out.setdefault((member.rule, member.bucket), []).append(member)
    for key in tally.counts:
        out.setdefault(key, [])
    return [(rule, bucket, members) for (rule, bucket), members in out.items()]


def _common(members: list[Member]) -> str | None:
    """What every member says, when they all say the same (a shared workflow broke)."""
    said = {m.what for m in members}
    return next(iter(said)) if len(said) == 1 else None


def _count(tally: Tally, rule: str, bucket: str, loaded: list[Member]) -> Count:
    return tally.counts.get((rule, bucket), Count(len(loaded), len({m.repo for m in loaded})))


def _where(count: Count) -> str:
    repos = f"{count.repos} repositor{'y' if count.repos == 1 else 'ies'}"
    if count.members == count.repos:
        return f"in {repos}"
    return f"{count.members} alerts in {repos}"


def _heading(rule: str, bucket: str, count: Count, members: list[Member]) -> str:
    """``[FIRING] build_failure in 37 repositories``, or for one alert its repository;
    marked text (a repository's name comes from a payload)."""
    word = WORDS[bucket]
    if count.members == 1 and members:
        return f"[{word}] {v(rule)} — {v(members[0].repo)}"
    return f"[{word}] {v(rule)} {_where(count)}"


def _body(tally: Tally, form: _Form, budget: int, icons: dict[str, str]) -> tuple[str, int]:
    """The body in one format, within ``budget`` characters: (text, members named)."""
    lines: list[str] = []
    named = 0
    used = 0
    for rule, bucket, members in _sections(tally):
        count = _count(tally, rule, bucket, members)
        common = _common(members)
        head = form.bold(form.what(_heading(rule, bucket, count, members)))
        icon = icons.get(bucket, "")
        if common is not None:
            head += f" — {form.what(common)}"
        line = f"{icon} {head}".strip()
        parts: list[str] = []
        for member in members:
            if common is not None:
                piece = form.name(member.repo, escape.link_url(member.url))
            else:
                piece = f"{form.name(member.repo, escape.link_url(member.url))}: " + form.what(
                    member.what
                )
            cost = len(piece) + len(form.inline)
            if used + len(line) + cost > budget:
                break
            parts.append(piece)
            used += cost
            named += 1
        if common is None:
            body = "".join(f"{form.newline}{form.item}{p}" for p in parts)
        else:
            body = (form.newline if parts else "") + form.inline.join(parts)
        used += len(line)
        lines.append(line + body)
    return form.newline.join(lines), named


def _severity(tally: Tally) -> str:
    firing = [m.severity for m in tally.members if m.bucket == "firing"]
    ranked = [s for s in SEVERITY_ORDER if s in firing]
    return ranked[0] if ranked else ("error" if firing else "info")


def alerts_link(public_url: str | None, rules: list[str]) -> str | None:
    """The dashboard's alert list (of the one rule, when there is one)."""
    if not public_url:
        return None
    base = public_url.rstrip("/") + "/alerts"
    return escape.link_url(f"{base}?rule={quote(rules[0], safe='')}" if len(rules) == 1 else base)


def render_group(
    tally: Tally,
    *,
    kind: str,
    key: str,
    alerts_url: str | None = None,
    firing_now: tuple[str, ...] | None = None,
) -> Message:
    """One notice for every member of ``tally`` on a channel of ``kind``.

    ``firing_now``: the repositories of the group still firing (PagerDuty's group
    incident stays open while there is one, and resolves with the last).
    """
    sections = _sections(tally)
    rules = list(dict.fromkeys(rule for rule, _, _ in sections))
    headings = []
    for rule, bucket, members in sections:
        count = _count(tally, rule, bucket, members)
        heading = escape.plain(_heading(rule, bucket, count, members))
        common = _common(members)
        if len(sections) == 1 and common is not None:
            heading += f": {escape.plain(common)}"
        headings.append(heading)
    title = escape.single_line(", ".join(headings))
    if len(title) > TITLE_LIMIT:
        title = title[: TITLE_LIMIT - 1] + "…"
    budget = BUDGETS.get(kind, OTHER_BUDGET)
    markdown, named = _body(tally, _SLACK, budget, ICONS)
    discord, discord_named = _body(tally, _DISCORD, BUDGETS["discord"], DISCORD_ICONS)
    if discord_named < len(tally.members):
        discord, discord_named = _body(tally, _DISCORD_BARE, BUDGETS["discord"], DISCORD_ICONS)
    text, text_named = _body(tally, _TEXT, BUDGETS["email"], {})
    html, _ = _body(tally, _HTML, BUDGETS["email"], {})
    total = tally.total or len(tally.members)

    def more(shown: int, link: Callable[[str], str]) -> str:
        rest = total - shown
        if rest <= 0:
            return ""
        tail = f"…and {rest} more"
        return tail + (f" — {link(alerts_url)}" if alerts_url else " (see the Alerts page)")

    markdown += "\n" + more(named, lambda u: f"<{u}|all alerts>") if total > named else ""
    discord += (
        "\n" + more(discord_named, lambda u: f"[all alerts](<{u}>)")
        if total > discord_named
        else ""
    )
    text += "\n" + more(text_named, lambda u: u) if total > text_named else ""
    state = "firing" if any(b == "firing" for _, b, _ in sections) else "resolved"
    if firing_now is not None:
        state = "firing" if firing_now else "resolved"
    firing = (
        firing_now
        if firing_now is not None
        else tuple(dict.fromkeys(m.repo for m in tally.members if m.bucket == "firing"))
    )
    resolved = tuple(dict.fromkeys(m.repo for m in tally.members if m.bucket == "resolved"))
    repos = {m.repo for m in tally.members}
    single = tally.members[0] if total == 1 and tally.members else None
    worst = _severity(tally) if state == "firing" else "info"
    counted = max([len(repos), *(c.repos for c in tally.counts.values())])
    where = next(iter(repos)) if counted == 1 and repos else f"{counted} repositories"
    what = rules[0] if len(rules) == 1 else f"{len(rules)} rules"
    rows: list[forms.Row] = [
        ("Severity", worst if state == "firing" else "resolved", None),
        ("Alerts", total, None),
        *([("All alerts", alerts_url, alerts_url)] if alerts_url else []),
    ]
    context = " · ".join(
        [
            f"severity *{escape.slack_escape(worst)}*" if state == "firing" else "resolved",
            f"{total} alert{'' if total == 1 else 's'}",
            *([f"<{alerts_url}|all alerts>"] if alerts_url else []),
        ]
    )
    return Message(
        title=title,
        subject=forms.subject(WORDS[state], what, where),
        text=forms.rows_text(rows) + "\n" + text + ("\n" if text else ""),
        markdown=markdown.strip(),
        context=context,
        discord=discord.strip(),
        html=f"{forms.rows_html(rows)}<p>{html}</p>",
        url=alerts_url or (escape.link_url(single.url) if single else None),
        severity=worst,
        state=state,
        dedup_key=f"group|{key}",
        source=next(iter(repos)) if len(repos) == 1 else "pulsehook",
        details={
            "rules": rules,
            "alerts": total,
            "firing": list(firing[:DETAIL_NAMES]),
            "firing_count": len(firing),
            "resolved": list(resolved[:DETAIL_NAMES]),
            **({"dashboard": alerts_url} if alerts_url else {}),
        },
    )
