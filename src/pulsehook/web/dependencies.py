"""The dependency graph in the API: who uses a package, the packages most used, and
one repository's graph (``store/dependencies.py``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..store import dependencies
from ..store.db import Tx
from .metrics import repo_name, resolve_repo
from .models import DependenciesQuery, NoQuery, read_query
from .responses import FastJSON, error
from .services import services


def package_use(db: Tx, package: str, ecosystem: str | None, limit: int) -> dict[str, Any]:
    """Each repository using the package, its versions, and whether an open alert
    names the package there."""
    rows = dependencies.package_users(db, package, ecosystem=ecosystem, limit=limit)
    vulnerable = dependencies.vulnerable_keys(db, sorted({r["repo_id"] for r in rows}))
    users: dict[tuple[str, str | None, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["repo"], r["ecosystem"], r["package_key"])
        entry = users.setdefault(
            key,
            {
                "repo": r["repo"],
                "ecosystem": r["ecosystem"],
                "name": r["name"],
                "versions": [],
                "vulnerable": ((r["ecosystem"] or ""), r["package_key"])
                in vulnerable.get(r["repo_id"], set()),
            },
        )
        if r["version"] is not None and r["version"] not in entry["versions"]:
            entry["versions"].append(r["version"])
    found = list(users.values())
    return {"package": package, "ecosystem": ecosystem, "repositories": found, "count": len(found)}


async def list_dependencies(request: Request) -> FastJSON:
    svc = services(request)
    given = read_query(request, DependenciesQuery)
    if given.package is not None:
        package = given.package
        return FastJSON(
            await svc.readers.run(lambda db: package_use(db, package, given.ecosystem, given.limit))
        )
    rows, total = await svc.readers.run(
        lambda db: dependencies.packages(db, search=given.q, limit=given.limit, offset=given.offset)
    )
    return FastJSON({"packages": rows, "count": len(rows), "total": total})


async def repo_dependencies(request: Request) -> Response:
    svc = services(request)
    name = repo_name(request)
    read_query(request, NoQuery)

    def query(db: Tx) -> dict[str, Any] | None:
        found = resolve_repo(db, name)
        if found is None:
            return None
        described = dependencies.describe(db, found.id)
        described.pop("tree")
        return {"name": found.full_name, **described}

    body = await svc.readers.run(query)
    if body is None:
        return error(404, "not_found", f"unknown repository {name!r}")
    return FastJSON(body)


ROUTES = [
    Route("/api/v1/dependencies", list_dependencies, methods=["GET"]),
    Route("/api/v1/repos/{owner}/{name}/dependencies", repo_dependencies, methods=["GET"]),
]
