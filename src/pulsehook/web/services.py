"""What the running app holds: built in the lifespan, reached from requests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

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
    # The background loops by what they do (worker, dispatcher, scheduler, ...).
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def worker_running(self) -> bool:
        task = self.tasks.get("worker")
        return task is not None and not task.done()

    def stopped(self) -> list[str]:
        """The background loops that ended: each is a bug, logged when it happened."""
        return [name for name, task in self.tasks.items() if task.done()]


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc
