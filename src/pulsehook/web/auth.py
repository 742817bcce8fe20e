"""The API token (``PULSEHOOK_API_TOKEN``), checked in constant time.

Secure by default: every API write needs the token, and so does every API
read unless the operator opted out (``PULSEHOOK_OPEN_READS``). Writes take
JSON only, so a cross-site form or ``text/plain`` POST is refused before any
credential is looked at. Heartbeats and reports carry their own tokens.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..settings import Settings
from .responses import error

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # writes that carry a body: JSON only
PROTECTED = ("/api/", "/metrics")
# Heartbeats and reports carry their own token (PULSEHOOK_HEARTBEAT_TOKENS); the
# API's description is public.
EXEMPT = ("/api/v1/heartbeats/", "/api/v1/report", "/api/v1/openapi.json")
JSON_TYPE = "application/json"


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
    return found and bool(given)


def require_token(request: Request, settings: Settings) -> None:
    if settings.api_token is None:
        raise HTTPException(401, "no API token is configured (PULSEHOOK_API_TOKEN)")
    if not matches(authorization(request), [settings.api_token.get_secret_value().encode()]):
        raise HTTPException(401, "missing or wrong API token (Authorization: Bearer ...)")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


class ApiTokenMiddleware:
    """Every ``/api/`` write needs the token and JSON; reads need it unless open."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].startswith(PROTECTED)
            and not scope["path"].startswith(EXEMPT)
        ):
            request = Request(scope)
            write = scope["method"] not in READ_METHODS
            if scope["method"] in BODY_METHODS and _media_type(request) != JSON_TYPE:
                response = error(415, "unsupported_media_type", f"API writes take {JSON_TYPE}")
                await response(scope, receive, send)
                return
            if write or not self.settings.open_reads:
                try:
                    require_token(request, self.settings)
                except HTTPException as exc:
                    response = error(401, "unauthorized", str(exc.detail))
                    response.headers["WWW-Authenticate"] = 'Bearer realm="pulsehook"'
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
