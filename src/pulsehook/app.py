"""``create_app(settings)``: the Starlette app; its lifespan owns db, worker and senders."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Coroutine
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from .alerts.dispatch import Dispatcher, RetryPolicy
from .alerts.engine import Policy
from .clock import Clock, SystemClock
from .github.backfill import Backfill
from .ingest import Alerting, Worker
from .instance import Instance
from .intake import Intake
from .rules.load import load_rules
from .rules.model import RuleSet
from .schedule.maths import parse_duration
from .schedule.runner import Scheduler
from .settings import Settings
from .store.db import Readers, Writer
from .store.deliveries import Delivery
from .summary.publish import Publisher
from .summary.service import FILES as SUMMARY_FILES
from .summary.service import Summarizer
from .summary.service import Target as SummaryTarget
from .telemetry import Telemetry
from .web import (
    alerts_api,
    api,
    dashboard,
    metrics,
    openapi,
    pulseox,
    report,
    summary,
    webhooks,
)
from .web.auth import ApiTokenMiddleware
from .web.responses import EXCEPTION_HANDLERS
from .web.services import Services

log = logging.getLogger(__name__)


def load_rule_set(settings: Settings) -> RuleSet:
    """The rule set, or RulesInvalid; a missing default directory means no rules."""
    if not settings.rules_dir.exists():
        log.warning("rules directory %s does not exist: no alert rules", settings.rules_dir)
        return RuleSet()
    return load_rules(settings.rules_dir, os.environ, timezone=settings.timezone)


def published(files: dict[str, str]) -> dict[str, str]:
    """What goes to GitHub: the pair pulseox itself writes (text and JSON)."""
    return {name: files[name] for name in ("summary.md", "summary.md.json")}


def create_app(
    settings: Settings, *, clock: Clock | None = None, rules: RuleSet | None = None
) -> Starlette:
    """The app. Refuses (ConfigError) without a webhook secret or with invalid rules."""
    settings.require_secret()
    settings.heartbeat_scopes()  # a malformed scope refuses the start, not the first heartbeat
    publish_target = settings.publish_target()
    rule_set = rules if rules is not None else load_rule_set(settings)
    for warning in rule_set.warnings:
        log.warning("%s", warning)
    clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        writer = Writer(
            settings.db_path,
            synchronous=settings.synchronous,
            busy_timeout_ms=settings.busy_timeout_ms,
        )
        readers = Readers(settings.db_path, busy_timeout_ms=settings.busy_timeout_ms)
        instance = Instance(settings.data_dir)
        telemetry = Telemetry()
        dispatcher = Dispatcher(
            writer,
            rule_set,
            clock,
            instance=instance,
            telemetry=telemetry,
            public_url=settings.public_url,
            policy=RetryPolicy(
                base=timedelta(seconds=settings.retry_base_seconds),
                cap=timedelta(seconds=settings.retry_cap_seconds),
                max_age=timedelta(seconds=settings.retry_max_age_seconds),
            ),
        )
        alerting = Alerting(
            rules=rule_set,
            policy=Policy(flap=parse_duration(settings.flap_interval), timezone=settings.timezone),
        )
        scheduler = Scheduler(
            writer,
            rule_set,
            clock,
            timezone=settings.timezone,
            on_notices=dispatcher.wake,
            policy=alerting.policy,
            retention_days=settings.retention_days,
        )

        # A firing notice sets a reminder's deadline only under a rule that repeats.
        reminders = any(r.repeat_interval is not None for r in rule_set.rules)

        def notices() -> None:
            dispatcher.wake()
            if reminders:
                scheduler.wake()

        publisher = Publisher(publish_target, clock) if publish_target else None
        summarizer = Summarizer(
            writer,
            rule_set,
            clock,
            data_dir=settings.data_dir,
            target=SummaryTarget(
                owner=settings.summary_owner, repo=settings.summary_repo, tz=settings.timezone
            ),
            policy=alerting.policy,
            on_notices=notices,
            debounce=settings.summary_debounce_seconds,
            readers=readers,
            on_summary=(lambda files: publisher.offer(published(files)))
            if publisher
            else (lambda files: None),
        )
        intake = Intake(
            writer,
            batch_max=settings.batch_max,
            on_commit=lambda: worker.wake() if settings.worker else None,
        )
        worker = Worker(
            writer,
            clock,
            alerting=alerting,
            on_notices=notices,
            on_held=scheduler.wake,
            on_summary=summarizer.changed,
            telemetry=telemetry,
        )
        svc = Services(
            settings=settings,
            clock=clock,
            writer=writer,
            readers=readers,
            intake=intake,
            worker=worker,
            rules=rule_set,
            dispatcher=dispatcher,
            scheduler=scheduler,
            summarizer=summarizer,
            telemetry=telemetry,
            publisher=publisher,
        )
        app.state.services = svc
        tasks: list[asyncio.Task[None]] = []

        def start(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
            task = asyncio.create_task(coro, name=f"pulsehook-{name}")
            tasks.append(task)
            svc.tasks[name] = task
            return task

        backfill: Backfill | None = None
        if settings.github_token is not None or settings.scan_org or settings.scan_repo_list():

            async def submit(batch: list[Delivery]) -> None:
                await asyncio.gather(*(intake.submit(d) for d in batch))

            backfill = Backfill(
                writer,
                readers,
                clock,
                submit=submit,
                api_url=settings.github_api_url,
                token=settings.github_token.get_secret_value() if settings.github_token else None,
                org=settings.scan_org,
                repos=settings.scan_repo_list(),
                interval=settings.scan_interval,
                pace=settings.scan_pace(),
                telemetry=telemetry,
            )
        svc.backfill = backfill
        if settings.worker:
            start(worker.run(), "worker")
            start(dispatcher.run(), "dispatcher")
            start(scheduler.run(), "scheduler")
            start(summarizer.run(), "summary")
            if publisher is not None:
                start(publisher.run(), "publisher")
            if backfill is not None:
                start(backfill.run(), "backfill")
        # Everything built so far lives as long as the app: out of the collector's way,
        # so its full collections stay short under load.
        gc.freeze()
        # Each delivery's parsed payload is hundreds of short-lived containers: the
        # default threshold (700) ran a young-generation collection every request or two.
        gc.set_threshold(50_000, 20, 20)
        log.info("pulsehook ready: database %s, %d rule(s)", settings.db_path, len(rule_set.rules))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            writer.close()
            readers.close()
            instance.close()

    return Starlette(
        debug=False,  # tracebacks go to the log, never to a client
        routes=[
            Route("/webhooks/github", webhooks.WebhookEndpoint(settings), methods=["POST"]),
            Route("/healthz", api.healthz, methods=["GET"]),
            Route("/readyz", api.readyz, methods=["GET"]),
            Route("/api/v1/status", api.status, methods=["GET"]),
            Route("/metrics", api.metrics, methods=["GET"]),
            Route("/api/v1/deliveries", api.list_deliveries, methods=["GET"]),
            *metrics.ROUTES,
            Route("/api/v1/openapi.json", openapi.openapi, methods=["GET"]),
            *alerts_api.ROUTES,
            Route("/api/v1/report", report.report, methods=["POST"]),
            Route(
                "/api/v1/heartbeats/{owner}/{repo}/{path:path}", summary.heartbeat, methods=["POST"]
            ),
            *[Route(f"/{name}", summary.serve_summary, methods=["GET"]) for name in SUMMARY_FILES],
            Mount(settings.pulseox_prefix, routes=pulseox.routes()),
            *dashboard.ROUTES,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(ApiTokenMiddleware, settings=settings)],
        lifespan=lifespan,
    )
