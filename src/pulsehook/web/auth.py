"""The optional API token (``PULSEHOOK_API_TOKEN``), checked in constant time."""

from __future__ import annotations

import hmac

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..settings import Settings
from .responses import error


def require_token(request: Request, settings: Settings) -> None:
    if settings.api_token is None:
        return
    expected = settings.api_token.get_secret_value().encode()
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() not in ("bearer", "token") or not hmac.compare_digest(
        given.strip().encode(), expected
    ):
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
