"""``POST /api/v1/report``: a CI step reports what webhooks cannot (the seed's
"Report to Pulse"): a job's status, a coverage figure. Stored as a delivery,
so it goes through the same store -> rules -> summary path as a webhook.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..clock import iso
from ..errors import BadRequest
from ..store import metrics
from ..store.deliveries import Delivery
from .auth import credential, matches
from .responses import error
from .services import services

STATUSES = ("success", "failure", "cancelled", "skipped", "timed_out", "neutral")


async def report(request: Request) -> JSONResponse:
    svc = services(request)
    if not svc.settings.heartbeat_token_list():
        return error(
            403, "reports_disabled", "no report token configured: set PULSEHOOK_HEARTBEAT_TOKENS"
        )
    if not matches(credential(request), svc.settings.heartbeat_token_list()):
        return error(401, "unauthorized", "missing or wrong report token")
    try:
        body: Any = await request.json()
    except ValueError as exc:
        raise BadRequest("body must be JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("repo"), str):
        raise BadRequest('give at least {"repo": "owner/name", "status": ...}')
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
    name = body["repo"]
    row = await svc.readers.run(lambda db: metrics.find_repo(db, name))
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
            "id": row["id"],
            "full_name": row["full_name"],
            "default_branch": row["default_branch"],
        },
    }
    delivery = Delivery(
        guid=f"report:{row['id']}:{report_id}",
        event="pulsehook.report",
        payload=json.dumps(payload),
        content_type="application/json",
        received_at=iso(now),
        action=None,
        repo=row["full_name"],
    )
    fresh = await svc.intake.submit(delivery)
    return JSONResponse(
        {"report": report_id, "status": "accepted" if fresh else "duplicate"},
        status_code=202 if fresh else 200,
    )
