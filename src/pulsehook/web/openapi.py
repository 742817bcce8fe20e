"""The OpenAPI 3.1 description of the HTTP API, served at ``/api/v1/openapi.json``.

Request bodies and parameters of the API's own endpoints are generated from the
models the handlers parse them with (``models.py``), so the description cannot
drift from what is enforced. The webhook, heartbeat, report and summary routes
read their inputs themselves; they are described here by hand. A test checks the
description against the app's routes, so an endpoint without one fails the build.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from .. import __version__
from .models import (
    INT64_MAX,
    AlertsQuery,
    BareRepoPath,
    BuildsQuery,
    DeliveriesQuery,
    DependenciesQuery,
    Error,
    MetricsQuery,
    NoQuery,
    NoticePath,
    OutboxQuery,
    RecoveryQuery,
    RepoHealth,
    RepoPath,
    ReposQuery,
    ScoredRepository,
    SilenceCreated,
    SilenceDeleted,
    SilenceIn,
    SilencePath,
    Silences,
    SummaryItemsQuery,
    VulnerabilitiesQuery,
)
from .report import STATUSES as REPORT_STATUSES

REF = "#/components/schemas/{model}"
ERROR = {"$ref": REF.format(model="Error")}
# Models whose schemas go to components/schemas, referenced by name.
COMPONENTS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (Error, "serialization"),
    (SilenceIn, "validation"),
    (Silences, "serialization"),
    (SilenceCreated, "serialization"),
    (SilenceDeleted, "serialization"),
    (ScoredRepository, "serialization"),
    (RepoHealth, "serialization"),
]
UNAUTHORIZED = {"401": "missing or wrong API token"}
UNAVAILABLE = {"503": "storage unavailable"}
BAD_PARAMS = {"422": "invalid parameter(s): the message names each and why"}
BAD_BODY = {
    "400": "body not a JSON object (not JSON, not UTF-8, an array…)",
    "413": "body too large",
    "415": "not Content-Type: application/json",
    "422": "invalid field(s): the message names each and why",
}


@dataclass(frozen=True)
class Op:
    """One operation: its inputs as models (or by hand), its answers."""

    summary: str
    answers: dict[str, str] = field(default_factory=lambda: {"200": "OK"})
    query: type[BaseModel] | None = None
    path: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    answer: dict[str, type[BaseModel]] = field(default_factory=dict)  # status -> schema
    protected: bool = True  # the API token
    hand_params: list[dict[str, Any]] = field(default_factory=list)  # parameter objects
    hand_body: dict[str, Any] | None = None
    hand_body_required: bool = False


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without pydantic's ``null`` alternative (an absent
    parameter is the None), its title and its default None."""
    schema = {k: v for k, v in schema.items() if k != "title"}
    choices = [s for s in schema.pop("anyOf", []) if s != {"type": "null"}]
    if len(choices) == 1:
        schema = choices[0] | schema
    elif choices:
        schema["anyOf"] = choices
    if schema.get("default", 0) is None:
        del schema["default"]
    return schema


def parameters(model: type[BaseModel], where: str) -> list[dict[str, Any]]:
    """OpenAPI parameters from a model's fields (``where``: query or path)."""
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    found = []
    for name, prop in schema.get("properties", {}).items():
        plain = _plain(prop)
        description = plain.pop("description", None)
        param: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": plain,
        }
        if where == "query" and not param["required"]:
            param["allowEmptyValue"] = True  # ``?state=`` is as if not given
        if description:
            param["description"] = description
        found.append(param)
    return found


def _answer(code: str, text: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    if schema is None and code[0] in "45":
        schema = ERROR
    return {"description": text} | (
        {"content": {"application/json": {"schema": schema}}} if schema else {}
    )


def operation(op: Op, refs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``refs``: each component's reference, by model name."""
    answers = dict(op.answers)
    if op.protected:
        answers |= UNAUTHORIZED | UNAVAILABLE
    if op.query is not None or op.path is not None:
        answers |= BAD_PARAMS
    if op.body is not None:
        answers |= BAD_BODY
    schemas = {code: refs[model.__name__] for code, model in op.answer.items()}
    out: dict[str, Any] = {
        "summary": op.summary,
        "responses": {
            code: _answer(code, answers[code], schemas.get(code)) for code in sorted(answers)
        },
    }
    params = [
        *(parameters(op.path, "path") if op.path else []),
        *(parameters(op.query, "query") if op.query else []),
        *op.hand_params,
    ]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[op.body.__name__]}},
        }
    elif op.hand_body is not None:
        out["requestBody"] = {
            "required": op.hand_body_required,
            "content": {"application/json": {"schema": op.hand_body}},
        }
    if not op.protected:
        out["security"] = []
    return out


ONE_LINE = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"  # no control characters
REPORT_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["repo"],
    "anyOf": [{"required": ["status"]}, {"required": ["coverage"]}],
    "description": "a status, a coverage figure, or both; id makes a retry a duplicate",
    "properties": {
        "repo": {"type": "string", "maxLength": 140, "description": "owner/name, known already"},
        "status": {"enum": list(REPORT_STATUSES)},
        "coverage": {"type": "number", "minimum": 0, "maximum": 100},
        **{
            k: {
                "type": "string",
                "maxLength": 64,
                "pattern": ONE_LINE,
                "description": "one line (256 bytes)",
            }
            for k in ("workflow", "job", "branch")
        },
        "id": {"type": ["string", "integer"], "description": "the report's id (128 bytes)"},
        "url": {"type": "string", "format": "uri", "description": "http(s), 2048 bytes"},
        "sha": {"type": "string", "pattern": "^[0-9a-fA-F]{7,64}$"},
        **{
            k: {"type": "integer", "minimum": 0, "maximum": INT64_MAX}
            for k in ("run_id", "attempt")
        },
    },
}
GITHUB_NAME = {"pattern": "^[A-Za-z0-9_.-]{1,100}$", "not": {"enum": [".", ".."]}}


def _path_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"} | schema,
        "description": description,
    }


HEARTBEAT_BODY: dict[str, Any] = {
    "type": "object",
    "description": "JSON or form-encoded; both optional (also as query parameters)",
    "properties": {
        "report": {
            "type": "string",
            "pattern": "^([Gg][Oo][Oo][Dd]|[Bb][Aa][Dd])?$",
            "description": "GOOD or BAD (any case), default GOOD",
        },
        "note": {"type": ["string", "number"], "description": "shown with the item (1024 bytes)"},
    },
}


def operations() -> dict[str, dict[str, Op]]:
    repo_answers = {"200": "OK", "404": "unknown repository"}
    heartbeat = Op(
        "A heartbeat (heartbeat token); a last segment start, fail or 0-255 is a signal",
        hand_params=[
            _path_param("owner", "owner", GITHUB_NAME),
            _path_param("repo", "repository", GITHUB_NAME),
            _path_param(
                "path",
                "path within the repository (512 bytes, one line)",
                {"pattern": ONE_LINE.replace("*", "+")},
            ),
        ],
        hand_body=HEARTBEAT_BODY,
        answers={
            "202": "stored",
            "400": "unreadable body, or report not GOOD or BAD",
            "401": "bad token",
            "403": "no tokens configured, or not one for this repository",
            "404": "no such route (a segment with a line break)",
            "409": "the item is kept by webhooks",
            "413": "body too large",
            "422": "a path or note past its bound",
            "503": "storage unavailable",
        },
        protected=False,
    )
    paths: dict[str, dict[str, Op]] = {
        "/webhooks/github": {
            "post": Op(
                "Receive a GitHub webhook delivery (HMAC-SHA256 in X-Hub-Signature-256)",
                hand_body={
                    "type": "object",
                    "description": "the event payload (JSON, or form-encoded in `payload`)",
                },
                answers={
                    "200": "ping, or a redelivery already stored",
                    "202": "stored",
                    "400": "missing header or invalid JSON",
                    "401": "bad signature",
                    "413": "body too large",
                    "415": "unsupported content type",
                    "503": "storage unavailable: nothing stored",
                },
                protected=False,
            )
        },
        "/healthz": {
            "get": Op(
                "Liveness: the process answers (says nothing else)",
                answers={"200": "alive"},
                protected=False,
            )
        },
        "/readyz": {
            "get": Op(
                "Readiness: deliveries can be stored and processing runs; with the scan's"
                " last round as figures (how far behind it is), which never make it unready",
                answers={"200": "ready", "503": "not ready, with the reasons"},
                protected=False,
            )
        },
        "/api/v1/status": {
            "get": Op("Version, worker state, deliveries by status and the scan's last round")
        },
        "/metrics": {
            "get": Op(
                "Prometheus metrics (text exposition format)",
                answers={"200": "the metrics"},
            )
        },
        "/api/v1/health": {
            "get": Op(
                "Ecosystem overview: average score, the lowest (each with coverage and"
                " provisional), builds, vulnerabilities, summary counts, firing alerts",
                query=NoQuery,
            )
        },
        "/api/v1/repos": {
            "get": Op(
                "A page of repositories (sorted and filtered by the server; next_cursor"
                " while there are more): health_score with coverage and provisional (as for"
                " one repository), and metrics (build_status, coverage, dependencies,"
                " last_commit)",
                query=ReposQuery,
            )
        },
        "/api/v1/repos/{owner}/{name}": {
            "get": Op(
                "One repository: health_score with its coverage (how much rests on data)"
                " and provisional (under half the weight)",
                answers=repo_answers,
                path=RepoPath,
                query=NoQuery,
                answer={"200": ScoredRepository},
            )
        },
        "/api/v1/repos/{name}": {
            "get": Op(
                "One repository by its bare name (when unique)",
                answers={"200": "OK", "404": "unknown or ambiguous"},
                path=BareRepoPath,
                query=NoQuery,
                answer={"200": ScoredRepository},
            )
        },
        "/api/v1/repos/{owner}/{name}/metrics": {
            "get": Op(
                "Score components, reasons, warnings and history; coverage and provisional"
                " as for the repository",
                answers=repo_answers,
                path=RepoPath,
                query=MetricsQuery,
                answer={"200": RepoHealth},
            )
        },
        "/api/v1/repos/{name}/metrics": {
            "get": Op(
                "Score components by bare repository name (when unique)",
                answers={"200": "OK", "404": "unknown or ambiguous"},
                path=BareRepoPath,
                query=MetricsQuery,
                answer={"200": RepoHealth},
            )
        },
        "/api/v1/vulnerabilities": {
            "get": Op("Dependabot alerts, most severe first", query=VulnerabilitiesQuery)
        },
        "/api/v1/builds": {"get": Op("Recent CI runs", query=BuildsQuery)},
        "/api/v1/dependencies": {
            "get": Op(
                "With package=, every repository using it and its versions; else the"
                " packages of every dependency graph, most used first",
                query=DependenciesQuery,
            )
        },
        "/api/v1/repos/{owner}/{name}/dependencies": {
            "get": Op(
                "A repository's dependency graph: packages, edges, vulnerable ones",
                answers=repo_answers,
                path=RepoPath,
                query=NoQuery,
            )
        },
        "/api/v1/deliveries": {
            "get": Op("Recent deliveries and their processing status", query=DeliveriesQuery)
        },
        "/api/v1/alerts": {
            "get": Op("Active and recent alerts with delivery per channel", query=AlertsQuery)
        },
        "/api/v1/rules": {
            "get": Op("Rules with fired/error counts; channels (masked)", query=NoQuery)
        },
        "/api/v1/silences": {
            "get": Op(
                "Silences and whether each is active",
                query=NoQuery,
                answer={"200": Silences},
            ),
            "post": Op(
                "Create a silence",
                answers={"201": "created"},
                body=SilenceIn,
                answer={"201": SilenceCreated},
            ),
        },
        "/api/v1/silences/{silence_id}": {
            "delete": Op(
                "Delete a silence",
                answers={"200": "deleted", "404": "unknown"},
                path=SilencePath,
                answer={"200": SilenceDeleted},
            )
        },
        "/api/v1/outbox": {"get": Op("Notices and their delivery state", query=OutboxQuery)},
        "/api/v1/recovery": {
            "get": Op(
                "Missed deliveries pulsehook asked GitHub to redeliver, and what came of it",
                query=RecoveryQuery,
            )
        },
        "/api/v1/summary/items": {
            "get": Op(
                "The summary's items: status, schedule, and whether a workflow file's own"
                " schedule expects them (implicit) or a declaration does",
                query=SummaryItemsQuery,
            )
        },
        "/api/v1/outbox/{notice_id}": {
            "get": Op(
                "One notice: what it said, its delivery, the alerts it names",
                answers={"200": "the notice", "404": "unknown"},
                path=NoticePath,
            )
        },
        "/api/v1/report": {
            "post": Op(
                "A CI job's report (heartbeat token)",
                hand_body=REPORT_BODY,
                hand_body_required=True,
                answers={
                    "202": "stored",
                    "200": "duplicate id",
                    "400": "not a JSON object, or no status nor coverage",
                    "401": "bad token",
                    "403": "no report token configured, or not one for this repository",
                    "404": "unknown repository",
                    "413": "body too large",
                    "422": "a field past its bound",
                    "503": "storage unavailable",
                },
                protected=False,
            )
        },
        "/api/v1/heartbeats/{owner}/{repo}/{path}": {
            # GET is the same ping for `curl -fsS URL` (its query: report, note, token).
            method: heartbeat
            for method in ("get", "post")
        },
        "/api/v1/openapi.json": {"get": Op("This description", protected=False)},
    }
    for name in ("summary.md", "summary.org", "summary.md.json"):
        paths[f"/{name}"] = {
            "get": Op(
                f"The status summary ({name})",
                answers={"200": "OK", "503": "not generated yet"},
                protected=False,
            )
        }
    return paths


def document() -> dict[str, Any]:
    refs, defs = models_json_schema(COMPONENTS, ref_template=REF)
    by_name = {model.__name__: ref for (model, _), ref in refs.items()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pulsehook",
            "version": __version__,
            "description": "Keeps the pulse of a GitHub ecosystem.",
        },
        "paths": {
            path: {method: operation(op, by_name) for method, op in ops.items()}
            for path, ops in operations().items()
        },
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the API token (PULSEHOOK_API_TOKEN, or the one "
                    "generated in data/api_token)",
                }
            },
        },
        "security": [{"token": []}],
    }


@functools.cache
def rendered() -> bytes:
    """The description is the same for the life of the process: built once."""
    return orjson.dumps(document())


async def openapi(_request: Request) -> Response:
    return Response(rendered(), media_type="application/json")
