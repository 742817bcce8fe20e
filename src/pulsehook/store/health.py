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


_REPO_COLUMNS = (
    "full_name, archived, default_branch, dependabot, readme, api_docs, last_activity_at,"
    " last_issue_activity_at"
)


class _Asked:
    """Every read a score needs, sent before any is read: on PostgreSQL the
    writer pipelines them, and one round trip answers them all."""

    def __init__(self, db: Tx, repo_id: int) -> None:
        self.repo = db.execute(f"SELECT {_REPO_COLUMNS} FROM repositories WHERE id = ?", (repo_id,))
        self.builds = db.execute(
            "SELECT status FROM builds WHERE repo_id = ? AND default_branch = 1"
            " AND completed_at IS NOT NULL AND source != 'workflow_job'"
            " ORDER BY completed_at DESC, attempt DESC LIMIT ?",
            (repo_id, health.MAX_BUILDS),
        )
        # Both forms, each reading the (repo_id, branch, at) index in order; the
        # repository's default branch says which answer counts.
        self.coverage_any = db.execute(
            "SELECT value FROM coverage WHERE repo_id = ? ORDER BY at DESC, id DESC LIMIT 1",
            (repo_id,),
        )
        self.coverage_branch = db.execute(
            "SELECT value FROM coverage WHERE repo_id = ?"
            " AND branch = (SELECT default_branch FROM repositories WHERE id = ?)"
            " ORDER BY at DESC, id DESC LIMIT 1",
            (repo_id, repo_id),
        )
        self.alerts = db.execute(
            "SELECT severity, count(*) FROM vulnerabilities WHERE repo_id = ?"
            " AND state = 'open' GROUP BY severity",
            (repo_id,),
        )
        self.prs = db.execute(
            "SELECT count(*) FROM dependency_prs WHERE repo_id = ? AND state = 'open'", (repo_id,)
        )
        self.seen_dependabot = db.execute(
            "SELECT (SELECT count(*) FROM vulnerabilities WHERE repo_id = ?)"
            " + (SELECT count(*) FROM dependency_prs WHERE repo_id = ?)",
            (repo_id, repo_id),
        )

    def inputs(self) -> health.RepoInputs | None:
        repo = self.repo.fetchone()
        runs = tuple(status for (status,) in self.builds.fetchall())
        coverage = self.coverage_any if repo and repo[2] is None else self.coverage_branch
        covered = coverage.fetchone()
        alerts = {severity: n for severity, n in self.alerts.fetchall()}
        (prs,) = self.prs.fetchone()
        (seen_dependabot,) = self.seen_dependabot.fetchone()
        if repo is None:
            return None
        name, archived, _branch, dependabot, readme, api_docs, commit_at, issue_at = repo
        return health.RepoInputs(
            name=name,
            archived=bool(archived),
            builds=runs,
            coverage=covered[0] if covered else None,
            open_alerts=alerts,
            open_dependency_prs=prs,
            dependabot_known=bool(seen_dependabot) or dependabot == 1,
            readme=None if readme is None else bool(readme),
            api_docs=None if api_docs is None else bool(api_docs),
            last_commit_at=parse_iso_or_none(commit_at),
            last_issue_activity_at=parse_iso_or_none(issue_at),
        )


def inputs(db: Tx, repo_id: int) -> health.RepoInputs | None:
    return _Asked(db, repo_id).inputs()


def recompute(db: Tx, repo_id: int, now: datetime) -> Health | None:
    """Score one repository; return a ``health`` fact when the score changed."""
    asked = _Asked(db, repo_id)
    scored = db.execute("SELECT score FROM health WHERE repo_id = ?", (repo_id,))
    history = db.execute(
        "SELECT at FROM health_history WHERE repo_id = ? ORDER BY at DESC LIMIT 1", (repo_id,)
    )
    data = asked.inputs()
    previous, last = scored.fetchone(), history.fetchone()
    if data is None:
        return None
    result = health.score(data, now)
    at = iso(now)
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
    old = previous[0] if previous else None
    moved = previous is None or health.changed(old, result.score)
    last_at = parse_iso_or_none(last[0]) if last else None
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
    """Every live repository's scores since ``since``: repo_id, name, at, score, by
    name, id and time (the id tells apart two repositories sharing a name)."""
    return list(
        db.query(
            "SELECT r.id AS repo_id, r.full_name AS name, h.at, h.score FROM health_history h"
            " JOIN repositories r ON r.id = h.repo_id WHERE r.deleted = 0 AND h.at >= ?"
            " ORDER BY r.full_name, r.id, h.at, h.id",
            (iso(since),),
        )
    )


def current(db: Tx) -> list[dict[str, Any]]:
    """Every live repository's score as the other pages show it (the health table):
    repo_id, name, score, components, computed_at; by name and id."""
    return list(
        db.query(
            "SELECT r.id AS repo_id, r.full_name AS name, h.score, h.components, h.computed_at"
            " FROM health h JOIN repositories r ON r.id = h.repo_id WHERE r.deleted = 0"
            " ORDER BY r.full_name, r.id"
        )
    )
