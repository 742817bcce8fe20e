"""Read endpoints: health of the process, deliveries, recovery, the summary's items."""

from __future__ import annotations

import shutil
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import __version__
from ..clock import parse_iso
from ..errors import StorageUnavailable
from ..store import deliveries, redeliveries, scans, vitals
from ..store import summary as summary_store
from ..summary import items as item_rows
from ..telemetry import CONTENT_TYPE
from .models import DeliveriesQuery, RecoveryQuery, SummaryItemsQuery, read_query
from .responses import error
from .services import services

# Below this, writes are about to fail: taken out of rotation before they do.
DISK_FLOOR = 64 * 1024 * 1024


async def healthz(_request: Request) -> JSONResponse:
    """Liveness, open to anyone: the process answers. Says nothing else."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness, open to anyone: 503 with the reasons while deliveries cannot be
    taken (writes failing, the database unreadable, the disk all but full) or a
    background loop (processing, sending) has stopped. Figures beside: how far
    processing is behind, the free disk, the scan's last round."""
    svc = services(request)
    reasons: list[str] = []
    if (failing := svc.writer.failing) is not None:
        reasons.append(f"database writes are failing: {failing}")
    figures: dict[str, Any] = {}
    try:
        found = await svc.readers.run(lambda db: vitals.read(db, outbox=False))
        scan = await svc.readers.run(scans.last_round)
        recovery = await svc.readers.run(redeliveries.overview)
    except StorageUnavailable as exc:
        reasons.append(f"database unreadable: {exc}")
    else:
        figures["processing_lag_seconds"] = _lag(found, svc.clock.now())
        figures["deliveries_pending"] = found.pending
        if scan is not None:
            # How far behind the scan is: news, never a reason to be unready.
            figures["scan"] = scan
        if recovery["last_pass"] is not None or any(recovery["requests"].values()):
            figures["recovery"] = recovery  # news too: what missed deliveries came to
    free = shutil.disk_usage(svc.settings.data_dir).free
    figures["disk_free_bytes"] = free
    if free < DISK_FLOOR:
        reasons.append(f"the disk holding the database is all but full ({free} bytes free)")
    for name in svc.stopped():
        reasons.append("processing is stopped" if name == "worker" else f"the {name} stopped")
    if reasons:
        return JSONResponse({"status": "not_ready", "reasons": reasons, **figures}, status_code=503)
    return JSONResponse({"status": "ready", **figures})


def _lag(found: vitals.Vitals, now: datetime) -> float:
    if found.oldest_pending is None:
        return 0.0
    return round(max(0.0, (now - parse_iso(found.oldest_pending)).total_seconds()), 3)


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
    telemetry = svc.telemetry
    try:
        telemetry.store.vitals = await svc.readers.run(vitals.read)
        telemetry.scan.figures = await svc.readers.run(scans.last_round)
        telemetry.recovery.figures = await svc.readers.run(redeliveries.overview)
    except StorageUnavailable:
        # The counts still render; /readyz says why the store does not answer.
        telemetry.store.vitals = telemetry.scan.figures = telemetry.recovery.figures = None
    telemetry.store.now = svc.clock.now().timestamp()
    path = svc.settings.db_path
    telemetry.store.files = {
        name: file.stat().st_size
        for name, file in (("database", path), ("wal", path.with_name(path.name + "-wal")))
        if file.exists()
    }
    return Response(telemetry.render(), media_type=CONTENT_TYPE)


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


async def recovery(request: Request) -> JSONResponse:
    """``GET /api/v1/recovery``: the last pass, requests by outcome, the recent ones."""
    svc = services(request)
    given = read_query(request, RecoveryQuery)
    found = await svc.readers.run(redeliveries.overview)
    rows = await svc.readers.run(
        lambda db: redeliveries.recent(db, outcome=given.outcome, limit=given.limit)
    )
    return JSONResponse({**found, "recent": rows})


async def summary_items(request: Request) -> JSONResponse:
    """``GET /api/v1/summary/items``: the summary's items with their status, schedule and
    where the schedule comes from (a declaration, or a workflow file's own crons)."""
    svc = services(request)
    given = read_query(request, SummaryItemsQuery)
    rows = await svc.readers.run(
        lambda db: summary_store.listing(
            db, status=given.status, repo=given.repo, implicit=given.implicit, limit=given.limit
        )
    )
    return JSONResponse({"count": len(rows), "items": [item_rows.described(r) for r in rows]})
