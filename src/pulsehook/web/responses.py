"""The one error shape, ``{"error": {"code": ..., "message": ...}}``, for the whole API."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import StorageUnavailable, WebhookRejected

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}


class FastJSON(JSONResponse):
    """JSON rendered with orjson: the large listings (a thousand repositories) are
    several times cheaper to encode."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def http_exception(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    answer = error(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail))
    # A 405 carries the methods the route takes (Allow, RFC 9110 §15.5.6).
    answer.headers.update(exc.headers or {})
    return answer


async def rejected(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WebhookRejected)
    return error(exc.status, exc.code, exc.message)


async def storage_unavailable(_request: Request, exc: Exception) -> Response:
    return error(503, "storage_unavailable", str(exc))


EXCEPTION_HANDLERS = {
    HTTPException: http_exception,
    WebhookRejected: rejected,
    StorageUnavailable: storage_unavailable,
}
