"""Health scores in the store: gather a repository's inputs, score (pure), keep history.

History gets a row when the score changes and at least once a day, so trends
show flat stretches too.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

from .. import health
from ..clock import iso, parse_iso_or_none
from ..facts import Health
from .db import Tx

HISTORY_EVERY = timedelta(days=1)


def inputs(db: Tx, repo_id: int) -> health.RepoInputs | None:
    repo = next(db.query("SELECT * FROM repositories WHERE id = ?", (repo_id,)), None)
    if repo is None:
        return None
    runs = tuple(
        r["status"]
        for r in db.query(
            "SELECT status FROM builds WHERE repo_id = ? AND default_branch = 1"
            " AND completed_at IS NOT NULL AND source != 'workflow_job'"
            " ORDER BY completed_at DESC, attempt DESC LIMIT ?",
            (repo_id, health.MAX_BUILDS),
        )
    )
    # Two forms, so each reads the (repo_id, branch, at) index in order.
    branch = repo["default_branch"]
    coverage = next(
        db.query(
            "SELECT value FROM coverage WHERE repo_id = ? ORDER BY at DESC, id DESC LIMIT 1",
            (repo_id,),
        )
        if branch is None
        else db.query(
            "SELECT value FROM coverage WHERE repo_id = ? AND branch = ?"
            " ORDER BY at DESC, id DESC LIMIT 1",
            (repo_id, branch),
        ),
        None,
    )
    alerts = {
        r["severity"]: r["n"]
        for r in db.query(
            "SELECT severity, count(*) AS n FROM vulnerabilities WHERE repo_id = ?"
            " AND state = 'open' GROUP BY severity",
            (repo_id,),
        )
    }
    prs = next(
        db.query(
            "SELECT count(*) AS n FROM dependency_prs WHERE repo_id = ? AND state = 'open'",
            (repo_id,),
        )
    )["n"]
    seen_dependabot = next(
        db.query(
            "SELECT (SELECT count(*) FROM vulnerabilities WHERE repo_id = ?)"
            " + (SELECT count(*) FROM dependency_prs WHERE repo_id = ?) AS n",
            (repo_id, repo_id),
        )
    )["n"]
    return health.RepoInputs(
        name=repo["full_name"],
        archived=bool(repo["archived"]),
        builds=runs,
        coverage=coverage["value"] if coverage else None,
        open_alerts=alerts,
        open_dependency_prs=prs,
        dependabot_known=bool(seen_dependabot) or repo["dependabot"] == 1,
        readme=None if repo["readme"] is None else bool(repo["readme"]),
        api_docs=None if repo["api_docs"] is None else bool(repo["api_docs"]),
        last_commit_at=parse_iso_or_none(repo["last_activity_at"]),
        last_issue_activity_at=parse_iso_or_none(repo["last_issue_activity_at"]),
    )


def recompute(db: Tx, repo_id: int, now: datetime) -> Health | None:
    """Score one repository; return a ``health`` fact when the score changed."""
    data = inputs(db, repo_id)
    if data is None:
        return None
    result = health.score(data, now)
    at = iso(now)
    previous = next(db.query("SELECT score FROM health WHERE repo_id = ?", (repo_id,)), None)
    components = health.as_dict(result)
    db.execute(
        "INSERT OR REPLACE INTO health (repo_id, score, components, warnings, formula_version,"
        " computed_at) VALUES (?, ?, ?, ?, ?, ?)",
        (
            repo_id,
            result.score,
            json.dumps(components),
            json.dumps(list(result.warnings)),
            result.formula_version,
            at,
        ),
    )
    old = previous["score"] if previous else None
    moved = previous is None or health.changed(old, result.score)
    last = next(
        db.query(
            "SELECT at FROM health_history WHERE repo_id = ? ORDER BY at DESC LIMIT 1", (repo_id,)
        ),
        None,
    )
    last_at = parse_iso_or_none(last["at"]) if last else None
    if moved or last_at is None or now - last_at >= HISTORY_EVERY:
        db.execute(
            "INSERT INTO health_history (repo_id, at, score, formula_version) VALUES (?, ?, ?, ?)",
            (repo_id, at, result.score, result.formula_version),
        )
    if not moved or result.score is None:
        return None
    return Health(
        repo=data.name,
        repo_id=repo_id,
        score=result.score,
        previous=old,
        components={k: v["score"] for k, v in components.items()},
        at=at,
    )


def recompute_batch(
    db: Tx, *, after_id: int, now: datetime, limit: int = 500, budget: float | None = None
) -> tuple[int, int, list[Health]]:
    """Score the repositories after ``after_id`` in id order: (last id done, how
    many, the scores that changed). With a ``budget`` (seconds), stops after the
    repository that used it up: one short writer turn of a sweep."""
    ids = [
        int(r["id"])
        for r in db.query(
            "SELECT id FROM repositories WHERE deleted = 0 AND id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
    ]
    stop = None if budget is None else time.perf_counter() + budget
    facts: list[Health] = []
    last, done = after_id, 0
    for repo_id in ids:
        if (fact := recompute(db, repo_id, now)) is not None:
            facts.append(fact)
        last, done = repo_id, done + 1
        if stop is not None and time.perf_counter() >= stop:
            break
    return last, done, facts


def history_since(db: Tx, since: datetime) -> list[dict[str, Any]]:
    """Every live repository's scores since ``since``: name, at, score, by name and time."""
    return list(
        db.query(
            "SELECT r.full_name AS name, h.at, h.score FROM health_history h"
            " JOIN repositories r ON r.id = h.repo_id WHERE r.deleted = 0 AND h.at >= ?"
            " ORDER BY r.full_name, h.at, h.id",
            (iso(since),),
        )
    )
