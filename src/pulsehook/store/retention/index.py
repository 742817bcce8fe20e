"""What each stored delivery decides in the derived state: the retention index.

Replay folds the deliveries, in id order, through the code that processed them,
so an old delivery may go when the fold without it ends in the same state. Each
place in the state has a deciding delivery:

- a row that keeps the newest version by the payload's own time (a build, a
  workflow's last run, a summary item, an alert, a pull request, a coverage
  figure, a push) is decided by the delivery whose fact equals the row
  (``same``, asked when pruning);
- a column that keeps the last value written (a repository's name, owner, URL,
  default branch, flags and profile; its dependency graph; a hook's target, events and content type)
  or the greatest (last push, activity, issue activity, the repository's
  ``updated_at``, a hook's last delivery) is decided by the delivery that wrote
  it last or the greatest. ``retention_cells`` follows these merges as a sweep
  reads each processed delivery once, in id order (``index``), and names it.

For each history row (builds, activity, coverage, vulnerabilities, dependency
pull requests) a cell also names the last delivery that touched it: the row may
go once that one is older than the retention, since replay would not touch it.
Cells are keyed by a 64-bit hash; a collision can only keep more.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import orjson

from ...clock import iso, parse_iso_or_none
from ...errors import UnsupportedEvent
from ...facts import (
    PASSED_CONCLUSIONS,
    Build,
    Coverage,
    Dependency,
    DependencyGraph,
    Fact,
    HookPing,
    IssueActivity,
    Profile,
    Push,
    Repo,
    Vulnerability,
)
from ...github.normalize import normalize, snapshot
from .. import sweeps
from ..db import Tx
from ..deliveries import decode_payload
from ..state import _REPO_FLAGS

INDEX = "retention:index"  # the sweeps row keeping the index's place
BATCH = 32  # rows read per query; the time budget decides how many are done
Key = tuple[Any, ...]


def cell_id(key: Key) -> int:
    digest = hashlib.blake2b(json.dumps(list(key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class Effects:
    facts: list[Fact]  # as processing applied them: the repository snapshot first
    hook: tuple[int, str | None, str | None, str | None] | None  # id, target, repo, org


def effects(row: dict[str, Any]) -> Effects | None:
    """What processing the delivery wrote; None if nothing (it was ignored)."""
    try:
        payload = orjson.loads(decode_payload(row["payload"]))
        facts = normalize(row["event"], payload)
    except (UnsupportedEvent, ValueError):
        return None
    seen = snapshot(payload)
    hook = None
    if row["hook_id"] is not None:  # every delivery records its hook (ingest._record_hook)
        target = row["hook_target"]
        repo = payload.get("repository") if target == "repository" else None
        org = payload.get("organization") if target == "organization" else None
        hook = (
            int(row["hook_id"]),
            target,
            _text(repo.get("full_name")) if isinstance(repo, dict) else None,
            _text(org.get("login")) if isinstance(org, dict) else None,
        )
    return Effects([seen, *facts] if seen else facts, hook)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def repo_id(db: Tx, fact: Any) -> int | None:
    """The repository a fact lands on, found as processing finds it."""
    if isinstance(fact.repo_id, int):
        return int(fact.repo_id)
    row = db.execute(
        "SELECT id FROM repositories WHERE full_name = ? ORDER BY deleted LIMIT 1", (fact.repo,)
    ).fetchone()
    return int(row[0]) if row else None


_PLAIN: dict[type, tuple[str, tuple[str, ...]]] = {
    Push: ("activity", ("branch", "head_sha", "author", "commits", "forced", "bot", "at")),
    # Not the change: a coverage figure's delta is measured again (retention: rebase).
    Coverage: ("coverage", ("branch", "sha", "value", "at", "url", "source")),
}


# Fact fields that are no column of the vulnerabilities or dependency_prs row (an
# advisory's versions and page are read from the fact, for its notices only).
_NOT_HISTORY = frozenset(
    {"repo", "repo_id", "action", "affected_range", "patched_version", "advisory_url"}
)


def _columns(fact: Fact, repo: int) -> tuple[str, dict[str, Any]] | None:
    """The history row a fact writes: its table and the columns it sets (key first)."""
    if isinstance(fact, Build):
        key = {"source": fact.source, "run_id": fact.run_id, "job": fact.job or ""}
        skip = {"repo", "repo_id", "source", "run_id", "job", "workflow_path"}
        if fact.event is None:
            skip.add("event")  # kept from an earlier version (coalesce)
        return "builds", key | {n: v for n, v in vars(fact).items() if n not in skip}
    if isinstance(fact, Push | Coverage):
        table, cols = _PLAIN[type(fact)]
        return table, {"repo_id": repo} | {n: getattr(fact, n) for n in cols}
    if isinstance(fact, Vulnerability | Dependency):
        table = "vulnerabilities" if isinstance(fact, Vulnerability) else "dependency_prs"
        rest = {n: v for n, v in vars(fact).items() if n not in _NOT_HISTORY}
        return table, {"repo_id": repo} | rest
    return None


KEY_COLUMNS = {
    "builds": 3,
    "activity": 3,
    "coverage": 5,
    "vulnerabilities": 2,
    "dependency_prs": 2,
}


def history_key(fact: Fact, repo: int) -> Key | None:
    """The history row a fact writes, as (table, key columns...)."""
    found = _columns(fact, repo)
    if found is None:
        return None
    table, cols = found
    return (table, *list(cols.values())[: KEY_COLUMNS[table]])


def history(db: Tx, facts: list[Fact]) -> list[Key]:
    keys = []
    for fact in facts:
        if isinstance(fact, HookPing) or (repo := repo_id(db, fact)) is None:
            continue
        if (key := history_key(fact, repo)) is not None:
            keys.append(key)
    return keys


def same(db: Tx, fact: Fact, repo: int) -> bool:
    """Whether the history row the fact writes holds the fact's values: the fact
    decides it (a later version would have replaced them)."""
    found = _columns(fact, repo)
    if found is None:
        return False
    table, cols = found
    where = " AND ".join(f"{c} IS ?" for c in cols)
    row = db.execute(f"SELECT 1 FROM {table} WHERE {where} LIMIT 1", list(cols.values()))
    return row.fetchone() is not None


def decides_current(db: Tx, fact: Fact, repo: int) -> bool:
    """Whether a build is what its workflow's last run or summary item shows."""
    if not (isinstance(fact, Build) and fact.counts_on_default_branch):
        return False
    b = fact
    if db.execute(
        "SELECT 1 FROM workflow_state WHERE repo_id = ? AND workflow = ? AND status = ?"
        " AND url IS ? AND completed_at = ? AND run_id = ? AND event IS ? AND attempt = ?",
        (repo, b.workflow, b.status, b.url, b.completed_at, b.run_id, b.event, b.attempt),
    ).fetchone():
        return True
    at = parse_iso_or_none(b.completed_at)
    return at is not None and bool(
        db.execute(
            "SELECT 1 FROM summary_items WHERE path = ? AND report = ? AND note IS ?"
            " AND updated = ? AND (? IS NULL OR link = ?)",
            (
                f"{b.repo}/actions/{b.workflow}",
                "GOOD" if b.status in PASSED_CONCLUSIONS else "BAD",
                f"{b.status} ({b.event})" if b.event else b.status,
                iso(at),
                b.url,
                b.url,
            ),
        ).fetchone()
    )


def _flags(fact: Repo) -> list[str]:
    """The flags a repository event sets, as state.apply sets them."""
    if fact.action in _REPO_FLAGS:
        return [part.split("=")[0].strip() for part in _REPO_FLAGS[fact.action].split(",")]
    if fact.action in ("created", "edited", "renamed", "transferred", "scanned"):
        return ["archived", "private", "deleted"] if fact.default_branch else []
    return []


# The merges: the last writer, the first, the greatest value (ties: the first).
def _last(db: Tx, key: Key, did: int, row: str | None = None) -> None:
    db.execute(
        "INSERT INTO retention_cells (cell, delivery_id, row) VALUES (?, ?, ?) ON CONFLICT(cell)"
        " DO UPDATE SET delivery_id = max(retention_cells.delivery_id, excluded.delivery_id)",
        (cell_id(key), did, row),
    )


def _first(db: Tx, key: Key, did: int) -> None:
    db.execute(
        "INSERT OR IGNORE INTO retention_cells (cell, delivery_id) VALUES (?, ?)",
        (cell_id(key), did),
    )


def _max(db: Tx, key: Key, value: str, did: int) -> None:
    db.execute(
        "INSERT INTO retention_cells (cell, delivery_id, value) VALUES (?, ?, ?) ON CONFLICT(cell)"
        " DO UPDATE SET delivery_id = excluded.delivery_id, value = excluded.value"
        " WHERE excluded.value > retention_cells.value",
        (cell_id(key), did, value),
    )


def _greatest(db: Tx, key: Key) -> str:
    row = db.execute("SELECT value FROM retention_cells WHERE cell = ?", (cell_id(key),)).fetchone()
    return str(row[0]) if row and row[0] is not None else ""


# Mirrors state.apply's per-kind merges one branch each: kept side by side on purpose.
def _index_one(db: Tx, row: dict[str, Any]) -> None:  # noqa: C901
    """Record what the delivery decides, following state.apply's merges."""
    did, eff = int(row["id"]), effects(row)
    if eff is None:
        return
    for key in history(db, eff.facts):
        _last(db, key, did, json.dumps(list(key)))
    if row["status"] != "processed":
        return  # in error: rolled back when processed, and never pruned
    if eff.hook:
        hook, target, repo_name, org = eff.hook
        _last(db, ("h", hook), did)
        _max(db, ("h.at", hook), str(row["received_at"]), did)
        _hook(db, hook, did, target, repo_name, org)
    branch_known: set[int] = set()
    for fact in eff.facts:
        if isinstance(fact, HookPing):
            if fact.hook_id is not None:
                _last(db, ("hp", fact.hook_id), did)
                if fact.content_type is not None:
                    _last(db, ("hp.ct", fact.hook_id), did)
                _hook(db, fact.hook_id, did, fact.target, fact.repo, fact.org)
            continue
        if (repo := repo_id(db, fact)) is None:
            continue
        if isinstance(getattr(fact, "repo_id", None), int):
            _last(db, ("r", repo), did)  # the row and its name
        if isinstance(fact, Build) and fact.default_branch and fact.branch:
            if repo not in branch_known:
                _first(db, ("r.dbb", repo), did)
        elif isinstance(fact, Push):
            _max(db, ("r.push", repo), fact.at or "", did)
            if not fact.bot and fact.commits:
                _max(db, ("r.act", repo), fact.at or "", did)
        elif isinstance(fact, IssueActivity) and not fact.bot and fact.at:
            _max(db, ("r.issue", repo), fact.at, did)
        elif isinstance(fact, DependencyGraph):
            _last(db, ("g", repo), did)  # a graph is replaced whole
        elif isinstance(fact, Profile):
            _last(db, ("p", repo), did)
            for name in ("readme", "api_docs", "dependabot"):
                if getattr(fact, name) is not None:
                    _last(db, ("p.c", repo, name), did)
        elif isinstance(fact, Repo):
            _repo(db, fact, repo, did)
            if fact.default_branch:
                branch_known.add(repo)


def _hook(db: Tx, hook: int, did: int, *values: str | None) -> None:
    for name, value in zip(("target", "repo", "org"), values, strict=True):
        if value is not None:
            _last(db, ("h.c", hook, name), did)


def _repo(db: Tx, fact: Repo, repo: int, did: int) -> None:
    for name in ("owner", "default_branch", "url"):
        if getattr(fact, name) is not None:
            _last(db, ("r.c", repo, name), did)
    if fact.action != "seen":
        for name in _flags(fact):
            _last(db, ("r.f", repo, name), did)
    elif _greatest(db, ("r.at", repo)) <= (fact.at or ""):
        # A snapshot sets the flags unless a newer one was applied before it.
        for name in ("archived", "private"):
            _last(db, ("r.f", repo, name), did)
    _max(db, ("r.at", repo), fact.at or "", did)


def index(db: Tx, *, stop: float, at: str) -> bool:
    """Index the processed deliveries not yet indexed, in id order, until ``stop``
    (a perf_counter time); True once up with processing."""
    start = sweeps.position(db, INDEX)
    if start is None:
        sweeps.start(db, INDEX, at)
    done = start or 0
    caught_up = spent = False
    while not caught_up and not spent:
        rows = list(
            db.query(
                "SELECT d.id, d.event, d.status, d.received_at, d.hook_id, d.hook_target,"
                " p.payload FROM deliveries d JOIN delivery_payloads p ON p.delivery_id = d.id"
                " WHERE d.id > ? ORDER BY d.id LIMIT ?",
                (done, BATCH),
            )
        )
        caught_up = len(rows) < BATCH
        for row in rows:
            if row["status"] == "pending":
                caught_up = True  # processing is here; everything before it is indexed
                break
            _index_one(db, row)
            done = int(row["id"])
            if time.perf_counter() >= stop:
                caught_up, spent = caught_up and row is rows[-1], True
                break
    if done != (start or 0):
        sweeps.advance(db, INDEX, done, finished_at=None)
    return caught_up
