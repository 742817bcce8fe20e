"""The metrics API in the seed's shape: health overview, repositories, their metrics,
vulnerabilities and builds. Unknown repository -> 404 in the one error shape."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import BadRequest
from ..store import metrics
from .api import int_param
from .responses import FastJSON, error
from .services import services


def _name(request: Request) -> str:
    params = request.path_params
    return f"{params['owner']}/{params['name']}" if "owner" in params else params["name"]


def _resolve(db: Database, name: str) -> dict[str, Any] | None:
    """By "owner/name", or by the bare name when only one repository has it."""
    found = metrics.find_repo(db, name)
    if found or "/" in name:
        return found
    rows = list(
        db.query(
            "SELECT id, full_name FROM repositories WHERE full_name LIKE ? AND deleted = 0",
            (f"%/{name}",),
        )
    )
    return rows[0] if len(rows) == 1 else None


async def health(request: Request) -> FastJSON:
    svc = services(request)
    now = svc.clock.now()
    return FastJSON(await svc.readers.run(lambda db: metrics.overview(db, now)))


async def repos(request: Request) -> FastJSON:
    svc = services(request)
    now = svc.clock.now()
    rows = await svc.readers.run(lambda db: metrics.all_repos(db, now))
    return FastJSON({"repos": rows, "count": len(rows)})


async def repo(request: Request) -> Response:
    svc = services(request)
    name = _name(request)
    now = svc.clock.now()

    def query(db: Database) -> dict[str, Any] | None:
        found = _resolve(db, name)
        if found is None:
            return None
        return metrics.one_repo(db, found["id"], now)

    row = await svc.readers.run(query)
    if row is None:
        return error(404, "not_found", f"unknown repository {name!r}")
    return FastJSON(row)


async def repo_metrics(request: Request) -> Response:
    svc = services(request)
    name = _name(request)
    days = int_param(request, "days", 90, high=3650) or 90
    now = svc.clock.now()

    def query(db: Database) -> dict[str, Any] | None:
        found = _resolve(db, name)
        if found is None:
            return None
        return {"name": found["full_name"]} | metrics.repo_metrics(
            db, found["id"], days=days, now=now
        )

    body = await svc.readers.run(query)
    if body is None:
        return error(404, "not_found", f"unknown repository {name!r}")
    return FastJSON(body)


def _choice(request: Request, name: str, allowed: tuple[str, ...] | None = None) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and allowed is not None and value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}")
    return value


async def vulnerabilities(request: Request) -> FastJSON:
    svc = services(request)
    severity = _choice(request, "severity", ("critical", "high", "medium", "low", "unknown"))
    state = _choice(request, "state")
    repo_name = _choice(request, "repo")
    package = _choice(request, "package")
    limit = int_param(request, "limit", 200, high=5000) or 200
    rows = await svc.readers.run(
        lambda db: metrics.vulnerabilities(
            db, severity=severity, state=state, repo=repo_name, package=package, limit=limit
        )
    )
    return FastJSON({"vulnerabilities": rows, "count": len(rows)})


async def builds(request: Request) -> FastJSON:
    svc = services(request)
    repo_name, branch, status = (_choice(request, k) for k in ("repo", "branch", "status"))
    limit = int_param(request, "limit", 100, high=5000) or 100
    rows = await svc.readers.run(
        lambda db: metrics.builds(db, repo=repo_name, branch=branch, status=status, limit=limit)
    )
    return FastJSON({"builds": rows, "count": len(rows)})


ROUTES = [
    Route("/api/v1/health", health, methods=["GET"]),
    Route("/api/v1/repos", repos, methods=["GET"]),
    Route("/api/v1/repos/{owner}/{name}/metrics", repo_metrics, methods=["GET"]),
    Route("/api/v1/repos/{name}/metrics", repo_metrics, methods=["GET"]),
    Route("/api/v1/repos/{owner}/{name}", repo, methods=["GET"]),
    Route("/api/v1/repos/{name}", repo, methods=["GET"]),
    Route("/api/v1/vulnerabilities", vulnerabilities, methods=["GET"]),
    Route("/api/v1/builds", builds, methods=["GET"]),
]
