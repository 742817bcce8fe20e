"""Badges: a repository's health score or build state for a README.

``GET /badge/{owner}/{repo}.svg`` is an SVG badge in the flat two-part style of
shields.io (label on grey, value on its colour); ``GET /badge/{owner}/{repo}.json``
the same as shields.io endpoint JSON (``https://img.shields.io/endpoint?url=...``).
``?kind=health`` (the default: the score as the dashboard shows it) or ``?kind=build``
(the default branch's build state); ``?label=`` replaces the label. Colours follow
the dashboard's grades (web/grades.py). Everything is drawn here: no font or
anything else is fetched, and text widths come from a table of Verdana 11px.

Access. The API token middleware guards ``/api/`` and ``/metrics`` only; a badge
is decided here. Without the API token (``Authorization: Bearer``, never from the
query string: a badge's address ends up in READMEs) only a repository that
``PULSEHOOK_PUBLIC_REPOS`` names answers, and any other, known or not, gets the very
404 an unknown one gets, before the store is even asked: a badge never tells which
private repositories exist. With the token, every known repository answers.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..settings import Settings
from ..store import metrics
from ..store.db import Tx
from ..store.queries import find_repos
from .auth import authorization, matches
from .grades import Grade, build_grade, score_grade, score_text
from .models import read_query
from .services import services

MAX_LABEL = 64  # characters of a ?label=
MAX_NAME = 100  # characters of an owner or a repository name on GitHub
CACHE = "max-age=300"  # GitHub's image proxy (camo) keeps a badge this long
SVG_TYPE = "image/svg+xml; charset=utf-8"
JSON_TYPE = "application/json"
# An SVG opened on its own runs nothing and loads nothing, whatever it says.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Vary": "Authorization",  # with the token, more repositories answer
}
LABEL_GREY = "#555"
# Each grade as shields.io names its colour (the JSON) and as it draws it (the SVG).
COLOURS: dict[Grade, tuple[str, str]] = {
    "good": ("brightgreen", "#4c1"),
    "fair": ("yellow", "#dfb317"),
    "poor": ("red", "#e05d44"),
    "none": ("lightgrey", "#9f9f9f"),
}
NOT_FOUND = {
    "error": {
        "code": "not_found",
        "message": "unknown repository, or one PULSEHOOK_PUBLIC_REPOS does not name",
    }
}

# Advance widths of Verdana at 11px, from ' ' (32) to '~' (126), as shields.io
# measures text. Anything else counts as WIDE when East Asian wide, else OTHER.
_ASCII_WIDTHS = (
    3.87, 4.33, 5.05, 9.0, 6.99, 11.84, 7.99, 2.95, 5.0, 5.0, 6.99, 9.0, 4.0, 5.0, 4.0, 5.0,
    6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 5.0, 5.0, 9.0, 9.0, 9.0, 6.0,
    11.0, 7.52, 7.54, 7.68, 8.48, 6.96, 6.32, 8.53, 8.27, 4.63, 5.0, 7.62, 6.12, 9.27, 8.23,
    8.66, 6.63, 8.66, 7.65, 7.52, 6.78, 8.05, 7.52, 10.88, 7.54, 6.77, 7.54, 5.0, 5.0, 5.0,
    9.0, 6.99, 6.99, 6.61, 6.85, 5.73, 6.85, 6.55, 3.87, 6.85, 6.96, 3.02, 3.79, 6.51, 3.02,
    10.7, 6.96, 6.68, 6.85, 6.85, 4.69, 5.73, 4.33, 6.96, 6.51, 9.0, 6.51, 6.51, 5.78, 6.98,
    5.0, 6.98, 9.0,
)  # fmt: skip
OTHER, WIDE = 7.0, 11.0
PADDING = 5  # each side of a text
# Characters XML 1.0 cannot hold even escaped (controls, surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
ONE_LINE = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"


class BadgeQuery(BaseModel):
    """A badge's parameters; unknown ones (a cache buster) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["health", "build"] = Field("health", description="what the badge shows")
    label: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_LABEL,
        pattern=ONE_LINE,
        description="the text on the left, instead of the kind",
    )


@dataclass(frozen=True)
class Badge:
    label: str
    message: str
    grade: Grade


def text_width(text: str) -> int:
    """How wide ``text`` is in Verdana 11px, in whole pixels."""
    total = 0.0
    for char in text:
        code = ord(char)
        if 32 <= code <= 126:
            total += _ASCII_WIDTHS[code - 32]
        elif unicodedata.combining(char) or unicodedata.category(char) in ("Cc", "Cf"):
            continue
        else:
            total += WIDE if unicodedata.east_asian_width(char) in ("W", "F") else OTHER
    return math.ceil(total)


def xml(text: str) -> str:
    """``text`` as XML character data or an attribute value (quoted with ")."""
    text = _NOT_XML.sub("\ufffd", text)
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def svg(label: str, message: str, colour: str) -> str:
    """A flat two-part badge; coordinates of texts in tenths of a pixel, as shields
    draws them (``textLength`` holds each to its measured width)."""
    label_w, message_w = text_width(label), text_width(message)
    left, right = label_w + 2 * PADDING, message_w + 2 * PADDING
    total = left + right
    title = xml(f"{label}: {message}")
    words = xml(label), xml(message)
    texts = "".join(
        f'<text aria-hidden="true" x="{x}" y="150" fill="#010101" fill-opacity=".3"'
        f' transform="scale(.1)" textLength="{width * 10}">{text}</text>'
        f'<text x="{x}" y="140" transform="scale(.1)" fill="#fff"'
        f' textLength="{width * 10}">{text}</text>'
        for x, width, text in (
            (left * 5, label_w, words[0]),
            (left * 10 + right * 5, message_w, words[1]),
        )
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20"'
        f' role="img" aria-label="{title}"><title>{title}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb"'
        ' stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="{LABEL_GREY}"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{xml(colour)}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif"'
        f' text-rendering="geometricPrecision" font-size="110">{texts}</g></svg>'
    )


def is_public(settings: Settings, full_name: str) -> bool:
    """Whether ``PULSEHOOK_PUBLIC_REPOS`` names the repository (in any case)."""
    owner, _, _ = full_name.lower().partition("/")
    wanted = {full_name.lower(), f"{owner}/*"}
    return any(entry in wanted for entry in settings.public_repos)


def has_token(request: Request, settings: Settings) -> bool:
    if settings.api_token is None:
        return False
    return matches(authorization(request), [settings.api_token.get_secret_value().encode()])


def health_badge(row: dict[str, Any]) -> Badge:
    score = row["health_score"]
    if score is None:
        return Badge("health", "unknown", "none")
    provisional = bool(row.get("provisional"))
    return Badge("health", score_text(score, provisional), score_grade(score, provisional))


def build_badge(row: dict[str, Any]) -> Badge:
    state = row["metrics"]["build_status"]
    grade = build_grade(state)
    if state is None:
        return Badge("build", "unknown", grade)
    message = {"good": "passing", "poor": "failing"}.get(grade, state.replace("_", " "))
    # Green, red or grey: a run that said nothing (cancelled, skipped) is no warning.
    return Badge("build", message, "none" if grade == "fair" else grade)


def _summary(db: Tx, name: str, now: datetime) -> dict[str, Any] | None:
    """The live repository of this full name (the exact spelling first, else the only
    one in any case), in the API's shape; None when there is none."""
    found = find_repos(db, name, any_case=True)
    exact = [r for r in found if r.full_name == name]
    chosen = exact[0] if exact else found[0] if len(found) == 1 else None
    return None if chosen is None else metrics.one_repo(db, chosen.id, now)


def _answer(request: Request, body: bytes, media_type: str) -> Response:
    tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = HEADERS | {"Cache-Control": CACHE, "ETag": tag}
    given = request.headers.get("if-none-match", "")
    offered = {t.strip().removeprefix("W/") for t in given.split(",")}
    if tag in offered or "*" in offered:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _not_found(svg_wanted: bool) -> Response:
    headers = HEADERS | {"Cache-Control": "no-cache"}
    if svg_wanted:
        body = svg("badge", "not found", COLOURS["none"][1])
        return Response(body, status_code=404, media_type=SVG_TYPE, headers=headers)
    return Response(json.dumps(NOT_FOUND), status_code=404, media_type=JSON_TYPE, headers=headers)


async def _badge(request: Request, *, svg_wanted: bool) -> Response:
    svc = services(request)
    query = read_query(request, BadgeQuery)
    owner, repo = request.path_params["owner"], request.path_params["repo"]
    if not (0 < len(owner) <= MAX_NAME and 0 < len(repo) <= MAX_NAME):
        return _not_found(svg_wanted)
    name = f"{owner}/{repo}"
    if not has_token(request, svc.settings) and not is_public(svc.settings, name):
        return _not_found(svg_wanted)
    now = svc.clock.now()
    row = await svc.readers.run(lambda db: _summary(db, name, now))
    if row is None:
        return _not_found(svg_wanted)
    badge = health_badge(row) if query.kind == "health" else build_badge(row)
    label = query.label if query.label is not None else badge.label
    colour_name, colour = COLOURS[badge.grade]
    if svg_wanted:
        return _answer(request, svg(label, badge.message, colour).encode(), SVG_TYPE)
    endpoint = {"schemaVersion": 1, "label": label, "message": badge.message}
    return _answer(request, json.dumps(endpoint | {"color": colour_name}).encode(), JSON_TYPE)


async def svg_badge(request: Request) -> Response:
    return await _badge(request, svg_wanted=True)


async def json_badge(request: Request) -> Response:
    return await _badge(request, svg_wanted=False)


ROUTES = [
    Route("/badge/{owner}/{repo}.svg", svg_badge, methods=["GET"]),
    Route("/badge/{owner}/{repo}.json", json_badge, methods=["GET"]),
]
