"""Read-side queries for the API (run on reader connections)."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from ..facts import NEUTRAL_CONCLUSIONS

# A run's conclusion that makes its build "success".
GOOD = ("success",)


def latest_builds(db: Database, repo_id: int | None = None) -> list[dict[str, Any]]:
    """The last counted completed default-branch run of each workflow of each repository.

    Runs that say nothing about the code (cancelled, skipped, ...) are passed over.
    Read from ``workflow_state``, kept current as runs arrive.
    """
    where, params = ("WHERE repo_id = ?", (repo_id,)) if repo_id is not None else ("", ())
    return list(
        db.query(
            "SELECT repo_id, workflow, status, url, completed_at, run_id, event"
            f" FROM workflow_state {where} ORDER BY repo_id, workflow",
            params,
        )
    )


def build_state(workflows: list[dict[str, Any]]) -> str | None:
    """A repository's build state from its workflows' latest runs."""
    if not workflows:
        return None
    statuses = [w["status"] for w in workflows]
    if any(s not in GOOD and s not in NEUTRAL_CONCLUSIONS for s in statuses):
        return "failure"
    return "success" if any(s in GOOD for s in statuses) else statuses[0]


def repos(
    db: Database, *, include_deleted: bool = False, repo_id: int | None = None
) -> list[dict[str, Any]]:
    clauses = [] if include_deleted else ["deleted = 0"]
    params: tuple[Any, ...] = ()
    if repo_id is not None:
        clauses.append("id = ?")
        params = (repo_id,)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = {
        r["id"]: r
        for r in db.query(f"SELECT * FROM repositories {where} ORDER BY full_name", params)
    }
    builds: dict[int, list[dict[str, Any]]] = {}
    for b in latest_builds(db, repo_id):
        builds.setdefault(b["repo_id"], []).append(b)
    # One repository: every aggregate below reads by its key, never the whole table.
    one, only = ("repo_id = ? AND ", (repo_id,)) if repo_id is not None else ("", ())
    vulns: dict[int, dict[str, int]] = {}
    for v in db.query(
        f"SELECT repo_id, severity, count(*) AS n FROM vulnerabilities WHERE {one}state = 'open'"
        " GROUP BY repo_id, severity",
        only,
    ):
        vulns.setdefault(v["repo_id"], {})[v["severity"]] = v["n"]
    # The latest value on each default branch, one index lookup per repository.
    coverage = {
        c["repo_id"]: c
        for c in db.query(
            "SELECT c.repo_id, c.branch, c.value, c.delta, c.at, c.url FROM repositories r"
            " JOIN coverage c ON c.id = (SELECT id FROM coverage WHERE repo_id = r.id"
            "   AND (branch IS r.default_branch OR r.default_branch IS NULL)"
            "   ORDER BY at DESC, id DESC LIMIT 1)"
            + (" WHERE r.id = ?" if repo_id is not None else ""),
            only,
        )
    }
    deps = {
        d["repo_id"]: d["n"]
        for d in db.query(
            f"SELECT repo_id, count(*) AS n FROM dependency_prs WHERE {one}state = 'open'"
            " GROUP BY repo_id",
            only,
        )
    }
    return [
        repo_summary(
            row, builds.get(rid, []), vulns.get(rid, {}), coverage.get(rid), deps.get(rid, 0)
        )
        for rid, row in rows.items()
    ]


def repo_summary(
    row: dict[str, Any],
    workflows: list[dict[str, Any]],
    vulns: dict[str, int],
    coverage: dict[str, Any] | None,
    open_dependency_prs: int,
) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["full_name"],
        "owner": row["owner"],
        "url": row["url"],
        "default_branch": row["default_branch"],
        "archived": bool(row["archived"]),
        "deleted": bool(row["deleted"]),
        "tracked": bool(row["tracked"]),
        "private": bool(row["private"]),
        "build": {
            "state": build_state(workflows),
            "workflows": [
                {k: w[k] for k in ("workflow", "status", "url", "completed_at", "run_id", "event")}
                for w in workflows
            ],
        },
        "vulnerabilities": {
            "open": sum(vulns.values()),
            **{s: vulns.get(s, 0) for s in ("critical", "high", "medium", "low")},
        },
        "coverage": None
        if coverage is None
        else {k: coverage[k] for k in ("value", "delta", "branch", "at", "url")},
        "dependency_prs": {"open": open_dependency_prs},
        "last_push_at": row["last_push_at"] or None,
        "last_activity_at": row["last_activity_at"] or None,
        "first_seen_at": row["first_seen_at"],
        "last_seen_at": row["last_seen_at"],
    }
