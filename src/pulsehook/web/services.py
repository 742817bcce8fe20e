"""What the running app holds: built in the lifespan, reached from requests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.requests import Request

from ..alerts.dispatch import Dispatcher
from ..clock import Clock
from ..github.backfill import Backfill
from ..ingest import Worker
from ..intake import Intake
from ..rules.model import RuleSet
from ..schedule.runner import Scheduler
from ..settings import Settings
from ..store.db import Readers, Writer
from ..summary.publish import Publisher
from ..summary.service import Summarizer
from ..telemetry import Telemetry


@dataclass
class Services:
    settings: Settings
    clock: Clock
    writer: Writer
    readers: Readers
    intake: Intake
    worker: Worker
    rules: RuleSet
    dispatcher: Dispatcher
    scheduler: Scheduler
    summarizer: Summarizer
    telemetry: Telemetry
    publisher: Publisher | None = None
    backfill: Backfill | None = None
    worker_task: asyncio.Task[None] | None = None

    def worker_running(self) -> bool:
        return self.worker_task is not None and not self.worker_task.done()


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
