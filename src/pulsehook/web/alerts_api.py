"""Alerting API: alerts, rules, silences and the outbox."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..alerts import silences
from ..errors import InputInvalid, SilenceInvalid
from ..store import alerts as alert_store
from ..store import outbox
from ..store import silences as silence_store
from ..store.db import Tx
from .models import (
    AlertsQuery,
    NoQuery,
    NoticePath,
    OutboxQuery,
    SilenceIn,
    SilencePath,
    read_body,
    read_path,
    read_query,
)
from .services import services


async def list_alerts(request: Request) -> JSONResponse:
    svc = services(request)
    given = read_query(request, AlertsQuery)
    state, limit = given.state, given.limit

    def query(db: Tx) -> list[dict[str, Any]]:
        rows = alert_store.listing(db, state=state, rule=given.rule, limit=limit)
        sends = outbox.for_alerts(db, [r["key"] for r in rows])
        for row in rows:
            row["deliveries"] = sends.get(row["key"], [])
            # ``severity`` is the alert's (an advisory's own when it has one); the rule's beside it.
            rule = svc.rules.rule(row["rule"])
            row["rule_severity"] = rule.severity if rule is not None else None
        return rows

    rows = await svc.readers.run(query)
    return JSONResponse({"alerts": rows, "count": len(rows)})


async def list_rules(request: Request) -> JSONResponse:
    svc = services(request)
    read_query(request, NoQuery)
    stats = {r["rule"]: r for r in await svc.readers.run(alert_store.rule_stats)}
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
                "group": rule.grouped,
                "group_by": list(rule.group_by),
                "group_window": rule.group_window.total_seconds(),
                "source": rule.source,
                "fired": s.get("fired", 0),
                "last_fired_at": s.get("last_fired_at"),
                "errors": s.get("errors", 0),
                "last_error": s.get("last_error"),
                "last_error_at": s.get("last_error_at"),
            }
        )
    channels = [
        {"name": c.name, "kind": c.kind, "options": c.public(), "rate": c.rate}
        for c in svc.rules.channels.values()
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
    read_query(request, NoQuery)
    now = svc.clock.now()
    rows = await svc.readers.run(lambda db: silences.listing(db, now, svc.settings.timezone))
    return JSONResponse({"silences": rows})


async def create_silence(request: Request) -> JSONResponse:
    svc = services(request)
    body = await read_body(request, SilenceIn)
    now = svc.clock.now()
    try:
        # Times and durations are bounded (models.py): start + duration cannot overflow.
        held = silences.window(
            rule=body.rule,
            repo=body.repo,
            now=now,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            duration=body.duration,
            cron=body.cron,
        )
    except SilenceInvalid as exc:
        raise InputInvalid(str(exc)) from exc
    silence_id = await svc.writer.run(
        lambda db: silence_store.create(
            db,
            rule=body.rule,
            repo=body.repo,
            starts_at=held.starts_at,
            ends_at=held.ends_at,
            cron=held.cron,
            duration=held.duration,
            comment=body.comment,
            now=now,
        )
    )
    svc.scheduler.wake()  # its end is a deadline now
    return JSONResponse({"id": silence_id}, status_code=201)


async def silences_endpoint(request: Request) -> JSONResponse:
    if request.method == "POST":
        return await create_silence(request)
    return await list_silences(request)


async def delete_silence(request: Request) -> JSONResponse:
    svc = services(request)
    silence_id = read_path(request, SilencePath).silence_id
    deleted = await svc.writer.run(lambda db: silence_store.delete(db, silence_id))
    svc.scheduler.wake()  # what it held is told now
    if not deleted:
        return JSONResponse(
            {"error": {"code": "not_found", "message": f"no silence {silence_id}"}},
            status_code=404,
        )
    return JSONResponse({"deleted": silence_id})


async def list_outbox(request: Request) -> JSONResponse:
    svc = services(request)
    given = read_query(request, OutboxQuery)
    rows = await svc.readers.run(
        lambda db: outbox.listing(db, status=given.status, limit=given.limit)
    )
    return JSONResponse({"notices": rows})


async def show_notice(request: Request) -> JSONResponse:
    svc = services(request)
    notice_id = read_path(request, NoticePath).notice_id
    found = await svc.readers.run(lambda db: outbox.notice(db, notice_id))
    if found is None:
        return JSONResponse(
            {"error": {"code": "not_found", "message": f"no notice {notice_id}"}},
            status_code=404,
        )
    return JSONResponse(found)


ROUTES = [
    Route("/api/v1/alerts", list_alerts, methods=["GET"]),
    Route("/api/v1/rules", list_rules, methods=["GET"]),
    # One route for both methods, so a 405 here lists both in its Allow header.
    Route("/api/v1/silences", silences_endpoint, methods=["GET", "POST"]),
    # Not starlette's int convertor: int() of thousands of digits raises, a 500.
    Route("/api/v1/silences/{silence_id}", delete_silence, methods=["DELETE"]),
    Route("/api/v1/outbox", list_outbox, methods=["GET"]),
    Route("/api/v1/outbox/{notice_id}", show_notice, methods=["GET"]),
]
