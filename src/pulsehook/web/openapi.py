"""The OpenAPI description of the HTTP API, served at ``/api/v1/openapi.json``.

Written by hand (starlette generates none) and checked by a test against the
app's routes, so a new endpoint without a description fails the build.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import __version__

ERROR = {"$ref": "#/components/schemas/Error"}


def _op(
    summary: str,
    *,
    params: list[tuple[str, str, str]] | None = None,
    body: str | None = None,
    responses: dict[str, str] | None = None,
    security: bool = True,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            code: {
                "description": text,
                **({"content": {"application/json": {"schema": ERROR}}} if code[0] in "45" else {}),
            }
            for code, text in (responses or {"200": "OK"}).items()
        },
    }
    if params:
        op["parameters"] = [
            {
                "name": n,
                "in": where,
                "required": where == "path",
                "schema": {"type": "string"},
                "description": d,
            }
            for n, where, d in params
        ]
    if body:
        op["requestBody"] = {
            "content": {"application/json": {"schema": {"type": "object", "description": body}}}
        }
    if not security:
        op["security"] = []
    return op


REPO = [("owner", "path", "repository owner"), ("name", "path", "repository name")]
LIMIT = ("limit", "query", "how many, newest first")


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/webhooks/github": {
            "post": _op(
                "Receive a GitHub webhook delivery (HMAC-SHA256 in X-Hub-Signature-256)",
                body="the event payload (JSON, or form-encoded in `payload`)",
                security=False,
                responses={
                    "200": "ping, or a redelivery already stored",
                    "202": "stored",
                    "400": "missing header or invalid JSON",
                    "401": "bad signature",
                    "413": "body too large",
                    "415": "unsupported content type",
                    "503": "storage unavailable: nothing stored",
                },
            )
        },
        "/healthz": {
            "get": _op(
                "Liveness: the process answers (says nothing else)",
                security=False,
                responses={"200": "alive"},
            )
        },
        "/readyz": {
            "get": _op(
                "Readiness: deliveries can be stored and processing runs",
                security=False,
                responses={"200": "ready", "503": "not ready, with the reasons"},
            )
        },
        "/api/v1/status": {
            "get": _op("Version, worker state and deliveries by status (API token)")
        },
        "/api/v1/health": {
            "get": _op(
                "Ecosystem overview: average score, builds, "
                "vulnerabilities, summary counts, firing alerts"
            )
        },
        "/api/v1/repos": {
            "get": _op(
                "Every repository: health_score and metrics "
                "(build_status, coverage, dependencies, last_commit)"
            )
        },
        "/api/v1/repos/{owner}/{name}": {
            "get": _op("One repository", params=REPO, responses={"200": "OK", "404": "unknown"})
        },
        "/api/v1/repos/{name}": {
            "get": _op(
                "One repository by its bare name (when unique)",
                params=[("name", "path", "repository name")],
                responses={"200": "OK", "404": "unknown or ambiguous"},
            )
        },
        "/api/v1/repos/{owner}/{name}/metrics": {
            "get": _op(
                "Score components, reasons, warnings and history",
                params=[*REPO, ("days", "query", "history length in days (90)")],
                responses={"200": "OK", "404": "unknown"},
            )
        },
        "/api/v1/repos/{name}/metrics": {
            "get": _op(
                "Score components by bare repository name",
                params=[("name", "path", "repository name")],
                responses={"200": "OK", "404": "unknown"},
            )
        },
        "/api/v1/vulnerabilities": {
            "get": _op(
                "Dependabot alerts",
                params=[
                    ("severity", "query", "critical|high|medium|low"),
                    ("state", "query", "open, fixed…"),
                    ("repo", "query", "owner/name"),
                    ("package", "query", "package name"),
                    LIMIT,
                ],
            )
        },
        "/api/v1/builds": {
            "get": _op(
                "Recent CI runs",
                params=[
                    ("repo", "query", "owner/name"),
                    ("branch", "query", "branch"),
                    ("status", "query", "success, failure…"),
                    LIMIT,
                ],
            )
        },
        "/api/v1/deliveries": {
            "get": _op(
                "Recent deliveries and their processing status",
                params=[
                    ("status", "query", "pending|processed|ignored|error"),
                    ("event", "query", "event name"),
                    LIMIT,
                    ("before", "query", "page: ids below"),
                ],
            )
        },
        "/api/v1/alerts": {
            "get": _op(
                "Active and recent alerts with delivery per channel",
                params=[("state", "query", "firing|resolved"), LIMIT],
            )
        },
        "/api/v1/rules": {"get": _op("Rules with fired/error counts; channels (masked)")},
        "/api/v1/silences": {
            "get": _op("Silences and whether each is active"),
            "post": _op(
                "Create a silence",
                body="rule and/or repo pattern; duration or "
                "ends_at; optional cron (recurring) and comment",
                responses={"201": "created", "400": "invalid"},
            ),
        },
        "/api/v1/silences/{silence_id}": {
            "delete": _op(
                "Delete a silence",
                params=[("silence_id", "path", "id")],
                responses={"200": "deleted", "404": "unknown"},
            )
        },
        "/api/v1/outbox": {
            "get": _op(
                "Notices and their delivery state",
                params=[("status", "query", "pending|sent|parked"), LIMIT],
            )
        },
        "/api/v1/report": {
            "post": _op(
                "A CI job's report (heartbeat token)",
                security=False,
                body="repo (owner/name), status, optional workflow, branch, sha, url, coverage, id",
                responses={
                    "202": "stored",
                    "200": "duplicate id",
                    "400": "invalid",
                    "401": "bad token",
                    "404": "unknown repository",
                },
            )
        },
        "/api/v1/heartbeats/{owner}/{repo}/{path}": {
            "post": _op(
                "A heartbeat (heartbeat token)",
                security=False,
                params=[
                    ("owner", "path", "owner"),
                    ("repo", "path", "repository"),
                    ("path", "path", "path within the repository"),
                ],
                body="report (GOOD|BAD, default GOOD), note",
                responses={
                    "202": "stored",
                    "400": "invalid",
                    "401": "bad token",
                    "403": "no tokens configured",
                },
            )
        },
        "/api/v1/openapi.json": {"get": _op("This description", security=False)},
    }
    for name in ("summary.md", "summary.org", "summary.md.json"):
        paths[f"/{name}"] = {
            "get": _op(
                f"The status summary ({name})",
                security=False,
                responses={"200": "OK", "503": "not generated yet"},
            )
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pulsehook",
            "version": __version__,
            "description": "Keeps the pulse of a GitHub ecosystem.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                }
            },
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "PULSEHOOK_API_TOKEN, when set",
                }
            },
        },
        "security": [{"token": []}],
    }


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(document())
