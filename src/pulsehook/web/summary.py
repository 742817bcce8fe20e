"""The summary over HTTP, and heartbeats: ``POST /api/v1/heartbeats/{owner}/{repo}/{path}``."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import BadRequest
from ..summary import items
from .auth import credential, matches
from .responses import error
from .services import services

MEDIA = {
    "summary.md": "text/markdown; charset=utf-8",
    "summary.org": "text/plain; charset=utf-8",
    "summary.md.json": "application/json",
}


async def latest(request: Request, name: str) -> str | None:
    svc = services(request)
    generated = svc.summarizer.latest
    if generated is not None:
        return generated.files()[name]
    # Not kept by this process (``serve --no-worker``): the worker's files on disk.
    path = svc.settings.data_dir / name
    return await asyncio.to_thread(path.read_text, "utf-8") if path.exists() else None


async def serve_summary(request: Request) -> Response:
    name = request.url.path.lstrip("/")
    body = await latest(request, name)
    if body is None:
        return error(503, "not_ready", "the summary has not been generated yet")
    return Response(body, media_type=MEDIA[name])


async def heartbeat(request: Request) -> JSONResponse:
    svc = services(request)
    if not svc.settings.heartbeat_token_list():
        return error(
            403,
            "heartbeats_disabled",
            "no heartbeat token configured: set PULSEHOOK_HEARTBEAT_TOKENS",
        )
    if not matches(credential(request), svc.settings.heartbeat_token_list()):
        return error(401, "unauthorized", "missing or wrong heartbeat token")
    owner = request.path_params["owner"]
    repo = request.path_params["repo"]
    path = request.path_params["path"]
    fields: dict[str, Any] = {}
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind == "application/json":
        try:
            fields = await request.json()
        except ValueError as exc:
            raise BadRequest("body is not valid JSON") from exc
        if not isinstance(fields, dict):
            raise BadRequest("body must be a JSON object")
    elif kind == "application/x-www-form-urlencoded":
        fields = dict(await request.form())
    report = str(fields.get("report") or request.query_params.get("report") or "GOOD").upper()
    if report not in ("GOOD", "BAD"):
        raise BadRequest("report must be GOOD or BAD")
    note = fields.get("note") or request.query_params.get("note")
    return JSONResponse(
        await record(request, owner, repo, path, report, str(note) if note else None),
        status_code=202,
    )


async def record(
    request: Request, owner: str, repo: str, path: str, report: str, note: str | None
) -> dict[str, Any]:
    """Store a heartbeat report and let the summary know."""
    svc = services(request)
    now = svc.clock.now()
    item_path = f"{owner}/{repo}/{path}"
    await svc.writer.run(
        lambda db: items.record_report(
            db,
            path=item_path,
            owner=owner,
            repo=repo,
            kind="heartbeat",
            report=report,
            note=note,
            at=now,
            link=None,
            now=now,
            tz=svc.settings.timezone,
        )
    )
    svc.summarizer.changed()
    return {"path": item_path, "report": report, "note": note}
