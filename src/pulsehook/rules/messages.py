"""Rendering notices (pure): a fact and an alert transition in, a Message out.

Every string of the fact comes from a payload and is escaped for each place it
goes: the notice is built once as marked text (``notify/escape.py``), and its
Slack, Discord and plain forms are derived from it, so pulsehook's own
formatting, and a rule author's template text, stay as written while every
payload value is escaped.

A rule's ``message`` template (``templates.py``: sandboxed and bounded) that
breaks a limit, or fails, gives the default message instead; the problem is
logged once per rule.
"""

from __future__ import annotations

import logging
from typing import Any

from jinja2.exceptions import SecurityError

from .. import facts
from ..notify import escape, forms
from ..notify.base import Message
from ..notify.escape import value as v
from .model import Rule
from .templates import render_template

log = logging.getLogger(__name__)

TITLE_LIMIT = 300  # characters of a notice's title
ICONS = {"firing": ":red_circle:", "repeat": ":red_circle:", "resolved": ":large_green_circle:"}
DISCORD_ICONS = {"firing": "\U0001f534", "repeat": "\U0001f534", "resolved": "\U0001f7e2"}
WORDS = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}
# Rules whose template problem was logged already (a bounded memory of them).
_REPORTED: set[tuple[str, str]] = set()


def _report(rule: Rule, problem: str) -> None:
    """Log a rule's template problem the first time it is seen."""
    key = (rule.name, rule.message or "")
    if key in _REPORTED:
        return
    if len(_REPORTED) > 1000:
        _REPORTED.clear()
    _REPORTED.add(key)
    # The rule and one short line of reason; a template sees only fact data, never a secret.
    log.warning("rule %r: message template not used, default message sent: %s", rule.name, problem)


def _problem(exc: Exception) -> str:
    if isinstance(exc, SecurityError):
        return f"limit: {exc}"
    return type(exc).__name__


def describe(kind: str, f: dict[str, Any]) -> str:
    """One line saying what happened, as its kind says it, as marked text."""
    return facts.kind(kind).describe(f, v)


def subject_url(f: dict[str, Any]) -> str | None:
    """The fact's link, when it is one that can be linked (http or https)."""
    return escape.link_url(f.get("url"))


def summary(rule: Rule, state: str, fact: dict[str, Any]) -> str:
    """What happened, as marked text: the rule's template, or the fact described."""
    what = describe(rule.fact, fact)
    if rule.message and state != "resolved":
        try:
            what = render_template(rule.message, fact, rule.fact)
        except Exception as exc:  # noqa: BLE001 — a template must never stop a notice
            detail = "" if isinstance(exc, SecurityError) else f": {str(exc)[:200]}"
            _report(rule, escape.single_line(_problem(exc) + detail))
            what = f"{what} (message template failed: {v(_problem(exc))})"
    return what


def severity(rule: Rule, fact: dict[str, Any]) -> str:
    """The severity an alert on ``fact`` shows: its subject's own (an advisory's
    ``critical``) when it has one, else the rule's."""
    return facts.kind(rule.fact).severity_of(fact) or rule.severity


def _since(state: str, started_at: str | None, resolved_at: str | None) -> str | None:
    began, ended = forms.when(started_at), forms.when(resolved_at)
    if state == "resolved":
        if began and ended:
            return f"firing from {began} to {ended}"
        return f"resolved {ended}" if ended else None
    return f"since {began}" if began else None


def render(
    rule: Rule,
    state: str,
    fact: dict[str, Any],
    *,
    key: str = "",
    flips: int = 0,
    occurrences: int = 1,
    what: str | None = None,
    started_at: str | None = None,
    resolved_at: str | None = None,
    notified_at: str | None = None,
) -> Message:
    """The notice for ``rule`` entering ``state`` (firing, repeat, resolved) on ``fact``;
    ``what``: its ``summary`` when the caller has it already. ``started_at``: when the
    alert started firing, ``resolved_at``: when it resolved, ``notified_at``: when this
    notice was made (ISO-8601 UTC; the details carry those given).

    Each form says what happened, where, since when, and links to it, once: Slack's
    body is one line with a context line under it (severity, rule, since when); an
    email has a short subject and the particulars (an advisory's package, versions
    and ids) as text and as a table.
    """
    repo = str(fact.get("repo") or "")
    what = summary(rule, state, fact) if what is None else what
    word = WORDS.get(state, state.upper())
    shown = severity(rule, fact)
    extra = []
    if flips > 1:
        extra.append(f"flapped {flips} times")
    if occurrences > 1 and state != "resolved":
        extra.append(f"seen {occurrences} times")
    tail = f" ({', '.join(extra)})" if extra else ""
    name, where = v(rule.name), v(repo)
    title = escape.single_line(escape.plain(f"[{word}] {name} — {where}: {what}"))
    url = subject_url(fact)
    since = _since(state, started_at, resolved_at)
    link_md = f" · <{url}|open>" if url else ""
    markdown = f"{ICONS.get(state, '')} *{word}* *{where}* — {what}{tail}{link_md}"
    context = " · ".join(
        part
        for part in (
            f"severity *{escape.slack_escape(shown)}*",
            f"rule `{escape.slack_escape(rule.name)}`",
            escape.slack_escape(since) if since else None,
        )
        if part
    )
    link_dc = f" [open]({url})" if url else ""
    discord = (
        f"{DISCORD_ICONS.get(state, '')} **{word}** {name} — **{where}**: {what}{tail}"
        f" ({v(shown)}){link_dc}"
    )
    rows: list[forms.Row] = [
        ("Severity", shown, None),
        ("Repository", repo, None),
        ("What happened", escape.single_line(escape.plain(what)) + tail, None),
        *([("When", since, None)] if since else []),
        *facts.kind(rule.fact).particulars(fact),
        *([("Link", url, url)] if url else []),
        ("Rule", rule.name if shown == rule.severity else f"{rule.name} ({rule.severity})", None),
    ]
    text = f"{word}: {rule.name}\n" + forms.rows_text(rows)
    html = (
        f"<p><strong>{escape.html_escape(word)}</strong>: {escape.html_escape(rule.name)}"
        f" — {escape.html_escape(repo)}</p>{forms.rows_html(rows)}"
    )
    return Message(
        title=title[:TITLE_LIMIT],
        subject=forms.subject(word, rule.name, repo),
        text=text,
        markdown=escape.slack(escape.single_line(markdown)).strip(),  # one line, as promised
        context=context,
        discord=escape.discord(discord).strip(),
        html=html,
        url=url,
        severity=shown if state != "resolved" else "info",
        state=state,
        dedup_key=key,
        source=repo or "pulsehook",
        details={
            "rule": rule.name,
            "fact": rule.fact,
            "repo": repo,
            "condition": rule.condition,
            "flips": flips,
            "occurrences": occurrences,
            "severity": shown,  # the alert's, even on a resolved notice
            "rule_severity": rule.severity,
            **{
                name: at
                for name, at in (
                    ("started_at", started_at),
                    ("resolved_at", resolved_at),
                    ("notified_at", notified_at),
                )
                if at is not None
            },
        },
    )
