"""``create_app(settings)``: the Starlette app; its lifespan owns db and worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route

from .clock import Clock, SystemClock
from .ingest import Intake, Worker
from .settings import Settings
from .store.db import Readers, Writer
from .web import api, webhooks
from .web.responses import EXCEPTION_HANDLERS
from .web.services import Services

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, clock: Clock | None = None) -> Starlette:
    settings.require_secret()
    clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        writer = Writer(
            settings.db_path,
            synchronous=settings.synchronous,
            busy_timeout_ms=settings.busy_timeout_ms,
        )
        readers = Readers(settings.db_path, busy_timeout_ms=settings.busy_timeout_ms)
        worker = Worker(writer, clock)
        intake = Intake(
            writer,
            batch_max=settings.batch_max,
            on_commit=worker.wake if settings.worker else lambda: None,
        )
        svc = Services(
            settings=settings,
            clock=clock,
            writer=writer,
            readers=readers,
            intake=intake,
            worker=worker,
        )
        app.state.services = svc
        if settings.worker:
            svc.worker_task = asyncio.create_task(worker.run(), name="pulsehook-worker")
        log.info("pulsehook ready: database %s", settings.db_path)
        try:
            yield
        finally:
            if svc.worker_task is not None:
                svc.worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await svc.worker_task
            writer.close()
            readers.close()

    return Starlette(
        debug=settings.debug,
        routes=[
            Route("/webhooks/github", webhooks.receive, methods=["POST"]),
            Route("/healthz", api.healthz, methods=["GET"]),
            Route("/api/v1/deliveries", api.list_deliveries, methods=["GET"]),
            Route("/api/v1/repos", api.list_repos, methods=["GET"]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
