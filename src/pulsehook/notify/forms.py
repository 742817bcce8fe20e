"""Pieces every notice is written with (pure): times for a reader, an email subject
that fits, and a notice's particulars as plain text and as HTML.

Values here are payload text: each form escapes them for itself, and links are
made to http(s) URLs only (``escape.link_url``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from ..clock import parse_iso
from . import escape

SUBJECT_LIMIT = 78  # characters: one header line (RFC 5322), as much as mail clients show
SUBJECT_RULE = 32  # characters of a rule's name a subject keeps before the repository
ELLIPSIS = "…"
# A notice's particular: (label, value, link or None).
Row = tuple[str, Any, Any]


def when(at: str | None) -> str | None:
    """An ISO-8601 UTC time as a reader reads it: ``2026-01-31 08:00 UTC``."""
    if not at:
        return None
    try:
        moment = parse_iso(at).astimezone(UTC)
    except ValueError:
        return escape.single_line(str(at))
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, an ellipsis where it was cut."""
    text = escape.header(text)
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + ELLIPSIS


def subject(word: str, what: str, repo: str = "", limit: int = SUBJECT_LIMIT) -> str:
    """``[FIRING] rule in octo/repo`` in under ``limit`` characters: the state word
    whole, the rule (or short what) cut first to ``SUBJECT_RULE``, then the repository.
    The words between are ASCII: mail clients join encoded words (an ellipsis, a dash)
    with the space between them."""
    head = f"[{word}] "
    what, repo = escape.header(what), escape.header(repo)
    if not repo:
        return cut(head + what, limit)
    whole = f"{head}{what} in {repo}"
    if len(whole) <= limit:
        return whole
    what = cut(what, max(SUBJECT_RULE, limit - len(head) - len(repo) - 4))
    return cut(f"{head}{what} in {repo}", limit)


def ids(fact: dict[str, Any] | None) -> list[str]:
    """The advisory ids a fact carries (GHSA, CVE), for a line that names it."""
    if not isinstance(fact, dict):
        return []
    return [str(fact[k]) for k in ("ghsa_id", "cve_id") if fact.get(k)]


def rows_text(rows: Sequence[Row]) -> str:
    """``Label: value`` lines, the link after its value."""
    lines = []
    for label, value, link in rows:
        url = escape.link_url(link)
        shown = escape.single_line(str(value))
        lines.append(f"{label}: {shown}" + (f" {url}" if url and url != shown else ""))
    return "\n".join(lines) + ("\n" if lines else "")


def rows_html(rows: Sequence[Row]) -> str:
    """A two-column table of the particulars, every value escaped."""
    cells = []
    for label, value, link in rows:
        shown = escape.html_escape(escape.single_line(str(value)))
        url = escape.link_url(link)
        if url:
            shown = f'<a href="{escape.html_escape(url)}">{shown}</a>'
        cells.append(
            f'<tr><th scope="row" style="text-align:left;padding-right:1em">'
            f"{escape.html_escape(label)}</th><td>{shown}</td></tr>"
        )
    return f"<table>{''.join(cells)}</table>" if cells else ""
