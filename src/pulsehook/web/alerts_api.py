"""Alerting API: alerts, rules, silences and the outbox."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlite_utils import Database
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..alerts import outbox, silences
from ..clock import parse_iso
from ..errors import BadRequest
from ..schedule.maths import parse_duration, valid_cron
from .api import int_param
from .services import services


async def list_alerts(request: Request) -> JSONResponse:
    svc = services(request)
    state = request.query_params.get("state") or None
    if state not in (None, "firing", "resolved"):
        raise BadRequest("state must be firing or resolved")
    limit = int_param(request, "limit", 100, high=1000) or 100

    def query(db: Database) -> list[dict[str, Any]]:
        where, params = ("WHERE state = ?", [state]) if state else ("", [])
        rows = list(
            db.query(
                f"SELECT * FROM alerts {where} ORDER BY state = 'firing' DESC, last_seen_at DESC"
                " LIMIT ?",
                (*params, limit),
            )
        )
        sends = outbox.for_alerts(db, [r["key"] for r in rows])
        for row in rows:
            row["fact"] = json.loads(row["fact"])
            row["notified_firing"] = bool(row["notified_firing"])
            row["silenced"] = bool(row["silenced"])
            row["deliveries"] = sends.get(row["key"], [])
        return rows

    rows = await svc.readers.run(query)
    return JSONResponse({"alerts": rows, "count": len(rows)})


async def list_rules(request: Request) -> JSONResponse:
    svc = services(request)
    stats = {
        r["rule"]: r
        for r in await svc.readers.run(lambda db: list(db.query("SELECT * FROM rule_stats")))
    }
    rules = []
    for rule in svc.rules.rules:
        s = stats.get(rule.name, {})
        rules.append(
            {
                "name": rule.name,
                "condition": rule.condition,
                "fact": rule.fact,
                "channels": list(rule.channels),
                "frequency": rule.frequency,
                "severity": rule.severity,
                "notify_resolved": rule.notify_resolved,
                "repeat_interval": rule.repeat_interval.total_seconds()
                if rule.repeat_interval
                else None,
                "repos": list(rule.repos),
                "exclude_repos": list(rule.exclude_repos),
                "source": rule.source,
                "fired": s.get("fired", 0),
                "last_fired_at": s.get("last_fired_at"),
                "errors": s.get("errors", 0),
                "last_error": s.get("last_error"),
                "last_error_at": s.get("last_error_at"),
            }
        )
    channels = [
        {"name": c.name, "kind": c.kind, "options": c.public()} for c in svc.rules.channels.values()
    ]
    return JSONResponse(
        {
            "rules": rules,
            "channels": channels,
            "unconfigured": svc.rules.unconfigured,
            "warnings": list(svc.rules.warnings),
        }
    )


async def list_silences(request: Request) -> JSONResponse:
    svc = services(request)
    now = svc.clock.now()
    rows = await svc.readers.run(lambda db: silences.listing(db, now, svc.settings.timezone))
    return JSONResponse({"silences": rows})


def _when(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = parse_iso(str(value))
    except ValueError as exc:
        raise BadRequest(f"{name} must be an ISO-8601 time") from exc
    if when.tzinfo is None:
        raise BadRequest(f"{name} needs a timezone (e.g. Z)")
    return when


async def create_silence(request: Request) -> JSONResponse:
    svc = services(request)
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest("body must be JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    if not body.get("rule") and not body.get("repo"):
        raise BadRequest("a silence needs a rule and/or a repo pattern")
    now = svc.clock.now()
    starts = _when(body.get("starts_at"), "starts_at") or now
    ends = _when(body.get("ends_at"), "ends_at")
    cron = body.get("cron")
    try:
        duration = parse_duration(body["duration"]) if body.get("duration") else None
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"duration: {exc}") from exc
    if cron is not None and (not valid_cron(cron) or duration is None):
        raise BadRequest("a recurring silence needs a valid cron and a duration")
    if cron is None and ends is None and duration is not None:
        ends = starts + duration
    silence_id = await svc.writer.run(
        lambda db: silences.create(
            db,
            rule=body.get("rule"),
            repo=body.get("repo"),
            starts_at=starts,
            ends_at=ends,
            cron=cron,
            duration=duration if cron else None,
            comment=body.get("comment"),
            now=now,
        )
    )
    svc.scheduler.wake()  # its end is a deadline now
    return JSONResponse({"id": silence_id}, status_code=201)


async def delete_silence(request: Request) -> JSONResponse:
    svc = services(request)
    raw = request.path_params["silence_id"]
    deleted = await svc.writer.run(lambda db: silences.delete(db, int(raw)))
    svc.scheduler.wake()  # what it held is told now
    if not deleted:
        return JSONResponse(
            {"error": {"code": "not_found", "message": f"no silence {raw}"}}, status_code=404
        )
    return JSONResponse({"deleted": int(raw)})


async def list_outbox(request: Request) -> JSONResponse:
    svc = services(request)
    status = request.query_params.get("status") or None
    if status not in (None, "pending", "sent", "parked"):
        raise BadRequest("status must be pending, sent or parked")
    limit = int_param(request, "limit", 100, high=1000) or 100
    rows = await svc.readers.run(lambda db: outbox.listing(db, status=status, limit=limit))
    return JSONResponse({"notices": rows})


ROUTES = [
    Route("/api/v1/alerts", list_alerts, methods=["GET"]),
    Route("/api/v1/rules", list_rules, methods=["GET"]),
    Route("/api/v1/silences", list_silences, methods=["GET"]),
    Route("/api/v1/silences", create_silence, methods=["POST"]),
    Route("/api/v1/silences/{silence_id:int}", delete_silence, methods=["DELETE"]),
    Route("/api/v1/outbox", list_outbox, methods=["GET"]),
]
