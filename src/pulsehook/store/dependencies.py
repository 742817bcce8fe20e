"""Dependency graphs: each repository's packages and edges, read from GitHub's SBOM.

A graph is replaced whole when a newer one is read (``replace``); a push that
changed a manifest asks for the repository's graph again (``want``), and the
graph refresher reads what is wanted (``github/graphs.py``). A package is
*vulnerable* when an open Dependabot alert of its repository names it (the same
ecosystem, the same ``package_key``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..facts import DependencyGraph, Package
from ..github.sbom import package_key
from ..github.sbom import tree as sbom_tree
from .db import Tx

BATCH = 500  # rows per executemany


def replace(db: Tx, repo_id: int, fact: DependencyGraph, now: str) -> bool:
    """Store the graph unless a newer one is stored already; True if stored."""
    at = fact.at or now
    newer = next(
        db.query(
            "SELECT 1 FROM dependency_graphs WHERE repo_id = ? AND read_at > ?", (repo_id, at)
        ),
        None,
    )
    if newer is not None:
        return False
    db.execute(
        "INSERT INTO dependency_graphs (repo_id, state, root, packages, truncated, reason, read_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repo_id) DO UPDATE SET"
        " state = excluded.state, root = excluded.root, packages = excluded.packages,"
        " truncated = excluded.truncated, reason = excluded.reason, read_at = excluded.read_at",
        (
            repo_id,
            fact.state,
            fact.root,
            len(fact.packages),
            int(fact.truncated),
            fact.reason,
            at,
        ),
    )
    # Disabled or not, what was read before is gone: kept, it would look current.
    db.execute("DELETE FROM dependency_packages WHERE repo_id = ?", (repo_id,))
    db.execute("DELETE FROM dependency_edges WHERE repo_id = ?", (repo_id,))
    rows = [
        (repo_id, p.spdx_id, p.ecosystem, p.name, package_key(p.ecosystem, p.name), p.version)
        for p in fact.packages
    ]
    for start in range(0, len(rows), BATCH):
        db.executemany(
            "INSERT INTO dependency_packages"
            " (repo_id, spdx_id, ecosystem, name, package_key, version)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            rows[start : start + BATCH],
        )
    edges = [(repo_id, a, b) for a, b in fact.edges]
    for start in range(0, len(edges), BATCH):
        db.executemany(
            "INSERT INTO dependency_edges (repo_id, parent, child) VALUES (?, ?, ?)",
            edges[start : start + BATCH],
        )
    return True


def want(db: Tx, repo_id: int, at: str) -> None:
    """A push changed a manifest: the repository's graph is to be read again."""
    db.execute(
        "INSERT INTO graphs_wanted (repo_id, wanted_at) VALUES (?, ?)"
        " ON CONFLICT (repo_id) DO NOTHING",
        (repo_id, at),
    )


def wanted(db: Tx, *, read_before: str, limit: int) -> list[dict[str, Any]]:
    """Repositories whose graph is wanted and was last read before ``read_before``
    (or never), longest waiting first."""
    return list(
        db.query(
            "SELECT w.repo_id, w.wanted_at, r.full_name, r.default_branch FROM graphs_wanted w"
            " JOIN repositories r ON r.id = w.repo_id"
            " LEFT JOIN dependency_graphs g ON g.repo_id = w.repo_id"
            " WHERE r.deleted = 0 AND (g.read_at IS NULL OR g.read_at < ?)"
            " ORDER BY w.wanted_at, w.repo_id LIMIT ?",
            (read_before, limit),
        )
    )


def done(db: Tx, repo_id: int, wanted_at: str) -> None:
    """The graph was read for the want of ``wanted_at``; a later want stays."""
    db.execute(
        "DELETE FROM graphs_wanted WHERE repo_id = ? AND wanted_at <= ?", (repo_id, wanted_at)
    )


def vulnerable_keys(db: Tx, ids: Sequence[int] | None) -> dict[int, set[tuple[str, str]]]:
    """(ecosystem, package key) of every package with an open alert, per repository
    (of ``ids``, or every one)."""
    found: dict[int, set[tuple[str, str]]] = {}
    if ids is not None and not ids:
        return found
    among = "" if ids is None else f" AND repo_id IN ({', '.join('?' * len(ids))})"
    for row in db.query(
        "SELECT repo_id, ecosystem, package FROM vulnerabilities"
        f" WHERE state = 'open' AND package IS NOT NULL{among}",
        tuple(ids or ()),
    ):
        ecosystem = (row["ecosystem"] or "").lower()
        found.setdefault(row["repo_id"], set()).add(
            (ecosystem, package_key(ecosystem, row["package"]))
        )
    return found


def graph_states(db: Tx, ids: Sequence[int] | None) -> dict[int, dict[str, Any]]:
    """Each repository's graph: state, packages, truncated, reason, read_at."""
    if ids is not None and not ids:
        return {}
    where = "" if ids is None else f" WHERE repo_id IN ({', '.join('?' * len(ids))})"
    return {
        row["repo_id"]: row
        for row in db.query(
            "SELECT repo_id, state, packages, truncated, reason, read_at FROM dependency_graphs"
            + where,
            tuple(ids or ()),
        )
    }


def repo_graph(db: Tx, repo_id: int) -> dict[str, Any] | None:
    """One repository's graph: its row, packages and edges; None if never read."""
    row = next(db.query("SELECT * FROM dependency_graphs WHERE repo_id = ?", (repo_id,)), None)
    if row is None:
        return None
    packages = [
        Package(r["spdx_id"], r["ecosystem"], r["name"], r["version"])
        for r in db.query(
            "SELECT spdx_id, ecosystem, name, version FROM dependency_packages"
            " WHERE repo_id = ? ORDER BY spdx_id",
            (repo_id,),
        )
    ]
    edges = [
        (r["parent"], r["child"])
        for r in db.query(
            "SELECT parent, child FROM dependency_edges WHERE repo_id = ? ORDER BY parent, child",
            (repo_id,),
        )
    ]
    return {**row, "package_list": packages, "edges": edges}


def package_users(
    db: Tx, search: str, *, ecosystem: str | None, limit: int
) -> list[dict[str, Any]]:
    """Every repository using a package of this name (and ecosystem), with versions."""
    # Without an ecosystem, pip's folded form is asked for as well.
    keys = (
        [package_key(ecosystem, search)]
        if ecosystem
        else [package_key(None, search), package_key("pip", search)]
    )
    params: list[Any] = keys
    clause = f"p.package_key IN ({', '.join('?' * len(keys))})"
    if ecosystem:
        clause += " AND p.ecosystem = ?"
        params.append(ecosystem)
    params.append(limit)
    return list(
        db.query(
            "SELECT r.id AS repo_id, r.full_name AS repo, p.ecosystem, p.name, p.package_key,"
            " p.version FROM dependency_packages p JOIN repositories r ON r.id = p.repo_id"
            f" WHERE {clause} AND r.deleted = 0"
            " ORDER BY p.ecosystem, p.name, r.full_name, p.version LIMIT ?",
            tuple(params),
        )
    )


def packages(
    db: Tx, *, search: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The ecosystem's packages, most used first: how many repositories use each,
    and with which versions; and how many packages match."""
    where = "r.deleted = 0"
    params: list[Any] = []
    if search:
        where += " AND p.package_key LIKE ? ESCAPE '\\'"
        escaped = search.strip().lower().replace("\\", "\\\\").replace("%", "\\%")
        params.append("%" + escaped.replace("_", "\\_") + "%")
    base = (
        "FROM dependency_packages p JOIN repositories r ON r.id = p.repo_id"
        f" WHERE {where} GROUP BY p.ecosystem, p.package_key"
    )
    total = next(db.query(f"SELECT count(*) AS n FROM (SELECT 1 AS one {base}) AS t", params))
    rows = list(
        db.query(
            "SELECT p.ecosystem, p.package_key, min(p.name) AS name,"
            " count(DISTINCT p.repo_id) AS repos, count(DISTINCT p.version) AS versions"
            f" {base} ORDER BY repos DESC, p.package_key, p.ecosystem LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
    )
    return rows, int(total["n"])


def describe(db: Tx, repo_id: int, *, tree_limit: int = 2_000) -> dict[str, Any]:
    """One repository's graph for the API and the page: its state, every package
    (direct or not, vulnerable or not, what it depends on) and the tree's rows."""
    found = repo_graph(db, repo_id)
    vulnerable = vulnerable_keys(db, [repo_id]).get(repo_id, set())
    if found is None:
        return {
            "state": "unknown",
            "read_at": None,
            "truncated": False,
            "reason": None,
            "total": None,
            "vulnerable": len(vulnerable),
            "packages": [],
            "tree": [],
        }
    packages: list[Package] = found["package_list"]
    edges: list[tuple[str, str]] = found["edges"]
    root = found["root"]
    depends: dict[str, list[str]] = {}
    for parent, child in edges:
        depends.setdefault(parent, []).append(child)
    direct = set(depends.get(root or "", []))
    marked = {
        p.spdx_id
        for p in packages
        if ((p.ecosystem or ""), package_key(p.ecosystem, p.name)) in vulnerable
    }
    listed = [
        {
            "id": p.spdx_id,
            "ecosystem": p.ecosystem,
            "name": p.name,
            "version": p.version,
            "direct": p.spdx_id in direct,
            "vulnerable": p.spdx_id in marked,
            "depends_on": depends.get(p.spdx_id, []),
        }
        for p in sorted(packages, key=lambda p: (p.name.lower(), p.spdx_id))
    ]
    return {
        "state": found["state"],
        "read_at": found["read_at"],
        "truncated": bool(found["truncated"]),
        "reason": found["reason"],
        "total": len(packages) if found["state"] == "ok" else None,
        # As the summary counts them: packages an open alert names.
        "vulnerable": len(vulnerable),
        "packages": listed,
        "tree": [
            {
                "depth": depth,
                "id": p.spdx_id,
                "ecosystem": p.ecosystem,
                "name": p.name,
                "version": p.version,
                "vulnerable": p.spdx_id in marked,
            }
            for depth, p in sbom_tree(root, packages, edges, limit=tree_limit)
        ],
    }


def graph_listing(db: Tx, *, limit: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Repositories with a graph, those with the most packages an open alert names
    first (counted as the summary counts them), then by name; and how many graphs
    are in each state."""
    rows = list(
        db.query(
            "SELECT r.id, r.full_name, g.state, g.packages, g.read_at"
            " FROM dependency_graphs g JOIN repositories r ON r.id = g.repo_id"
            " WHERE r.deleted = 0"
        )
    )
    vulnerable = vulnerable_keys(db, None)
    states: dict[str, int] = {}
    for row in rows:
        row["vulnerable"] = len(vulnerable.get(row["id"], ()))
        states[row["state"]] = states.get(row["state"], 0) + 1
    rows.sort(key=lambda r: (-r["vulnerable"], r["full_name"]))
    return rows[:limit], states
