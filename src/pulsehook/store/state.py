"""Applying facts to the state tables: one state writer per kind of fact.

Deliveries arrive out of order, so every upsert keeps the row whose payload
timestamp is newest (for builds: the highest attempt, then the newest update),
never simply the last one processed.

Each kind's writer is registered here by its class (``@writes(Build)``); a kind
that is never applied, because its own store module keeps it, is listed in
``NOT_APPLIED``. A fact of any other kind is an error, never skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..facts import (
    Build,
    Coverage,
    Dependency,
    DependencyGraph,
    Fact,
    Health,
    HookPing,
    IssueActivity,
    Profile,
    Push,
    Repo,
    Spec,
    Vulnerability,
    WorkflowState,
)
from . import dependencies, scans
from .db import Tx
from .deliveries import record_hook
from .migrations import DERIVED_TABLES

F = TypeVar("F")


@dataclass
class Applying:
    """One ``apply`` call: its time, and what its facts did to repositories so far."""

    now: str
    ensured: set[int] = field(default_factory=set)  # repositories whose row it touched
    branch_known: set[int] = field(default_factory=set)  # ... and whose default branch it set

    def repository(self, db: Tx, fact: Any) -> int | None:
        """The fact's repository id, its row created on first sight; None when the
        fact has no id and its repository was never seen (nothing to attach it to)."""
        known = fact.repo_id
        if isinstance(known, int) and known in self.ensured:
            return known
        repo_id = _ensure_repo(db, fact, self.now)
        if repo_id is not None:
            self.ensured.add(repo_id)
        return repo_id


# A kind's state writer: writes the fact, returns it as applied (None: not applied).
StateWriter = Callable[[Tx, Any, Applying], Any]
WRITERS: dict[type[Any], StateWriter] = {}
# Kinds never applied here: pulsehook makes them from the state, and their own
# store module keeps them.
NOT_APPLIED: dict[type[Any], str] = {
    Spec: "summary items keep their own state (store/summary.py)",
    Health: "scores are kept by store/health.py",
}


def writes(kind: type[F]) -> Callable[[Callable[[Tx, F, Applying], F | None]], StateWriter]:
    """Register the decorated function as the state writer of ``kind``."""

    def register(write: Callable[[Tx, F, Applying], F | None]) -> StateWriter:
        if kind in WRITERS or kind in NOT_APPLIED:
            raise ValueError(f"{kind.__name__} is registered already")
        WRITERS[kind] = write
        return write

    return register


def writer(kind: type[Any]) -> StateWriter:
    """The state writer of ``kind``; a kind without one is an error."""
    found = WRITERS.get(kind)
    if found is None:
        why = NOT_APPLIED.get(kind, "no state writer is registered for it")
        raise LookupError(f"a {kind.__name__} fact cannot be applied: {why}")
    return found


def _ensure_repo(db: Tx, fact: Any, now: str) -> int | None:
    """The repository's id, creating its row on first sight. Keyed by GitHub's id."""
    repo_id: int | None = fact.repo_id
    if repo_id is None:
        row = next(
            db.query(
                "SELECT id FROM repositories WHERE full_name = ? ORDER BY deleted LIMIT 1",
                (fact.repo,),
            ),
            None,
        )
        return int(row["id"]) if row else None
    db.execute(
        "INSERT INTO repositories (id, full_name, owner, first_seen_at, last_seen_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET full_name = excluded.full_name,"
        " last_seen_at = excluded.last_seen_at",
        (repo_id, fact.repo, fact.repo.partition("/")[0], now, now),
    )
    return repo_id


@writes(Build)
def _build(db: Tx, b: Build, call: Applying) -> Build | None:
    if (repo_id := call.repository(db, b)) is None:
        return None
    if b.default_branch and b.branch and repo_id not in call.branch_known:
        db.execute(
            "UPDATE repositories SET default_branch = coalesce(default_branch, ?) WHERE id = ?",
            (b.branch, repo_id),
        )
    db.execute(
        "INSERT INTO builds (source, run_id, job, repo_id, workflow, branch, default_branch,"
        " status, event, attempt, url, started_at, completed_at, actor, head_sha, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(source, run_id, job) DO UPDATE SET"
        " workflow = excluded.workflow, branch = excluded.branch,"
        " default_branch = excluded.default_branch, status = excluded.status,"
        " event = coalesce(excluded.event, builds.event), attempt = excluded.attempt,"
        " url = excluded.url, started_at = excluded.started_at,"
        " completed_at = excluded.completed_at, actor = excluded.actor,"
        " head_sha = excluded.head_sha, updated_at = excluded.updated_at"
        " WHERE (excluded.attempt, coalesce(excluded.updated_at, ''))"
        "   > (builds.attempt, coalesce(builds.updated_at, ''))"
        " OR (excluded.attempt = builds.attempt"
        "   AND coalesce(excluded.updated_at, '') = coalesce(builds.updated_at, '')"
        "   AND excluded.completed_at IS NOT NULL AND builds.completed_at IS NULL)",
        (
            b.source,
            b.run_id,
            b.job or "",
            repo_id,
            b.workflow,
            b.branch,
            int(b.default_branch),
            b.status,
            b.event,
            b.attempt,
            b.url,
            b.started_at,
            b.completed_at,
            b.actor,
            b.head_sha,
            b.updated_at,
        ),
    )
    _workflow_state(db, b, repo_id)
    return b


def _workflow_state(db: Tx, b: Build, repo_id: int) -> None:
    """Keep each workflow's last counted default-branch run current."""
    if not b.counts_on_default_branch:
        return
    db.execute(
        "INSERT INTO workflow_state (repo_id, workflow, status, url, completed_at, run_id,"
        " event, attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(repo_id, workflow)"
        " DO UPDATE SET status = excluded.status, url = excluded.url,"
        " completed_at = excluded.completed_at, run_id = excluded.run_id,"
        " event = excluded.event, attempt = excluded.attempt"
        " WHERE (excluded.completed_at, excluded.attempt)"
        "   >= (workflow_state.completed_at, workflow_state.attempt)",
        (repo_id, b.workflow, b.status, b.url, b.completed_at, b.run_id, b.event, b.attempt),
    )


@writes(Vulnerability)
def _vulnerability(db: Tx, v: Vulnerability, call: Applying) -> Vulnerability | None:
    if (repo_id := call.repository(db, v)) is None:
        return None
    db.execute(
        "INSERT INTO vulnerabilities (repo_id, number, state, severity, package, ecosystem,"
        " manifest, ghsa_id, cve_id, summary, description, url, created_at, updated_at,"
        " fixed_at, dismissed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(repo_id, number) DO UPDATE SET state = excluded.state,"
        " severity = excluded.severity, package = excluded.package,"
        " ecosystem = excluded.ecosystem, manifest = excluded.manifest,"
        " ghsa_id = excluded.ghsa_id, cve_id = excluded.cve_id, summary = excluded.summary,"
        " description = excluded.description, url = excluded.url,"
        " created_at = excluded.created_at, updated_at = excluded.updated_at,"
        " fixed_at = excluded.fixed_at, dismissed_at = excluded.dismissed_at"
        " WHERE coalesce(excluded.updated_at, '') >= coalesce(vulnerabilities.updated_at, '')",
        (
            repo_id,
            v.number,
            v.state,
            v.severity,
            v.package,
            v.ecosystem,
            v.manifest,
            v.ghsa_id,
            v.cve_id,
            v.summary,
            v.description,
            v.url,
            v.created_at,
            v.updated_at,
            v.fixed_at,
            v.dismissed_at,
        ),
    )
    return v


@writes(Coverage)
def _coverage(db: Tx, c: Coverage, call: Applying) -> Coverage | None:
    """Returns the figure with its delta against the previous one on its branch."""
    if (repo_id := call.repository(db, c)) is None:
        return None
    # The same status seen by webhook and by scan: one measurement.
    same = next(
        db.query(
            "SELECT delta FROM coverage WHERE repo_id = ? AND branch IS ? AND sha IS ?"
            " AND value = ? AND coalesce(at, '') = coalesce(?, '')",
            (repo_id, c.branch, c.sha, c.value, c.at),
        ),
        None,
    )
    if same is not None and c.sha is not None:
        return dataclasses.replace(c, delta=same["delta"])
    previous = next(
        db.query(
            "SELECT value FROM coverage WHERE repo_id = ? AND branch IS ? AND"
            " coalesce(at, '') <= coalesce(?, '') ORDER BY at DESC, id DESC LIMIT 1",
            (repo_id, c.branch, c.at),
        ),
        None,
    )
    delta = round(c.value - previous["value"], 4) if previous else None
    enriched = dataclasses.replace(c, delta=delta)
    db.execute(
        "INSERT INTO coverage (repo_id, branch, sha, value, delta, url, at, source)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (repo_id, c.branch, c.sha, c.value, delta, c.url, c.at, c.source),
    )
    return enriched


@writes(Dependency)
def _dependency(db: Tx, d: Dependency, call: Applying) -> Dependency | None:
    if (repo_id := call.repository(db, d)) is None:
        return None
    db.execute(
        "INSERT INTO dependency_prs (repo_id, number, state, merged, title, package,"
        " from_version, to_version, url, opened_at, closed_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT(repo_id, number) DO UPDATE SET state = excluded.state,"
        " merged = excluded.merged, title = excluded.title, package = excluded.package,"
        " from_version = excluded.from_version, to_version = excluded.to_version,"
        " url = excluded.url, opened_at = excluded.opened_at, closed_at = excluded.closed_at,"
        " updated_at = excluded.updated_at"
        " WHERE coalesce(excluded.updated_at, '') >= coalesce(dependency_prs.updated_at, '')",
        (
            repo_id,
            d.number,
            d.state,
            int(d.merged),
            d.title,
            d.package,
            d.from_version,
            d.to_version,
            d.url,
            d.opened_at,
            d.closed_at,
            d.updated_at,
        ),
    )
    return d


_REPO_FLAGS = {
    "archived": "archived = 1",
    "unarchived": "archived = 0",
    "deleted": "deleted = 1",
    "tracked": "tracked = 1, deleted = 0",
    "untracked": "tracked = 0",
    "privatized": "private = 1",
    "publicized": "private = 0",
}


@writes(Repo)
def _repo(db: Tx, r: Repo, call: Applying) -> Repo | None:
    if (repo_id := call.repository(db, r)) is None:
        return None
    if r.default_branch:
        call.branch_known.add(repo_id)
    if r.action == "seen":
        # A snapshot from any payload (one statement: every delivery has one): its
        # flags are current unless a newer one was applied. The CASEs read the
        # row's values from before this update, so they compare the old time.
        db.execute(
            "UPDATE repositories SET owner = coalesce(?, owner),"
            " default_branch = coalesce(?, default_branch), url = coalesce(?, url),"
            " archived = CASE WHEN coalesce(updated_at, '') <= coalesce(?, '')"
            "   THEN ? ELSE archived END,"
            " private = CASE WHEN coalesce(updated_at, '') <= coalesce(?, '')"
            "   THEN ? ELSE private END,"
            " updated_at = max(coalesce(updated_at, ''), coalesce(?, '')) WHERE id = ?",
            (
                r.owner,
                r.default_branch,
                r.url,
                r.at,
                int(r.archived),
                r.at,
                int(r.private),
                r.at,
                repo_id,
            ),
        )
        return r
    db.execute(
        "UPDATE repositories SET owner = coalesce(?, owner),"
        " default_branch = coalesce(?, default_branch), url = coalesce(?, url),"
        " updated_at = max(coalesce(updated_at, ''), coalesce(?, '')) WHERE id = ?",
        (r.owner, r.default_branch, r.url, r.at, repo_id),
    )
    flags = _REPO_FLAGS.get(r.action)
    if flags:
        db.execute(f"UPDATE repositories SET {flags} WHERE id = ?", (repo_id,))
    elif (
        r.action in ("created", "edited", "renamed", "transferred", "scanned") and r.default_branch
    ):
        # Payloads carry the full repository object: its flags are current.
        db.execute(
            "UPDATE repositories SET archived = ?, private = ?, deleted = 0 WHERE id = ?",
            (int(r.archived), int(r.private), repo_id),
        )
    return r


@writes(Push)
def _push(db: Tx, p: Push, call: Applying) -> Push | None:
    if (repo_id := call.repository(db, p)) is None:
        return None
    db.execute(
        "INSERT OR IGNORE INTO activity (repo_id, branch, author, commits, forced, bot,"
        " head_sha, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (repo_id, p.branch, p.author, p.commits, int(p.forced), int(p.bot), p.head_sha, p.at),
    )
    # The newest time seen (``max``), whatever order deliveries arrive in; a bot's
    # push is recorded but is no sign of life.
    db.execute(
        "UPDATE repositories SET last_push_at = max(coalesce(last_push_at, ''), ?) WHERE id = ?",
        (p.at or "", repo_id),
    )
    if not p.bot and p.commits:
        db.execute(
            "UPDATE repositories SET last_activity_at = max(coalesce(last_activity_at, ''), ?)"
            " WHERE id = ?",
            (p.at or "", repo_id),
        )
    on_default = not p.deleted and p.branch is not None and p.branch == _default(db, repo_id)
    if p.manifests and on_default:
        dependencies.want(db, repo_id, call.now)
    if p.workflows and on_default:
        scans.want_workflows(db, repo_id, call.now)
    return p


def _default(db: Tx, repo_id: int) -> str | None:
    row = next(db.query("SELECT default_branch FROM repositories WHERE id = ?", (repo_id,)), None)
    return None if row is None else row["default_branch"]


@writes(IssueActivity)
def _issue_activity(db: Tx, fact: IssueActivity, call: Applying) -> IssueActivity | None:
    if (repo_id := call.repository(db, fact)) is None:
        return None
    if not fact.bot and fact.at:
        db.execute(
            "UPDATE repositories SET last_issue_activity_at ="
            " max(coalesce(last_issue_activity_at, ''), ?) WHERE id = ?",
            (fact.at, repo_id),
        )
    return fact


@writes(Profile)
def _profile(db: Tx, fact: Profile, call: Applying) -> Profile | None:
    if (repo_id := call.repository(db, fact)) is None:
        return None
    db.execute(
        "UPDATE repositories SET readme = coalesce(?, readme),"
        " api_docs = coalesce(?, api_docs), dependabot = coalesce(?, dependabot),"
        " profile_checked_at = ? WHERE id = ?",
        (fact.readme, fact.api_docs, fact.dependabot, fact.at or call.now, repo_id),
    )
    return fact


@writes(DependencyGraph)
def _dependency_graph(db: Tx, fact: DependencyGraph, call: Applying) -> DependencyGraph | None:
    if (repo_id := call.repository(db, fact)) is None:
        return None
    return fact if dependencies.replace(db, repo_id, fact, call.now) else None


@writes(WorkflowState)
def _scheduled_workflow(db: Tx, fact: WorkflowState, call: Applying) -> WorkflowState | None:
    # Its summary item is summary/items.py's (``watch_workflow``); here, its repository.
    return fact if call.repository(db, fact) is not None else None


@writes(HookPing)
def _hook_ping(db: Tx, fact: HookPing, call: Applying) -> HookPing:
    # A hook belongs to a repository or an organisation by name: no repository row.
    if fact.hook_id is not None:
        record_hook(
            db,
            hook_id=fact.hook_id,
            events=list(fact.events),
            content_type=fact.content_type,
            target=fact.target,
            repo=fact.repo,
            org=fact.org,
            ping_at=fact.at or call.now,
            delivery_at=call.now,
        )
    return fact


def apply(db: Tx, facts: list[Fact], *, now: str) -> list[Fact]:
    """Write facts to the state tables; return those applied, enriched (coverage delta).

    A fact with no repository id whose repository was never seen is left out.
    """
    call = Applying(now)
    out: list[Fact] = []
    for fact in facts:
        applied = writer(type(fact))(db, fact, call)
        if applied is not None:
            out.append(applied)
    return out


def reset(db: Tx) -> None:
    """Forget every table facts are applied to (and scores): replay rebuilds them."""
    for table in DERIVED_TABLES:
        db.execute(f"DELETE FROM {table}")
