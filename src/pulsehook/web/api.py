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
    """Liveness, open to anyone: the process answers. Says nothing else."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness, open to anyone: 503 with the reasons while deliveries cannot be
    taken (writes failing, the database unreadable) or processing is stopped."""
    svc = services(request)
    reasons: list[str] = []
    if (failing := svc.writer.failing) is not None:
        reasons.append(f"database writes are failing: {failing}")
    try:
        await svc.readers.run(deliveries.reachable)
    except StorageUnavailable as exc:
        reasons.append(f"database unreadable: {exc}")
    if svc.settings.worker and not svc.worker_running():
        reasons.append("processing is stopped")
    if reasons:
        return JSONResponse({"status": "not_ready", "reasons": reasons}, status_code=503)
    return JSONResponse({"status": "ready"})


async def status(request: Request) -> JSONResponse:
    """``GET /api/v1/status`` (API token): version, worker, deliveries by status."""
    svc = services(request)
    try:
        counts = await svc.readers.run(deliveries.counts)
    except StorageUnavailable as exc:
        return error(503, "storage_unavailable", str(exc))
    return JSONResponse(
        {
            "status": "ok",
            "version": __version__,
            "database": "ok" if svc.writer.failing is None else "failing",
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
