"""Local stand-ins for the services pulsehook talks to: a recording HTTP receiver
(Slack, Discord, PagerDuty) and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .conftest import free_port, live


@dataclass
class Receiver:
    """Records every POST; answers from a per-path script of status codes (then 200)."""

    url: str = ""
    requests: list[tuple[str, Any, int]] = field(default_factory=list)
    scripts: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay: float = 0.0  # seconds each answer is held (recorded on arrival): a send in flight

    def script(self, name: str, *codes: int) -> None:
        with self.lock:
            self.scripts[name] = list(codes)

    def delivered(self, name: str) -> list[Any]:
        """Bodies that were answered with a 2xx."""
        with self.lock:
            return [body for n, body, code in self.requests if n == name and code < 300]

    def attempts(self, name: str) -> int:
        with self.lock:
            return sum(1 for n, _, _ in self.requests if n == name)

    async def handle(self, request: Request) -> Response:
        name = request.path_params["name"]
        body = await request.json()
        with self.lock:
            codes = self.scripts.get(name, [])
            code = codes.pop(0) if codes else 200
            self.requests.append((name, body, code))
        if self.delay:
            await asyncio.sleep(self.delay)
        if code == 429:
            return PlainTextResponse("slow down", status_code=429, headers={"Retry-After": "0"})
        if code >= 300:
            return PlainTextResponse(f"error {code}", status_code=code)
        return JSONResponse({"ok": True}) if name.startswith("pd") else PlainTextResponse("ok")


@contextmanager
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    app = Starlette(routes=[Route("/hook/{name}", rec.handle, methods=["POST"])])
    with live(app) as server:
        rec.url = server.url
        yield rec


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@dataclass
class PacedReceiver:
    """A provider that accepts one message per ``1/rate`` seconds, as Slack's incoming
    webhooks do, and answers 429 with ``Retry-After`` to what comes sooner.

    ``now`` is its clock (seconds): the test's frozen clock, or the monotonic one.
    """

    rate: float
    now: Callable[[], float]
    url: str = ""
    accepted: list[tuple[float, Any]] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: Request) -> Response:
        body = await request.json()
        with self.lock:
            at = self.now()
            if self.accepted and at - self.accepted[-1][0] < 1.0 / self.rate:
                self.refused += 1
                wait = 1.0 / self.rate - (at - self.accepted[-1][0])
                return PlainTextResponse(
                    "rate_limited", status_code=429, headers={"Retry-After": f"{wait:.0f}"}
                )
            self.accepted.append((at, body))
        return (
            JSONResponse({"status": "success"})
            if "routing_key" in body
            else PlainTextResponse("ok")
        )

    def bodies(self) -> list[Any]:
        with self.lock:
            return [body for _, body in self.accepted]


@contextmanager
def paced_receiver(rate: float, now: Callable[[], float]) -> Iterator[PacedReceiver]:
    rec = PacedReceiver(rate=rate, now=now)
    app = Starlette(routes=[Route("/hook/{name}", rec.handle, methods=["POST"])])
    with live(app) as server:
        rec.url = server.url
        yield rec
