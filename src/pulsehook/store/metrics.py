"""Read-side queries for the metrics API (reader connections; no writes)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from .. import health as scoring
from ..clock import iso, parse_iso
from . import queries
from .db import Tx
from .queries import RepoFilter
from .queries import repos as repo_rows

STALE_AFTER = timedelta(hours=24)


def _stale(at: str | None, now: datetime) -> bool:
    if not at:
        return True
    return parse_iso(at) < now - STALE_AFTER


def score_facts(score: float | None, components: str | dict[str, Any] | None) -> dict[str, Any]:
    """``coverage`` and ``provisional`` of a stored score, from its stored components:
    every page and endpoint derives them here, so none can disagree."""
    parsed = json.loads(components) if isinstance(components, str) else components or {}
    cover = scoring.stored_coverage(parsed)
    return {
        "coverage": cover.as_dict() if cover is not None else None,
        "provisional": scoring.provisional(score, cover),
    }


def seed_shape(
    summary: dict[str, Any], health: dict[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """One repository in the seed's response shape, plus pulsehook's details."""
    graph = summary["dependency_graph"]
    outdated = summary["dependency_prs"]["open"]
    coverage = summary["coverage"]
    seen = summary.get("last_seen_at")
    return {
        "name": summary["name"],
        "health_score": health["score"] if health else None,
        **score_facts(
            health["score"] if health else None, health["components"] if health else None
        ),
        "metrics": {
            "build_status": summary["build"]["state"],
            "coverage": coverage["value"] if coverage else None,
            # The guide's figures: every package of the dependency graph, those an
            # open alert names, and those a Dependabot pull request would update.
            # Without a graph (disabled, or not read yet) the total is unknown.
            "dependencies": {
                "total": graph["packages"],
                "outdated": outdated,
                "vulnerable": graph["vulnerable"],
                "graph": graph["state"],
            },
            "last_commit": summary["last_activity_at"] or summary["last_push_at"],
        },
        "archived": summary["archived"],
        "url": summary["url"],
        "warnings": json.loads(health["warnings"]) if health else [],
        "stale": _stale(seen, now),
        "details": summary,
    }


def repo_page(
    db: Tx,
    now: datetime,
    *,
    sort: str,
    limit: int,
    after: list[Any] | None,
    where: RepoFilter,
) -> tuple[list[dict[str, Any]], int, list[Any] | None]:
    """A page of repositories in the seed's shape, how many match, the key after it."""
    rows, health, total, last = queries.repo_page(
        db, sort=sort, limit=limit, after=after, where=where
    )
    return [seed_shape(r, health.get(r["id"]), now) for r in rows], total, last


def table_page(
    db: Tx,
    now: datetime,
    *,
    column: str,
    descending: bool,
    search: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """A page of the dashboard's table in the seed's shape, and how many match."""
    rows, health, total = queries.table_page(
        db, column=column, descending=descending, search=search, limit=limit, offset=offset
    )
    return [seed_shape(r, health.get(r["id"]), now) for r in rows], total


def one_repo(db: Tx, repo_id: int, now: datetime) -> dict[str, Any] | None:
    rows = repo_rows(db, repo_id=repo_id, include_deleted=True)
    if not rows:
        return None
    health = next(db.query("SELECT * FROM health WHERE repo_id = ?", (repo_id,)), None)
    return seed_shape(rows[0], health, now)


def repo_metrics(db: Tx, repo_id: int, *, days: int = 90, now: datetime) -> dict[str, Any]:
    row = next(db.query("SELECT * FROM health WHERE repo_id = ?", (repo_id,)), None)
    history = [
        {"at": h["at"], "score": h["score"], "formula_version": h["formula_version"]}
        for h in db.query(
            "SELECT at, score, formula_version FROM health_history"
            " WHERE repo_id = ? AND at >= ? ORDER BY at",
            (repo_id, iso(now - timedelta(days=days))),
        )
    ]
    return {
        "health_score": row["score"] if row else None,
        **score_facts(row["score"] if row else None, row["components"] if row else None),
        "formula_version": row["formula_version"] if row else None,
        "computed_at": row["computed_at"] if row else None,
        "components": json.loads(row["components"]) if row else {},
        "warnings": json.loads(row["warnings"]) if row else [],
        "history": history,
        "stale": _stale(row["computed_at"] if row else None, now),
    }


def overview(db: Tx, now: datetime) -> dict[str, Any]:
    figures = queries.ecosystem(db, iso(now - STALE_AFTER))
    severities = {
        s["severity"]: s["n"]
        for s in db.query(
            "SELECT severity, count(*) AS n FROM vulnerabilities WHERE state = 'open'"
            " GROUP BY severity"
        )
    }
    statuses = overview_statuses(db)
    firing = next(db.query("SELECT count(*) AS n FROM alerts WHERE state = 'firing'"))["n"]
    average = figures["average"]
    lowest = [
        {"name": r["name"], "id": r["id"], "health_score": r["health_score"]}
        | score_facts(r["health_score"], r["components"])
        for r in figures["lowest"]
    ]
    return {
        "repositories": figures["repositories"],
        "health_score": round(average, 1) if average is not None else None,
        "scored": figures["scored"],
        "lowest": lowest,
        "builds": figures["builds"],
        "vulnerabilities": {s: severities.get(s, 0) for s in ("critical", "high", "medium", "low")},
        "summary": statuses,
        "alerts_firing": firing,
        "stale": figures["stale"],
        "generated_at": iso(now),
    }


def overview_statuses(db: Tx) -> dict[str, int]:
    """How many summary items are ERROR, MISSING and OK (as of the last summary)."""
    found = {
        s["status"]: s["n"]
        for s in db.query("SELECT status, count(*) AS n FROM summary_items GROUP BY status")
    }
    return {s: found.get(s, 0) for s in ("ERROR", "MISSING", "OK")}


def vulnerabilities(
    db: Tx,
    *,
    severity: str | None,
    state: str | None,
    repo: str | None,
    package: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    where, params = [], []
    for column, value in (
        ("v.severity", severity),
        ("v.state", state),
        ("r.full_name", repo),
        ("v.package", package),
    ):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return list(
        db.query(
            "SELECT r.full_name AS repo, v.number, v.state, v.severity, v.package, v.ecosystem,"
            " v.manifest, v.ghsa_id, v.cve_id, v.summary, v.description, v.url, v.created_at,"
            " v.updated_at, v.fixed_at, v.dismissed_at FROM vulnerabilities v"
            f" JOIN repositories r ON r.id = v.repo_id {clause}"
            " ORDER BY CASE v.severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1"
            " WHEN 'medium' THEN 2 ELSE 3 END, v.updated_at DESC LIMIT ?",
            (*params, limit),
        )
    )


def builds(
    db: Tx, *, repo: str | None, branch: str | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    where, params = ["b.source != 'workflow_job'"], []
    for column, value in (("r.full_name", repo), ("b.branch", branch), ("b.status", status)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    return list(
        db.query(
            "SELECT r.full_name AS repo, b.workflow, b.branch, b.default_branch, b.status,"
            " b.event, b.run_id, b.attempt, b.url, b.started_at, b.completed_at, b.actor,"
            " b.head_sha, b.source FROM builds b JOIN repositories r ON r.id = b.repo_id"
            f" WHERE {' AND '.join(where)}"
            " ORDER BY coalesce(b.completed_at, b.updated_at) DESC LIMIT ?",
            (*params, limit),
        )
    )
