"""``POST /webhooks/github``: read bytes, check them, hand them to intake.

Checks run cheapest-first but never leak to an unauthenticated sender more
than "too large" or "bad signature": the size cap is enforced while reading,
the signature is checked on the raw bytes before anything is parsed.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..clock import iso
from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from ..github.verify import verify
from ..store.deliveries import Delivery
from .services import services

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"


async def read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def payload_text(body: bytes, content_type: str) -> tuple[str, Any]:
    """The JSON document inside the body: its text and its parsed value."""
    if content_type == JSON_TYPE:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"body is not UTF-8: {exc}") from exc
    elif content_type == FORM_TYPE:
        fields = parse_qs(body.decode("latin-1"), keep_blank_values=True)
        if "payload" not in fields:
            raise BadRequest("form-encoded body has no 'payload' field")
        text = fields["payload"][0].encode("latin-1").decode("utf-8", "replace")
    else:
        raise UnsupportedMediaType(
            f"content type {content_type or '(none)'!r} is not supported; "
            f"use {JSON_TYPE} or {FORM_TYPE}"
        )
    try:
        return text, json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc


def _summary(data: Any) -> tuple[str | None, str | None]:
    """(action, repository full name) for listing deliveries; best effort."""
    if not isinstance(data, dict):
        return None, None
    action = data.get("action")
    repo = data.get("repository")
    name = repo.get("full_name") if isinstance(repo, dict) else None
    return (action if isinstance(action, str) else None, name if isinstance(name, str) else None)


async def receive(request: Request) -> JSONResponse:
    svc = services(request)
    settings = svc.settings
    body = await read_capped(request, settings.max_body_bytes)
    secrets = settings.secrets()
    if secrets or not settings.insecure:
        verify(body, request.headers.get("x-hub-signature-256"), secrets)
    event = request.headers.get("x-github-event")
    guid = request.headers.get("x-github-delivery")
    if not event or not guid:
        missing = [h for h, v in (("X-GitHub-Event", event), ("X-GitHub-Delivery", guid)) if not v]
        raise BadRequest(f"missing header(s): {', '.join(missing)}")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    text, data = payload_text(body, content_type)
    action, repo = _summary(data)
    hook_id = request.headers.get("x-github-hook-id", "")
    delivery = Delivery(
        guid=guid,
        event=event,
        payload=text,
        content_type=content_type,
        received_at=iso(svc.clock.now()),
        action=action,
        hook_id=int(hook_id) if hook_id.isdigit() else None,
        repo=repo,
        hook_target=request.headers.get("x-github-hook-installation-target-type") or None,
    )
    is_new = await svc.intake.submit(delivery)
    if not is_new:
        return JSONResponse({"delivery": guid, "status": "duplicate"}, status_code=200)
    if event == "ping":
        return JSONResponse({"delivery": guid, "status": "pong"}, status_code=200)
    return JSONResponse({"delivery": guid, "status": "accepted"}, status_code=202)
