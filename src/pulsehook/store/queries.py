"""Read-side queries for the API (run on reader connections)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..facts import NEUTRAL_CONCLUSIONS, PASSED_CONCLUSIONS, counted
from . import dependencies
from .db import Tx, present

# A run's conclusion that makes its build "success".
GOOD = tuple(sorted(PASSED_CONCLUSIONS))


def latest_builds(db: Tx, repo_id: int | None = None) -> list[dict[str, Any]]:
    """The last counted completed default-branch run of each workflow of each repository.

    Runs that say nothing about the code (cancelled, skipped, ...) are passed over.
    Read from ``workflow_state``, kept current as runs arrive.
    """
    return _latest_builds(db, None if repo_id is None else [repo_id])


def _latest_builds(db: Tx, ids: Sequence[int] | None) -> list[dict[str, Any]]:
    where, params = _among("repo_id", ids)
    return list(
        db.query(
            "SELECT repo_id, workflow, status, url, completed_at, run_id, event"
            f" FROM workflow_state {'WHERE ' + where if where else ''} ORDER BY repo_id, workflow",
            params,
        )
    )


def _health_of(db: Tx, ids: Sequence[int]) -> dict[int, Any]:
    """The health rows of ``ids``, by repository id."""
    if not ids:
        return {}
    among, only = _among("repo_id", ids)
    return {h["repo_id"]: h for h in db.query(f"SELECT * FROM health WHERE {among}", only)}


def _among(column: str, ids: Sequence[int] | None) -> tuple[str, tuple[Any, ...]]:
    """A condition keeping ``column`` to ``ids`` ("" for every row)."""
    if ids is None:
        return "", ()
    if not ids:
        return "1 = 0", ()  # PostgreSQL has no empty IN ()
    return f"{column} IN ({', '.join('?' * len(ids))})", tuple(ids)


def build_state(workflows: list[dict[str, Any]]) -> str | None:
    """A repository's build state from its workflows' latest runs."""
    if not workflows:
        return None
    statuses = [w["status"] for w in workflows]
    if any(s not in GOOD and counted(s) for s in statuses):
        return "failure"
    return "success" if any(s in GOOD for s in statuses) else statuses[0]


def repos(
    db: Tx, *, include_deleted: bool = False, repo_id: int | None = None
) -> list[dict[str, Any]]:
    """Every repository (or one), by name, in the summary shape."""
    clauses = [] if include_deleted else ["deleted = 0"]
    params: tuple[Any, ...] = ()
    if repo_id is not None:
        clauses.append("id = ?")
        params = (repo_id,)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = list(db.query(f"SELECT * FROM repositories {where} ORDER BY full_name", params))
    return summaries(db, rows, None if repo_id is None else [repo_id])


def summaries(
    db: Tx, rows: list[dict[str, Any]], ids: Sequence[int] | None
) -> list[dict[str, Any]]:
    """``rows`` of repositories in the summary shape, in their order. With ``ids``
    (theirs), every aggregate reads only those repositories, by key."""
    builds: dict[int, list[dict[str, Any]]] = {}
    for b in _latest_builds(db, ids):
        builds.setdefault(b["repo_id"], []).append(b)
    among, only = _among("repo_id", ids)
    one = f"{among} AND " if among else ""
    vulns: dict[int, dict[str, int]] = {}
    for v in db.query(
        f"SELECT repo_id, severity, count(*) AS n FROM vulnerabilities WHERE {one}state = 'open'"
        " GROUP BY repo_id, severity",
        only,
    ):
        vulns.setdefault(v["repo_id"], {})[v["severity"]] = v["n"]
    # The latest value on each default branch, one index lookup per repository.
    within, _ = _among("r.id", ids)
    coverage = {
        c["repo_id"]: c
        for c in db.query(
            "SELECT c.repo_id, c.branch, c.value, c.delta, c.at, c.url FROM repositories r"
            " JOIN coverage c ON c.id = (SELECT id FROM coverage WHERE repo_id = r.id"
            "   AND (branch IS r.default_branch OR r.default_branch IS NULL)"
            "   ORDER BY at DESC, id DESC LIMIT 1)" + (f" WHERE {within}" if within else ""),
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
    graphs = dependencies.graph_states(db, ids)
    vulnerable = dependencies.vulnerable_keys(db, ids)
    return [
        repo_summary(
            row,
            builds.get(row["id"], []),
            vulns.get(row["id"], {}),
            coverage.get(row["id"]),
            deps.get(row["id"], 0),
            graphs.get(row["id"]),
            len(vulnerable.get(row["id"], ())),
        )
        for row in rows
    ]


# What a page of repositories is sorted by: the key expressions, in order. The
# last two (name, id) make every key unique, so a cursor names one place.
SORTS: dict[str, tuple[str, ...]] = {
    "name": ("r.full_name", "r.id"),
    "score": (
        "(CASE WHEN h.score IS NULL THEN 1 ELSE 0 END)",
        "coalesce(h.score, 0)",
        "r.full_name",
        "r.id",
    ),
    "-score": (
        "(CASE WHEN h.score IS NULL THEN 1 ELSE 0 END)",
        "-coalesce(h.score, 0)",
        "r.full_name",
        "r.id",
    ),
}


def _sql_list(values: Sequence[str]) -> str:
    # Conclusions are this project's own constants, never input: safe as literals.
    assert all(v.isidentifier() for v in values)
    return ", ".join(f"'{v}'" for v in values)


# A repository's build state in SQL, as build_state() has it: failing when a
# workflow's last run is neither good nor saying nothing, else succeeding when one
# is good. Per repository ``r``, each an index lookup on workflow_state.
_RUNS = "SELECT 1 FROM workflow_state w WHERE w.repo_id = r.id"
_COUNTED = _sql_list(sorted({*GOOD, *NEUTRAL_CONCLUSIONS}))
_FAILING = f"EXISTS ({_RUNS} AND w.status NOT IN ({_COUNTED}))"
_SUCCEEDING = f"EXISTS ({_RUNS} AND w.status IN ({_sql_list(GOOD)}))"


@dataclass(frozen=True)
class RepoFilter:
    """Which repositories a page lists (every field optional)."""

    owner: str | None = None
    search: str | None = None  # a part of the full name, any case
    state: str | None = None  # the build state: "success" or "failure"
    min_score: float | None = None
    max_score: float | None = None


def repo_page(
    db: Tx,
    *,
    sort: str,
    limit: int,
    after: Sequence[Any] | None,
    where: RepoFilter,
) -> tuple[list[dict[str, Any]], dict[int, Any], int, list[Any] | None]:
    """One page of repositories: (summaries, their health rows by id, how many
    match in all, the key to continue after, or None on the last page).

    Sorted and filtered in SQL, continued by key (``after``: the last key of the
    page before), so a page costs the same wherever it is."""
    keys = SORTS[sort]
    clauses: list[str] = ["r.deleted = 0"]
    params: list[Any] = []
    if where.owner:
        clauses.append("lower(r.owner) = lower(?)")
        params.append(where.owner)
    if where.search:
        clauses.append("instr(lower(r.full_name), lower(?)) > 0")
        params.append(where.search)
    if where.min_score is not None:
        clauses.append("h.score >= ?")
        params.append(where.min_score)
    if where.max_score is not None:
        clauses.append("h.score <= ?")
        params.append(where.max_score)
    if where.state == "failure":
        clauses.append(_FAILING)
    elif where.state is not None:
        clauses.append(f"NOT {_FAILING} AND {_SUCCEEDING}")
    base = (
        f"FROM repositories r LEFT JOIN health h ON h.repo_id = r.id WHERE {' AND '.join(clauses)}"
    )
    total = int(next(db.query(f"SELECT count(*) AS n {base}", params))["n"])
    page_clause, page_params = "", list[Any]()
    if after is not None:
        page_clause = f" AND ({', '.join(keys)}) > ({', '.join('?' * len(keys))})"
        page_params = list(after)
    key_columns = ", ".join(f"{k} AS _k{i}" for i, k in enumerate(keys))
    found = list(
        db.query(
            f"SELECT r.*, {key_columns} {base}{page_clause} ORDER BY {', '.join(keys)} LIMIT ?",
            [*params, *page_params, limit + 1],
        )
    )
    more, found = len(found) > limit, found[:limit]
    ids = [int(r["id"]) for r in found]
    health = _health_of(db, ids)
    last = [found[-1][f"_k{i}"] for i in range(len(keys))] if more and found else None
    return summaries(db, found, ids), health, total, last


def repo_summary(
    row: dict[str, Any],
    workflows: list[dict[str, Any]],
    vulns: dict[str, int],
    coverage: dict[str, Any] | None,
    open_dependency_prs: int,
    graph: dict[str, Any] | None,
    vulnerable_packages: int,
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
        "dependency_graph": {
            "state": graph["state"] if graph else "unknown",
            "packages": graph["packages"] if graph and graph["state"] == "ok" else None,
            "vulnerable": vulnerable_packages,
            "truncated": bool(graph["truncated"]) if graph else False,
            "reason": graph["reason"] if graph else None,
            "read_at": graph["read_at"] if graph else None,
        },
        "last_push_at": row["last_push_at"] or None,
        "last_activity_at": row["last_activity_at"] or None,
        "first_seen_at": row["first_seen_at"],
        "last_seen_at": row["last_seen_at"],
    }


def ecosystem(db: Tx, stale_before: str) -> dict[str, Any]:
    """The overview's figures, each an aggregate in SQL: nothing loads every
    repository. ``stale_before``: repositories not seen since are stale."""
    live = "FROM repositories r LEFT JOIN health h ON h.repo_id = r.id WHERE r.deleted = 0"
    totals = next(
        db.query(
            f"SELECT count(*) AS repos, count(h.score) AS scored, avg(h.score) AS average,"
            " sum(CASE WHEN r.last_seen_at IS NULL OR r.last_seen_at < ? THEN 1 ELSE 0 END)"
            f" AS stale {live}",
            (stale_before,),
        )
    )
    lowest = list(
        db.query(
            f"SELECT r.id, r.full_name AS name, h.score AS health_score, h.components"
            f" {live} AND h.score IS NOT NULL"
            " ORDER BY h.score, r.full_name LIMIT 5"
        )
    )
    states = {
        row["state"]: row["n"]
        for row in db.query(
            f"SELECT state, count(*) AS n FROM (SELECT CASE WHEN {_FAILING} THEN 'failure'"
            f" WHEN {_SUCCEEDING} THEN 'success'"
            " ELSE coalesce((SELECT status FROM workflow_state w WHERE w.repo_id = r.id"
            "   ORDER BY workflow LIMIT 1), 'unknown') END AS state"
            " FROM repositories r WHERE r.deleted = 0) GROUP BY state"
        )
    }
    return {
        "repositories": int(totals["repos"]),
        "scored": int(totals["scored"]),
        "average": totals["average"],
        "stale": int(totals["stale"] or 0),
        "lowest": lowest,
        "builds": states,
    }


# The dashboard table's columns as SQL: each value read by key per repository.
TABLE_SORTS: dict[str, str] = {
    "name": "lower(r.full_name)",
    "score": "h.score",
    # The build state as a rank: failure 0, other 1, success 2, no run NULL.
    "build": f"(CASE WHEN {_FAILING} THEN 0 WHEN {_SUCCEEDING} THEN 2"
    f" WHEN EXISTS ({_RUNS}) THEN 1 END)",
    "coverage": (
        "(SELECT value FROM coverage WHERE repo_id = r.id AND (branch IS r.default_branch"
        " OR r.default_branch IS NULL) ORDER BY at DESC, id DESC LIMIT 1)"
    ),
    "vulns": "(SELECT count(*) FROM vulnerabilities WHERE repo_id = r.id AND state = 'open')",
    "last_commit": "coalesce(nullif(r.last_activity_at, ''), nullif(r.last_push_at, ''))",
}


def table_page(
    db: Tx, *, column: str, descending: bool, search: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], dict[int, Any], int]:
    """A page of the dashboard's repositories table: (summaries, health rows by
    id, how many match). Sorted in SQL by ``column``, rows without a value last
    in either order, ties by name; ``search`` is a part of the full name."""
    expr = TABLE_SORTS[column]
    where, where_params = "r.deleted = 0", []
    if search:
        where += " AND instr(lower(r.full_name), lower(?)) > 0"
        where_params.append(search)
    base = f"FROM repositories r LEFT JOIN health h ON h.repo_id = r.id WHERE {where}"
    total = int(next(db.query(f"SELECT count(*) AS n {base}", where_params))["n"])
    direction = "DESC" if descending else "ASC"
    rows = list(
        db.query(
            f"SELECT r.*, {expr} AS _v {base}"
            f" ORDER BY ({expr}) IS NULL, _v {direction}, lower(r.full_name), r.id"
            " LIMIT ? OFFSET ?",
            [*where_params, limit, offset],
        )
    )
    ids = [int(r["id"]) for r in rows]
    health = _health_of(db, ids)
    return summaries(db, rows, ids), health, total


@dataclass(frozen=True)
class RepoRef:
    """A repository found by name: enough to name it and to read the rest by key."""

    id: int
    full_name: str
    owner: str | None  # as recorded at first sight
    default_branch: str | None
    deleted: bool


def find_repos(
    db: Tx,
    name: str | None = None,
    *,
    owner: str | None = None,
    include_deleted: bool = False,
    any_case: bool = False,
) -> list[RepoRef]:
    """Repositories by name: live ones first, then by full name and id.

    ``name`` "owner/repo" is that full name, a bare "repo" that name under any
    owner, None every repository. ``owner`` keeps to one owner's repositories;
    deleted ones count only with ``include_deleted``. Names compare exactly, or
    with ``any_case`` regardless of the case of ASCII letters. A name is compared,
    never matched as a pattern, so nothing in it needs escaping.
    """
    clauses: list[str] = [] if include_deleted else ["deleted = 0"]
    params: list[Any] = []
    if owner is not None:
        clauses.append("owner = ?")
        params.append(owner)
    if name is not None:
        # ASCII letters in any case: GitHub's names are ASCII.
        fold = "lower" if any_case else ""
        if "/" in name:
            clauses.append(f"{fold}(full_name) = {fold}(?)")
            params.append(name)
        else:
            # The full name's last characters: "/" and the bare name.
            suffix = f"/{name}"
            clauses.append(f"{fold}(substr(full_name, length(full_name) - ? + 1)) = {fold}(?)")
            params.extend((len(suffix), suffix))
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return [
        RepoRef(
            id=int(r["id"]),
            full_name=r["full_name"],
            owner=r["owner"],
            default_branch=r["default_branch"],
            deleted=bool(r["deleted"]),
        )
        for r in db.query(
            "SELECT id, full_name, owner, default_branch, deleted FROM repositories"
            f"{where} ORDER BY deleted, full_name, id",
            params,
        )
    ]


def repo_by_id(db: Tx, repo_id: int) -> RepoRef | None:
    """One repository by its id (a deleted one too): tells apart two sharing a name."""
    row = next(
        db.query(
            "SELECT id, full_name, owner, default_branch, deleted FROM repositories WHERE id = ?",
            (repo_id,),
        ),
        None,
    )
    if row is None:
        return None
    return RepoRef(
        id=int(row["id"]),
        full_name=row["full_name"],
        owner=row["owner"],
        default_branch=row["default_branch"],
        deleted=bool(row["deleted"]),
    )


def known_names(db: Tx, names: Sequence[str]) -> set[str]:
    """Which of these full names have a repository page (any repository, live or
    deleted, of that exact name): the others are linked to nothing."""
    return present(db, "repositories", "full_name", names)


def find_repo(db: Tx, full_name: str) -> RepoRef | None:
    """The repository of this exact full name, the live one if a deleted one shares it."""
    if "/" not in full_name:  # a bare name would match under any owner
        return None
    found = find_repos(db, full_name, include_deleted=True)
    return found[0] if found else None


def vulnerability_rows(db: Tx, *, include_closed: bool = False) -> list[dict[str, Any]]:
    """Dependabot alerts with their repository's id and full name, the most severe
    first, then by repository (open ones only unless ``include_closed``)."""
    state = "" if include_closed else "WHERE v.state = 'open'"
    return list(
        db.query(
            "SELECT r.id, r.full_name, v.* FROM vulnerabilities v JOIN repositories r"
            f" ON r.id = v.repo_id {state} ORDER BY CASE v.severity WHEN 'critical'"
            " THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, r.full_name"
        )
    )


def open_dependency_prs(db: Tx, repo: str | None = None) -> list[dict[str, Any]]:
    """Open Dependabot pull requests (what is outdated), of one repository or all."""
    return list(
        db.query(
            "SELECT r.full_name AS repo, d.number, d.title, d.package, d.from_version,"
            " d.to_version, d.url, d.opened_at FROM dependency_prs d"
            " JOIN repositories r ON r.id = d.repo_id WHERE d.state = 'open' AND r.deleted = 0"
            " AND (? IS NULL OR r.full_name = ?) ORDER BY r.full_name, d.package, d.number",
            (repo, repo),
        )
    )
