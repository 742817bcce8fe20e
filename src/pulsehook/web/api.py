"""Read endpoints: health of the process, deliveries, repositories."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import __version__
from ..errors import StorageUnavailable
from ..store import deliveries, scans
from ..telemetry import CONTENT_TYPE
from .models import DeliveriesQuery, read_query
from .responses import error
from .services import services


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
    scan = None
    try:
        await svc.readers.run(deliveries.reachable)
        scan = await svc.readers.run(scans.last_round)
    except StorageUnavailable as exc:
        reasons.append(f"database unreadable: {exc}")
    if svc.settings.worker and not svc.worker_running():
        reasons.append("processing is stopped")
    # How far behind the scan is: news, never a reason to be unready (figures only).
    extra = {"scan": scan} if scan is not None else {}
    if reasons:
        return JSONResponse({"status": "not_ready", "reasons": reasons, **extra}, status_code=503)
    return JSONResponse({"status": "ready", **extra})


async def status(request: Request) -> JSONResponse:
    """``GET /api/v1/status`` (API token): version, worker, deliveries by status."""
    svc = services(request)
    try:
        counts = await svc.readers.run(deliveries.counts)
        scan = await svc.readers.run(scans.last_round)
    except StorageUnavailable as exc:
        return error(503, "storage_unavailable", str(exc))
    backfill = svc.backfill
    if scan is not None and backfill is not None:
        scan = {**scan, "last_error": backfill.last_error}
    return JSONResponse(
        {
            "status": "ok",
            "version": __version__,
            "database": "ok" if svc.writer.failing is None else "failing",
            "worker": "running" if svc.worker_running() else "stopped",
            "deliveries": counts,
            "scan": scan,
        }
    )


async def metrics(request: Request) -> Response:
    """``GET /metrics`` (API token unless reads are open): Prometheus exposition."""
    svc = services(request)
    try:
        svc.telemetry.scan.figures = await svc.readers.run(scans.last_round)
    except StorageUnavailable:
        svc.telemetry.scan.figures = None  # the rest still renders; /readyz says why
    return Response(svc.telemetry.render(), media_type=CONTENT_TYPE)


async def list_deliveries(request: Request) -> JSONResponse:
    svc = services(request)
    given = read_query(request, DeliveriesQuery)
    rows = await svc.readers.run(
        lambda db: deliveries.recent(
            db,
            status=given.status,
            event=given.event,
            limit=given.limit,
            before_id=given.before,
        )
    )
    return JSONResponse(
        {
            "deliveries": rows,
            "next_before": rows[-1]["id"] if len(rows) == given.limit else None,
        }
    )
