"""``POST /api/v1/report``: a CI step reports what webhooks cannot (the seed's
"Report to Pulse"): a job's status, a coverage figure. Stored as a delivery,
so it goes through the same store -> rules -> summary path as a webhook.

The token (``PULSEHOOK_HEARTBEAT_TOKENS``) must cover the repository reported
for (403 otherwise), and every stored field is bounded: a value past its bound
is refused (422 naming the field and the bound), as heartbeat notes are.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..clock import iso
from ..errors import BadRequest
from ..store import queries
from ..store.deliveries import Delivery
from .auth import credential
from .responses import error
from .services import services
from .summary import covers, forbidden, read_body, text_problem, token_scope

STATUSES = ("success", "failure", "cancelled", "skipped", "timed_out", "neutral")
# Bytes (UTF-8) of each text field. A workflow's name becomes its summary item's path.
LIMITS = {"workflow": 256, "job": 256, "branch": 256, "id": 128, "url": 2048}
REPO_LIMIT = 140  # "owner/name": GitHub's 39 and 100 characters, and the slash
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
NUMBER_MAX = 2**63 - 1  # run_id and attempt: SQLite integers


def field_problem(name: str, value: Any) -> tuple[str, str] | None:
    """Why a report's field cannot be stored (code, message), or None; absent is fine."""
    if value is None:
        return None
    if name in ("run_id", "attempt"):
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= NUMBER_MAX:
            return "invalid", f"{name} must be a whole number from 0 to {NUMBER_MAX}"
        return None
    if name == "id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return "invalid", f"{name} must be a string"
    if name == "sha":
        return None if _SHA.fullmatch(value) else ("invalid", "sha must be 7 to 64 hex digits")
    if (problem := text_problem(name, value, LIMITS[name])) is not None:
        return problem
    if _CONTROL.search(value):
        return "invalid", f"{name} must be one line without control characters"
    if name == "url":
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            return "invalid", "url must be an http(s) URL"
        if any(c.isspace() for c in value):
            return "invalid", "url must not contain spaces"
    return None


async def report(request: Request) -> JSONResponse:
    svc = services(request)
    tokens = svc.settings.heartbeat_scopes()
    if not tokens:
        return error(
            403, "reports_disabled", "no report token configured: set PULSEHOOK_HEARTBEAT_TOKENS"
        )
    scope = token_scope(credential(request), tokens)
    if scope is None:
        return error(401, "unauthorized", "missing or wrong report token")
    try:
        body: Any = json.loads(await read_body(request))
    except ValueError as exc:  # not JSON, or not UTF-8
        raise BadRequest("body must be JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("repo"), str):
        raise BadRequest('give at least {"repo": "owner/name", "status": ...}')
    name = body["repo"]
    if (refused := text_problem("repo", name, REPO_LIMIT)) is not None:
        return error(422, *refused)
    # Before anything is looked up: a token learns nothing about other repositories.
    if not covers(scope, name):
        return error(403, "forbidden", forbidden(name))
    status = body.get("status")
    coverage = body.get("coverage")
    if status is None and coverage is None:
        raise BadRequest("a report needs a status, a coverage figure, or both")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}")
    if coverage is not None and (
        not isinstance(coverage, int | float)
        or isinstance(coverage, bool)
        or not 0 <= coverage <= 100
    ):
        raise BadRequest("coverage must be a percentage from 0 to 100")
    for field in (*LIMITS, "sha", "run_id", "attempt"):
        if (refused := field_problem(field, body.get(field))) is not None:
            return error(422, *refused)
    row = await svc.readers.run(lambda db: queries.find_repo(db, name))
    if row is None:
        return error(
            404,
            "unknown_repository",
            f"pulsehook has not seen {name} yet: add the webhook or run"
            f" 'pulsehook scan --repo {name}' first",
        )
    now = svc.clock.now()
    report_id = str(body.get("id") or uuid.uuid4())
    payload = {
        **{
            k: body.get(k)
            for k in (
                "workflow",
                "job",
                "status",
                "branch",
                "sha",
                "url",
                "coverage",
                "run_id",
                "attempt",
            )
        },
        "id": report_id,
        "at": iso(now),
        "repository": {
            "id": row.id,
            "full_name": row.full_name,
            "default_branch": row.default_branch,
        },
    }
    delivery = Delivery(
        guid=f"report:{row.id}:{report_id}",
        event="pulsehook.report",
        payload=json.dumps(payload),
        content_type="application/json",
        received_at=iso(now),
        action=None,
        repo=row.full_name,
    )
    fresh = await svc.intake.submit(delivery)
    return JSONResponse(
        {"report": report_id, "status": "accepted" if fresh else "duplicate"},
        status_code=202 if fresh else 200,
    )
