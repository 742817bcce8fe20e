"""Escaping strings from outside (payloads, heartbeat reports) for where they go (pure).

Every string a payload carries is hostile: in Slack mrkdwn ``<!channel>`` pings a
whole channel, in Discord ``@everyone`` does and ``[text](url)`` hides a link, a
line break in a mail header adds headers, and in the summary files a line break
forges sections. Each destination has its own function here, and links are only
ever made to http(s) URLs.

Text that mixes pulsehook's own formatting with outside values is built once as
*marked* text: each outside value is wrapped by :func:`value` in two Unicode
noncharacters (which no value can carry: they are removed from it). Each format
is then derived from the same marked text, escaping only what is marked:
:func:`plain`, :func:`slack`, :func:`discord`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

# Noncharacters (U+FDD0, U+FDD1): never text, so free to delimit outside values.
OPEN, CLOSE = "\ufdd0", "\ufdd1"
_MARKS = str.maketrans("", "", OPEN + CLOSE)
_SEGMENTS = re.compile(f"({OPEN}|{CLOSE})")

# C0 and C1 controls (line breaks included), DEL, and Unicode's line/paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Characters Discord markdown gives a meaning to; a backslash makes each literal.
_DISCORD_SPECIAL = re.compile(r"([\\*_~`|>#\-\[\]()<])")
# A link target: http(s), a host, and none of what ends or splits a link in mrkdwn,
# markdown, org-mode or HTML (Slack's own rule is no "|", "<" or ">").
_NOT_IN_LINK = r"""\s\x00-\x1f\x7f-\x9f<>|()\[\]{}"'`\\"""
_LINK = re.compile(f"https?://[^/?#{_NOT_IN_LINK}]+(?:[/?#][^{_NOT_IN_LINK}]*)?", re.IGNORECASE)
LINK_LIMIT = 2048  # characters: longer URLs are not linked


def unmarked(text: str) -> str:
    """``text`` without the two marks, so no outside value can open or close a region."""
    return text.translate(_MARKS)


def value(item: Any) -> str:
    """An outside value, marked for escaping when the marked text is rendered."""
    return f"{OPEN}{unmarked(str(item))}{CLOSE}"


def _render(marked: str, escape: Callable[[str], str]) -> str:
    out: list[str] = []
    inside = False  # a cut-off value (no CLOSE) stays escaped to the end
    for part in _SEGMENTS.split(marked):
        if part == OPEN:
            inside = True
        elif part == CLOSE:
            inside = False
        elif part:
            out.append(escape(part) if inside else part)
    return "".join(out)


def plain(marked: str) -> str:
    """Marked text as plain text (nothing to escape)."""
    return unmarked(marked)


def slack(marked: str) -> str:
    """Marked text as Slack mrkdwn: outside values escaped, pulsehook's formatting kept."""
    return _render(marked, slack_escape)


def discord(marked: str) -> str:
    """Marked text as Discord markdown: outside values escaped, pulsehook's formatting kept."""
    return _render(marked, discord_escape)


def slack_escape(text: str) -> str:
    """Slack's three control characters as entities: no mention, channel ping or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def discord_escape(text: str) -> str:
    """Discord markdown made literal; a zero-width space after every ``@`` so no
    ``@everyone``, ``@here`` or ``<@id>`` is ever a mention."""
    return neutralise_mentions(_DISCORD_SPECIAL.sub(r"\\\1", text))


def neutralise_mentions(text: str) -> str:
    return text.replace("@", "@\u200b")


def html_escape(text: str) -> str:
    return html.escape(text, quote=True)


def single_line(text: str) -> str:
    """``text`` on one line: every control character (line breaks too) becomes a space."""
    return _CONTROL.sub(" ", text)


def header(text: str) -> str:
    """A mail header value: one line, no control character, no run of spaces."""
    return " ".join(single_line(text).split())


def link_url(url: Any) -> str | None:
    """``url`` if it can be a link target (http or https, nothing that breaks out of a
    link), else None: the caller then shows no link."""
    if not isinstance(url, str) or len(url) > LINK_LIMIT or not _LINK.fullmatch(url):
        return None
    return url
