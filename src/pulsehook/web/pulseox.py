"""A GitHub-contents-compatible API, so unmodified pulseox clients talk to pulsehook.

With ``DEFAULT_PULSEOX_URL=http://host:8000/pulseox``: the pulseox client's
``post()`` (GET for the sha, then PUT) stores its report file here, and the
report is a heartbeat for that path; ``PulseOxDashboard.get_remote_data()``
reads ``summary.md.json``. Answers use GitHub's shapes and status codes
(200/201/404/409/422), with pulsehook's error object alongside ``message``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from sqlite_utils import Database
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..clock import iso
from ..summary.service import FILES
from .auth import authorization, matches
from .services import services
from .summary import latest, record

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


def synthesized(row: dict[str, Any]) -> bytes:
    """A pulseox report file for an item pulsehook knows from webhooks."""
    lines = ["# Metadata", f"- report: {row['report']}", f"- updated: {row['updated'] or ''}"]
    if row["note"]:
        lines.append(f"- note: {row['note']}")
    return ("\n".join(lines) + "\n").encode()


def _auth(request: Request) -> JSONResponse | None:
    settings = services(request).settings
    if not settings.heartbeat_token_list():
        return github_error(
            401, "unauthorized", "no token configured: set PULSEHOOK_HEARTBEAT_TOKENS"
        )
    if not matches(authorization(request), settings.heartbeat_token_list()):
        return github_error(401, "unauthorized", "Bad credentials")
    return None


async def get_contents(request: Request) -> JSONResponse:
    denied = _auth(request)
    if denied:
        return denied
    svc = services(request)
    owner, repo, path = (request.path_params[k] for k in ("owner", "repo", "path"))
    if (owner, repo) == (svc.settings.summary_owner, svc.settings.summary_repo) and path in FILES:
        body = await latest(request, path)
        if body is not None:
            return JSONResponse(file_json(owner, repo, path, body.encode()))

    def find(db: Database) -> tuple[str, Any] | None:
        row = next(
            db.query(
                "SELECT content FROM pulseox_files WHERE owner = ? AND repo = ? AND path = ?",
                (owner, repo, path),
            ),
            None,
        )
        if row:
            return "file", row["content"]
        item = next(
            db.query("SELECT * FROM summary_items WHERE path = ?", (f"{owner}/{repo}/{path}",)),
            None,
        )
        return ("item", item) if item else None

    found = await svc.readers.run(find)
    if found is None:
        return github_error(404, "not_found", "Not Found")
    kind, value = found
    content = value.encode() if kind == "file" else synthesized(value)
    return JSONResponse(file_json(owner, repo, path, content))


async def put_contents(request: Request) -> JSONResponse:
    denied = _auth(request)
    if denied:
        return denied
    svc = services(request)
    owner, repo, path = (request.path_params[k] for k in ("owner", "repo", "path"))
    try:
        body = await request.json()
        content = base64.b64decode(body["content"], validate=False)
        text = content.decode("utf-8")
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        return github_error(422, "invalid", "Invalid request: content must be base64 UTF-8")
    if not isinstance(body, dict):
        return github_error(422, "invalid", "Invalid request")
    given_sha = body.get("sha")
    now = svc.clock.now()
    new_sha = blob_sha(content)

    def store(db: Database) -> int:
        row = next(
            db.query(
                "SELECT sha FROM pulseox_files WHERE owner = ? AND repo = ? AND path = ?",
                (owner, repo, path),
            ),
            None,
        )
        if row and not given_sha:
            return 422
        if row and given_sha != row["sha"]:
            return 409
        db.execute(
            "INSERT OR REPLACE INTO pulseox_files (owner, repo, path, content, sha,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (owner, repo, path, text, new_sha, iso(now)),
        )
        return 200 if row else 201

    status = await svc.writer.run(store)
    if status == 422:
        return github_error(422, "sha_missing", 'Invalid request. "sha" wasn\'t supplied.')
    if status == 409:
        return github_error(409, "sha_mismatch", f"{path} does not match {given_sha}")
    fields = parse_metadata(text)
    report = fields.get("report", "").upper()
    note = fields.get("note")
    if report not in ("GOOD", "BAD", "NOT_REPORTED"):
        # pulseox reads an unknown report, or none, as BAD.
        note = f"report {report or '(missing)'!r} treated as bad"
        report = "BAD"
    await record(request, owner, repo, path, report, note)
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
