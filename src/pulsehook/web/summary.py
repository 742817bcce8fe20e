"""The summary over HTTP, and heartbeats: ``POST /api/v1/heartbeats/{owner}/{repo}/{path}``.

Heartbeat and report tokens (``PULSEHOOK_HEARTBEAT_TOKENS``) may be scoped to
repositories (``Settings.heartbeat_scopes``): a token outside its scope gets 403,
an unknown one 401. A heartbeat changes only heartbeat items (its own, or ones
declared in rules/); an item webhooks keep answers 409. What a heartbeat stores
is bounded, and a longer value is refused (422), not cut: a cut note can say
the opposite of the whole one ("ok, no" + "t restored"), and the sender, told
only "accepted", would never know.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import BadRequest, PayloadTooLarge
from ..summary import items, service
from .auth import credential, matches
from .responses import error
from .services import services

MEDIA = {
    "summary.md": "text/markdown; charset=utf-8",
    "summary.org": "text/plain; charset=utf-8",
    "summary.md.json": "application/json",
}

NOTE_LIMIT = 1024  # bytes (UTF-8) of a heartbeat's note, after trimming
PATH_LIMIT = 512  # bytes of an item's path within its repository
# A request body: a note of NOTE_LIMIT bytes, even all JSON escapes, fits many times.
BODY_LIMIT = 64 * 1024
# GitHub's owner and repository names (39 and 100 characters); dots and underscores
# for the repositories, and for an enterprise's "_shortcode" user names.
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

Scope = tuple[str, ...]


def token_scope(given: str | None, tokens: list[tuple[bytes, Scope]]) -> Scope | None:
    """The repository patterns ``given`` may report for; None if it is none of ``tokens``
    (``Settings.heartbeat_scopes()``).

    Each token is compared in constant time, and all of them always are.
    """
    patterns: list[str] = []
    known = False
    for token, scope in tokens:
        if matches(given, [token]):
            known = True
            patterns.extend(scope)
    return tuple(patterns) if known else None


def covers(scope: Scope, full_name: str) -> bool:
    """Whether a token's patterns cover ``owner/repo`` (case-insensitive, as GitHub's names)."""
    name = full_name.lower()
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in scope)


def forbidden(full_name: str) -> str:
    return f"this token may not report for {full_name}"


def text_problem(field: str, value: str, limit: int) -> tuple[str, str] | None:
    """Why a text cannot be stored (an error code and message), or None: past ``limit``
    bytes of UTF-8, or not UTF-8 at all (a lone surrogate from a JSON escape)."""
    try:
        length = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "invalid", f"{field} is not valid Unicode text"
    if length > limit:
        return "too_long", f"{field} is {length} bytes: at most {limit} are accepted"
    return None


def item_problem(owner: str, repo: str, path: str) -> str | None:
    """Why ``owner/repo/path`` cannot name a heartbeat item, or None."""
    for field, name in (("owner", owner), ("repo", repo)):
        if not _NAME.fullmatch(name) or name in (".", ".."):
            return f"{field} must be a GitHub name (letters, digits, '-', '_', '.'; 1 to 100)"
    if not path:
        return "path must not be empty"
    if _CONTROL.search(path):
        return "path must not contain control characters"
    problem = text_problem("path", path, PATH_LIMIT)
    return problem[1] if problem else None


def note_text(value: Any) -> str | None:
    """A note as stored: trimmed text (numbers as written), None if empty; else BadRequest."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadRequest("note must be text")
    return str(value).strip() or None


async def read_body(request: Request, limit: int = BODY_LIMIT) -> bytes:
    """The request body, read no further than ``limit`` bytes (PayloadTooLarge past it)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and len(declared) <= 12 and int(declared) > limit:
        raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
    return bytes(body)


async def fields_of(request: Request) -> dict[str, Any]:
    """A heartbeat's fields: a JSON object, a form, or nothing (query parameters only)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/json", "application/x-www-form-urlencoded"):
        return {}
    body = await read_body(request)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("body is not UTF-8") from exc
    if kind == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=20))
        except ValueError as exc:
            raise BadRequest("form has too many fields") from exc
    try:
        fields = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise BadRequest("body is not valid JSON") from exc
    if not isinstance(fields, dict):
        raise BadRequest("body must be a JSON object")
    return fields


async def latest(request: Request, name: str) -> str | None:
    svc = services(request)
    generated = svc.summarizer.latest
    if generated is not None:
        return generated.files()[name]
    if svc.presence is not None:
        # A replica that does not lead: the summary as the shared store has it now.
        now, target = svc.clock.now(), svc.summarizer.target
        mode = {"summary.md": "md", "summary.org": "org", "summary.md.json": "json"}[name]
        return await svc.readers.run(
            lambda db: service.preview(db, now=now, target=target, mode=mode)
        )
    # Not kept by this process (``serve --no-worker``): the worker's files on disk.
    path = svc.settings.data_dir / name
    return await asyncio.to_thread(path.read_text, "utf-8") if path.exists() else None


async def serve_summary(request: Request) -> Response:
    name = request.url.path.lstrip("/")
    body = await latest(request, name)
    if body is None:
        return error(503, "not_ready", "the summary has not been generated yet")
    return Response(body, media_type=MEDIA[name])


async def heartbeat(request: Request) -> JSONResponse:
    svc = services(request)
    tokens = svc.settings.heartbeat_scopes()
    if not tokens:
        return error(
            403,
            "heartbeats_disabled",
            "no heartbeat token configured: set PULSEHOOK_HEARTBEAT_TOKENS",
        )
    scope = token_scope(credential(request), tokens)
    if scope is None:
        return error(401, "unauthorized", "missing or wrong heartbeat token")
    owner = request.path_params["owner"]
    repo = request.path_params["repo"]
    path = request.path_params["path"]
    if (problem := item_problem(owner, repo, path)) is not None:
        return error(422, "invalid", problem)
    if not covers(scope, f"{owner}/{repo}"):
        return error(403, "forbidden", forbidden(f"{owner}/{repo}"))
    path, signal = split_signal(path)
    fields = await fields_of(request)
    report = str(fields.get("report") or request.query_params.get("report") or "GOOD").upper()
    if report not in ("GOOD", "BAD"):
        raise BadRequest("report must be GOOD or BAD")
    note = note_text(fields.get("note") or request.query_params.get("note"))
    if signal is not None:
        report = signal.report
        note = note or signal.note
    if note is not None and (refused := text_problem("note", note, NOTE_LIMIT)) is not None:
        return error(422, *refused)
    recorded = await record(request, owner, repo, path, report, note)
    if recorded is None:
        return error(409, "conflict", kept_message(f"{owner}/{repo}/{path}"))
    return JSONResponse(recorded, status_code=202)


@dataclass(frozen=True)
class Signal:
    """What a path's last segment says, as healthchecks' ping URLs do."""

    report: str  # GOOD, BAD or START
    note: str | None = None


def split_signal(path: str) -> tuple[str, Signal | None]:
    """``jobs/backup/start`` -> (``jobs/backup``, START); ``…/fail`` is BAD; ``…/0``
    to ``…/255`` an exit status (0 GOOD, else BAD, "exit status N"). A path of one
    segment is always the item's own name."""
    head, _, last = path.rpartition("/")
    if not head:
        return path, None
    if last == "start":
        return head, Signal(items.START)
    if last == "fail":
        return head, Signal("BAD")
    if last.isascii() and last.isdigit() and len(last) <= 3 and int(last) <= 255:
        status = int(last)
        return head, Signal("GOOD") if status == 0 else Signal("BAD", f"exit status {status}")
    return path, None


def kept_message(item_path: str) -> str:
    return f"{item_path} is kept by webhooks: heartbeats cannot change it"


async def record(
    request: Request, owner: str, repo: str, path: str, report: str, note: str | None
) -> dict[str, Any] | None:
    """Store a heartbeat report and let the summary know; None if webhooks keep the item."""
    svc = services(request)
    now = svc.clock.now()
    item_path = f"{owner}/{repo}/{path}"
    accepted = await svc.writer.run(
        lambda db: items.record_heartbeat(
            db,
            path=item_path,
            owner=owner,
            repo=repo,
            report=report,
            note=note,
            now=now,
            tz=svc.settings.timezone,
        )
    )
    if accepted is None:
        return None
    if accepted.started:
        # A run began: nothing in the summary changed.
        return {"path": item_path, "started": True}
    svc.summarizer.changed()
    return {"path": item_path, "report": report, "note": note, "run_seconds": accepted.run_seconds}
