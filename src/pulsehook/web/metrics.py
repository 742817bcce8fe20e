"""The metrics API in the seed's shape: health overview, repositories, their metrics,
vulnerabilities and builds. Unknown repository -> 404 in the one error shape."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..store import metrics
from ..store.db import Tx
from ..store.queries import SORTS, RepoFilter, RepoRef, find_repos
from .models import (
    BareRepoPath,
    BuildsQuery,
    MetricsQuery,
    NoQuery,
    RepoPath,
    ReposQuery,
    VulnerabilitiesQuery,
    decode_cursor,
    encode_cursor,
    read_path,
    read_query,
)
from .responses import FastJSON, error
from .services import services


def repo_name(request: Request) -> str:
    if "owner" in request.path_params:
        path = read_path(request, RepoPath)
        return f"{path.owner}/{path.name}"
    return read_path(request, BareRepoPath).name


def resolve_repo(db: Tx, name: str) -> RepoRef | None:
    """By "owner/name" (a deleted repository too, when no live one has the name), or
    by the bare name, in any case, when exactly one live repository has it."""
    if "/" in name:
        found = find_repos(db, name, include_deleted=True)
        return found[0] if found else None
    found = find_repos(db, name, any_case=True)
    return found[0] if len(found) == 1 else None


async def health(request: Request) -> FastJSON:
    svc = services(request)
    read_query(request, NoQuery)
    now = svc.clock.now()
    return FastJSON(await svc.readers.run(lambda db: metrics.overview(db, now)))


async def repos(request: Request) -> FastJSON:
    """One page of repositories, each in the seed's shape; ``next_cursor`` while
    there are more. Sorted, filtered and continued in SQL: a page of a thousand
    costs the same at 10,000 repositories as at 100."""
    svc = services(request)
    query = read_query(request, ReposQuery)
    after = (
        None
        if query.cursor is None
        else decode_cursor(query.cursor, query.sort, len(SORTS[query.sort]))
    )
    where = RepoFilter(
        owner=query.owner,
        search=query.q,
        state=query.state,
        min_score=query.min_score,
        max_score=query.max_score,
    )
    now = svc.clock.now()
    rows, total, last = await svc.readers.run(
        lambda db: metrics.repo_page(
            db, now, sort=query.sort, limit=query.limit, after=after, where=where
        )
    )
    return FastJSON(
        {
            "repos": rows,
            "count": len(rows),
            "total": total,
            "next_cursor": None if last is None else encode_cursor(query.sort, last),
        }
    )


async def repo(request: Request) -> Response:
    svc = services(request)
    name = repo_name(request)
    read_query(request, NoQuery)
    now = svc.clock.now()

    def query(db: Tx) -> dict[str, Any] | None:
        found = resolve_repo(db, name)
        if found is None:
            return None
        return metrics.one_repo(db, found.id, now)

    row = await svc.readers.run(query)
    if row is None:
        return error(404, "not_found", f"unknown repository {name!r}")
    return FastJSON(row)


async def repo_metrics(request: Request) -> Response:
    svc = services(request)
    name = repo_name(request)
    days = read_query(request, MetricsQuery).days
    now = svc.clock.now()

    def query(db: Tx) -> dict[str, Any] | None:
        found = resolve_repo(db, name)
        if found is None:
            return None
        return {"name": found.full_name} | metrics.repo_metrics(db, found.id, days=days, now=now)

    body = await svc.readers.run(query)
    if body is None:
        return error(404, "not_found", f"unknown repository {name!r}")
    return FastJSON(body)


async def vulnerabilities(request: Request) -> FastJSON:
    svc = services(request)
    given = read_query(request, VulnerabilitiesQuery)
    rows = await svc.readers.run(
        lambda db: metrics.vulnerabilities(
            db,
            severity=given.severity,
            state=given.state,
            repo=given.repo,
            package=given.package,
            limit=given.limit,
        )
    )
    return FastJSON({"vulnerabilities": rows, "count": len(rows)})


async def builds(request: Request) -> FastJSON:
    svc = services(request)
    given = read_query(request, BuildsQuery)
    rows = await svc.readers.run(
        lambda db: metrics.builds(
            db, repo=given.repo, branch=given.branch, status=given.status, limit=given.limit
        )
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
