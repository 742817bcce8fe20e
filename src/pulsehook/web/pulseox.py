"""A GitHub-contents-compatible API, so unmodified pulseox clients talk to pulsehook.

With ``DEFAULT_PULSEOX_URL=http://host:8000/pulseox``: the pulseox client's
``post()`` (GET for the sha, then PUT) stores its report file here, and the
report is a heartbeat for that path; ``PulseOxDashboard.get_remote_data()``
reads ``summary.md.json``. Answers use GitHub's shapes and status codes
(200/201/403/404/409/422), with pulsehook's error object alongside ``message``.

A token reads and writes only the repositories its scope covers (the summary
files are every token's to read); a PUT is refused (409) for an item webhooks
keep, and the file and its note are bounded, as a heartbeat's are. Only the
current version of each file is kept, with its sha: a client reads by path and
sends that sha back with its next PUT, so older versions serve no one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..errors import PayloadTooLarge
from ..notify.escape import single_line
from ..store import pulseox as files
from ..store import summary as summary_store
from ..store.db import Tx
from ..store.summary import ItemRow
from ..summary import items
from ..summary.service import FILES
from .auth import authorization
from .services import services
from .summary import (
    BODY_LIMIT,
    NOTE_LIMIT,
    Scope,
    covers,
    forbidden,
    item_problem,
    kept_message,
    latest,
    read_body,
    text_problem,
    token_scope,
)

# Bytes of a stored report file: pulseox's metadata block, a note of NOTE_LIMIT
# bytes, and the client's own few lines of content.
CONTENT_LIMIT = 16 * 1024

# pulseox's own metadata block: "# Metadata" (or "* Metadata") then "- key: value" lines.
_METADATA = re.compile(r"(?:^|\n)(?:#|\*) Metadata\n(.*?)(?:\n(?:#|\*)|$)", re.DOTALL)


def github_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"message": message, "error": {"code": code, "message": message}}, status_code=status
    )


def blob_sha(content: bytes) -> str:
    """The sha GitHub gives a file: git's blob hash."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def parse_metadata(content: str) -> dict[str, str]:
    match = _METADATA.search(content)
    fields: dict[str, str] = {}
    for line in match.group(1).split("\n") if match else []:
        line = line.strip()
        if line.startswith("- ") and ": " in line:
            key, value = line[2:].split(": ", 1)
            fields[key] = value
    return fields


def file_json(owner: str, repo: str, path: str, content: bytes) -> dict[str, Any]:
    encoded = base64.encodebytes(content).decode()  # GitHub wraps lines, too
    return {
        "type": "file",
        "encoding": "base64",
        "size": len(content),
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "content": encoded,
        "sha": blob_sha(content),
        "url": f"/repos/{owner}/{repo}/contents/{path}",
    }


def synthesized(row: ItemRow) -> bytes:
    """A pulseox report file for an item pulsehook knows from webhooks."""
    lines = ["# Metadata", f"- report: {row['report']}", f"- updated: {row['updated'] or ''}"]
    if row["note"]:
        # One line: a newline in a note would forge metadata pulseox parses.
        lines.append(f"- note: {single_line(row['note'])}")
    return ("\n".join(lines) + "\n").encode()


def _auth(request: Request) -> JSONResponse | Scope:
    """The token's scope, or the answer refusing it."""
    tokens = services(request).settings.heartbeat_scopes()
    if not tokens:
        return github_error(
            401, "unauthorized", "no token configured: set PULSEHOOK_HEARTBEAT_TOKENS"
        )
    scope = token_scope(authorization(request), tokens)
    if scope is None:
        return github_error(401, "unauthorized", "Bad credentials")
    return scope


async def get_contents(request: Request) -> JSONResponse:
    scope = _auth(request)
    if isinstance(scope, JSONResponse):
        return scope
    svc = services(request)
    owner, repo, path = (request.path_params[k] for k in ("owner", "repo", "path"))
    if (owner, repo) == (svc.settings.summary_owner, svc.settings.summary_repo) and path in FILES:
        body = await latest(request, path)
        if body is not None:
            return JSONResponse(file_json(owner, repo, path, body.encode()))
    if not covers(scope, f"{owner}/{repo}"):
        return github_error(403, "forbidden", f"this token may not read {owner}/{repo}")

    def find(db: Tx) -> str | ItemRow | None:
        """The stored file's text, else the item webhooks report, else None."""
        stored = files.stored(db, owner, repo, path)
        if stored is not None:
            return stored["content"]
        return summary_store.item(db, f"{owner}/{repo}/{path}")

    found = await svc.readers.run(find)
    if found is None:
        return github_error(404, "not_found", "Not Found")
    content = found.encode() if isinstance(found, str) else synthesized(found)
    return JSONResponse(file_json(owner, repo, path, content))


# The contents API's checks in GitHub's order, each answered as GitHub answers it.
async def put_contents(request: Request) -> JSONResponse:  # noqa: C901
    scope = _auth(request)
    if isinstance(scope, JSONResponse):
        return scope
    svc = services(request)
    owner, repo, path = (request.path_params[k] for k in ("owner", "repo", "path"))
    if (problem := item_problem(owner, repo, path)) is not None:
        return github_error(422, "invalid", f"Invalid request: {problem}")
    if not covers(scope, f"{owner}/{repo}"):
        return github_error(403, "forbidden", forbidden(f"{owner}/{repo}"))
    try:
        body = json.loads(await read_body(request, BODY_LIMIT))
        content = base64.b64decode(body["content"], validate=False)
        text = content.decode("utf-8")
    except PayloadTooLarge as exc:
        return github_error(413, "payload_too_large", exc.message)
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        return github_error(422, "invalid", "Invalid request: content must be base64 UTF-8")
    if not isinstance(body, dict):
        return github_error(422, "invalid", "Invalid request")
    if len(content) > CONTENT_LIMIT:
        return github_error(
            422,
            "too_long",
            f"content is {len(content)} bytes: at most {CONTENT_LIMIT} are accepted",
        )
    fields = parse_metadata(text)
    report = fields.get("report", "").upper()
    note = (fields.get("note") or "").strip() or None
    if report not in ("GOOD", "BAD", "NOT_REPORTED"):
        # pulseox reads an unknown report, or none, as BAD.
        shown = fields.get("report", "")[:40]
        note = f"report {shown or '(missing)'!r} treated as bad"
        report = "BAD"
    if note is not None and (refused := text_problem("note", note, NOTE_LIMIT)) is not None:
        return github_error(422, *refused)
    given_sha = body.get("sha")
    now = svc.clock.now()
    new_sha = blob_sha(content)
    item_path = f"{owner}/{repo}/{path}"

    def store(db: Tx) -> int:
        # The file and its heartbeat in one transaction: both, or neither.
        if items.kept_by_webhooks(db, item_path):
            return 0
        stored = files.stored(db, owner, repo, path)
        stored_sha = stored["sha"] if stored is not None else None
        if stored_sha is not None and not given_sha:
            return 422
        if stored_sha is not None and given_sha != stored_sha:
            return 409
        files.store_file(db, owner, repo, path, text=text, sha=new_sha, at=now)
        items.record_heartbeat(
            db,
            path=item_path,
            owner=owner,
            repo=repo,
            report=report,
            note=note,
            now=now,
            tz=svc.settings.timezone,
        )
        return 200 if stored_sha is not None else 201

    status = await svc.writer.run(store)
    if status == 0:
        return github_error(409, "conflict", kept_message(item_path))
    if status == 422:
        return github_error(422, "sha_missing", 'Invalid request. "sha" wasn\'t supplied.')
    if status == 409:
        return github_error(409, "sha_mismatch", f"{path} does not match {given_sha}")
    svc.summarizer.changed()
    commit = hashlib.sha1(f"{new_sha}{now}".encode(), usedforsecurity=False).hexdigest()
    return JSONResponse(
        {
            "content": file_json(owner, repo, path, content) | {"content": None},
            "commit": {
                "sha": commit,
                "message": body.get("message", ""),
                "author": {"date": now.isoformat()},
            },
        },
        status_code=status,
    )


def routes() -> list[Route]:
    pattern = "/repos/{owner}/{repo}/contents/{path:path}"
    return [
        Route(pattern, get_contents, methods=["GET"]),
        Route(pattern, put_contents, methods=["PUT"]),
    ]
