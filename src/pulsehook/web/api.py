"""Read endpoints: health of the process, deliveries, repositories."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import __version__
from ..errors import BadRequest, StorageUnavailable
from ..store import deliveries
from .responses import error
from .services import services

MAX_LIMIT = 500


def int_param(request: Request, name: str, default: int | None, *, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= high:
        raise BadRequest(f"query parameter {name!r} must be an integer from 1 to {high}")
    return int(raw)


async def healthz(request: Request) -> JSONResponse:
    svc = services(request)
    try:
        counts = await svc.readers.run(deliveries.counts)
    except StorageUnavailable as exc:
        return error(503, "storage_unavailable", str(exc))
    return JSONResponse(
        {
            "status": "ok",
            "version": __version__,
            "database": "ok",
            "worker": "running" if svc.worker_running() else "stopped",
            "deliveries": counts,
        }
    )


async def list_deliveries(request: Request) -> JSONResponse:
    svc = services(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in deliveries.STATUSES:
        raise BadRequest(f"status must be one of {', '.join(deliveries.STATUSES)}")
    event = request.query_params.get("event") or None
    limit = int_param(request, "limit", 50, high=MAX_LIMIT) or 50
    before = int_param(request, "before", None, high=2**62)
    rows = await svc.readers.run(
        lambda db: deliveries.recent(db, status=status, event=event, limit=limit, before_id=before)
    )
    return JSONResponse(
        {
            "deliveries": rows,
            "next_before": rows[-1]["id"] if len(rows) == limit else None,
        }
    )
