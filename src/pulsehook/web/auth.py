"""The optional API token (``PULSEHOOK_API_TOKEN``), checked in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..settings import Settings
from .responses import error


def authorization(request: Request) -> str | None:
    """The credential of an ``Authorization: Bearer <value>`` (or ``token <value>``) header."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() in ("bearer", "token") else None


def credential(request: Request) -> str | None:
    """As ``authorization``, or a ``?token=`` parameter (for a plain ``curl``)."""
    return authorization(request) or request.query_params.get("token") or None


def matches(given: str | None, tokens: Iterable[bytes]) -> bool:
    """Whether ``given`` is one of ``tokens``, compared in constant time with each."""
    candidate = (given or "").encode()
    found = False
    for token in tokens:
        found |= hmac.compare_digest(token, candidate)
    return found and given is not None


def require_token(request: Request, settings: Settings) -> None:
    if settings.api_token is None:
        return
    if not matches(authorization(request), [settings.api_token.get_secret_value().encode()]):
        raise HTTPException(401, "missing or wrong API token (Authorization: Bearer ...)")


class ApiTokenMiddleware:
    """When an API token is set, every ``/api/`` request must carry it."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.settings.api_token is not None
            and scope["type"] == "http"
            and scope["path"].startswith(PROTECTED)
            and not scope["path"].startswith(EXEMPT)
        ):
            try:
                require_token(Request(scope), self.settings)
            except HTTPException as exc:
                response = error(401, "unauthorized", str(exc.detail))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


PROTECTED = ("/api/",)
# Heartbeats carry their own token (PULSEHOOK_HEARTBEAT_TOKENS).
EXEMPT = ("/api/v1/heartbeats/", "/api/v1/report", "/api/v1/openapi.json")
