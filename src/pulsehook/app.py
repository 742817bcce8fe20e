"""``create_app(settings)``: the Starlette app, a thin layer over the runtime.

The lifespan builds the one ``Runtime`` and starts its loops; requests reach it
as ``request.app.state.runtime``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from .clock import Clock
from .rules.model import RuleSet
from .runtime import LOOPS, Runtime, load_rule_set, publish_target
from .settings import Settings
from .summary.service import FILES as SUMMARY_FILES
from .web import (
    alerts_api,
    api,
    badges,
    dashboard,
    dependencies,
    metrics,
    openapi,
    pulseox,
    report,
    summary,
    webhooks,
)
from .web.auth import ApiTokenMiddleware
from .web.responses import EXCEPTION_HANDLERS

log = logging.getLogger(__name__)


def create_app(
    settings: Settings, *, clock: Clock | None = None, rules: RuleSet | None = None
) -> Starlette:
    """The app. Refuses (ConfigError) without a webhook secret or with invalid rules."""
    settings.require_secret()
    settings.heartbeat_scopes()  # a malformed scope refuses the start, not the first heartbeat
    publish_target(settings)  # half-configured publishing refuses the start
    rule_set = rules if rules is not None else load_rule_set(settings)
    for warning in rule_set.warnings:
        log.warning("%s", warning)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = Runtime(settings, rules=rule_set, clock=clock)
        app.state.runtime = runtime
        try:
            await runtime.start(LOOPS if settings.worker else ())
            log.info(
                "pulsehook ready: database %s, %d rule(s)", settings.database, len(rule_set.rules)
            )
            yield
        finally:
            await runtime.stop()

    return Starlette(
        debug=False,  # tracebacks go to the log, never to a client
        routes=[
            Route("/webhooks/github", webhooks.WebhookEndpoint(settings), methods=["POST"]),
            Route("/healthz", api.healthz, methods=["GET"]),
            Route("/readyz", api.readyz, methods=["GET"]),
            Route("/api/v1/status", api.status, methods=["GET"]),
            Route("/metrics", api.metrics, methods=["GET"]),
            Route("/api/v1/deliveries", api.list_deliveries, methods=["GET"]),
            Route("/api/v1/recovery", api.recovery, methods=["GET"]),
            Route("/api/v1/summary/items", api.summary_items, methods=["GET"]),
            *dependencies.ROUTES,
            *metrics.ROUTES,
            Route("/api/v1/openapi.json", openapi.openapi, methods=["GET"]),
            *alerts_api.ROUTES,
            Route("/api/v1/report", report.report, methods=["POST"]),
            Route(
                "/api/v1/heartbeats/{owner}/{repo}/{path:path}",
                summary.heartbeat,
                methods=["GET", "POST"],  # GET for `curl -fsS URL` in a crontab line
            ),
            *[Route(f"/{name}", summary.serve_summary, methods=["GET"]) for name in SUMMARY_FILES],
            Mount(settings.pulseox_prefix, routes=pulseox.routes()),
            *badges.ROUTES,  # their own access rule: web/badges.py
            *dashboard.ROUTES,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(ApiTokenMiddleware, settings=settings)],
        lifespan=lifespan,
    )
