"""Rendering notices (pure): a fact and an alert transition in, a Message out.

Rule ``message`` templates are Jinja2 in a sandbox over the plain fact data,
so a template can format but never reach objects or attributes beyond it.
"""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..notify.base import Message
from .model import Rule


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with the two operators that can allocate without bound capped."""

    intercepted_binops = frozenset(["*", "**"])
    LIMIT = 10_000

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        sizes = [len(v) for v in (left, right) if isinstance(v, str | list | tuple)]
        numbers = [v for v in (left, right) if isinstance(v, int | float)]
        if operator == "*" and sizes and any(abs(n) * sizes[0] > self.LIMIT for n in numbers):
            raise SecurityError("template result would be too large")
        if operator == "**" and any(abs(n) > 64 for n in numbers):
            raise SecurityError("exponent too large in a template")
        return super().call_binop(context, operator, left, right)


_ENV = _Sandbox(autoescape=False)
ICONS = {"firing": ":red_circle:", "repeat": ":red_circle:", "resolved": ":large_green_circle:"}
WORDS = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}


def check_template(source: str) -> str | None:
    try:
        _ENV.from_string(source)
    except TemplateError as exc:
        return str(exc)
    return None


def describe(kind: str, f: dict[str, Any]) -> str:
    """One line saying what happened, per fact kind."""
    if kind == "build":
        where = f"on {f.get('branch')}" if f.get("branch") else ""
        job = f" (job {f['job']})" if f.get("job") else ""
        return f"{f.get('workflow')}{job} {where}: {f.get('status')}".replace("  ", " ")
    if kind == "vulnerability":
        ident = f.get("ghsa_id") or f.get("cve_id") or f"#{f.get('number')}"
        return (
            f"{f.get('severity')} vulnerability in {f.get('package')} ({ident}):"
            f" {f.get('summary') or ''} [{f.get('state')}]"
        ).strip()
    if kind == "coverage":
        delta = f.get("delta")
        change = f" ({delta:+.2f})" if isinstance(delta, int | float) else ""
        value = f.get("value")
        shown = f"{value:.2f}%" if isinstance(value, int | float) else "?"
        return f"coverage on {f.get('branch')}: {shown}{change}"
    if kind == "dependency":
        return f"Dependabot PR #{f.get('number')}: {f.get('title')} [{f.get('state')}]"
    if kind == "push":
        forced = "force-" if f.get("forced") else ""
        return (
            f"{forced}push of {f.get('commits')} commit(s) to {f.get('branch')}"
            f" by {f.get('author')}"
        )
    if kind == "repo":
        return f"repository {f.get('action')}"
    if kind == "spec":
        return f"{f.get('path')}: {f.get('previous')} --> {f.get('status')} {f.get('note') or ''}"
    if kind == "health":
        return f"health score {f.get('previous')} --> {f.get('score')}"
    return kind


def subject_url(kind: str, f: dict[str, Any]) -> str | None:
    url = f.get("url")
    return url if isinstance(url, str) else None


def render(
    rule: Rule,
    state: str,
    fact: dict[str, Any],
    *,
    key: str = "",
    flips: int = 0,
    occurrences: int = 1,
) -> Message:
    """The notice for ``rule`` entering ``state`` (firing, repeat, resolved) on ``fact``."""
    repo = str(fact.get("repo") or "")
    what = describe(rule.fact, fact)
    if rule.message and state != "resolved":
        try:
            what = _ENV.from_string(rule.message).render({rule.fact: fact, **fact})[:2000]
        except Exception as exc:  # a template must never stop a notice
            what = f"{what} (message template failed: {exc})"
    word = WORDS.get(state, state.upper())
    extra = []
    if flips > 1:
        extra.append(f"flapped {flips} times")
    if occurrences > 1 and state != "resolved":
        extra.append(f"seen {occurrences} times")
    tail = f" ({', '.join(extra)})" if extra else ""
    title = f"[{word}] {rule.name} — {repo}: {what}"[:300]
    url = subject_url(rule.fact, fact)
    link_md = f" <{url}|open>" if url else ""
    markdown = f"{ICONS.get(state, '')} *{word}* `{rule.name}` — *{repo}*: {what}{tail}{link_md}"
    text = f"{word}: {rule.name}\nRepository: {repo}\n{what}{tail}\n" + (
        f"Link: {url}\n" if url else ""
    )
    return Message(
        title=title,
        text=text,
        markdown=markdown.strip(),
        url=url,
        severity=rule.severity if state != "resolved" else "info",
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
        },
    )
