"""``EcosystemMonitor``: the store, read from Python (the seed's API).

    from pulsehook import EcosystemMonitor
    monitor = EcosystemMonitor(org="octo-org")  # data/pulsehook.db, or PULSEHOOK_DATA_DIR
    monitor.check_repo("octo-repo").score
    monitor.scan_vulnerabilities()
    monitor.get_build_statuses()

It reads the same SQLite file the service writes (safely, while it runs) and
scores with the same formulas. ``scan()`` backfills from the GitHub API, and
with a token ``check_repo`` scans a repository it does not know yet. The file
must exist (DatabaseMissing otherwise: a mistyped path would read an empty
store) unless there is a token or ``create=True`` asks for a fresh one.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import health
from .clock import Clock, SystemClock
from .errors import DatabaseMissing, PulsehookError
from .settings import Settings
from .store.db import Database, Tx, connect, open_database, wrap
from .store.health import inputs
from .store.queries import RepoRef, build_state, find_repos, latest_builds, vulnerability_rows


class UnknownRepository(PulsehookError, LookupError):
    """No repository of that name in the store."""


@dataclass(frozen=True)
class RepoHealth:
    name: str
    score: float | None
    components: dict[str, dict[str, Any]]
    warnings: tuple[str, ...]
    formula_version: int


@dataclass(frozen=True)
class VulnerabilityItem:
    repo: str
    package: str | None
    severity: str
    description: str | None
    summary: str | None
    state: str
    ghsa_id: str | None
    cve_id: str | None
    url: str | None


@dataclass(frozen=True)
class BuildStatus:
    state: str | None  # success | failure | ... (the default branch's workflows together)
    last_run: str | None  # when the latest completed run finished (ISO-8601, UTC)
    url: str | None  # that run
    workflows: dict[str, str]  # workflow -> its latest status


class EcosystemMonitor:
    def __init__(
        self,
        org: str | None = None,
        db: str | Path | None = None,
        *,
        clock: Clock | None = None,
        create: bool = False,
        token: str | None = None,
        api_url: str | None = None,
    ) -> None:
        """``db``: the service's SQLite file; by default ``pulsehook.db`` in the
        configured data directory (``PULSEHOOK_DATA_DIR``, else ``./data``), as the
        service and the command line find it. ``token`` (by default ``GITHUB_TOKEN``):
        with one, a repository the store does not know yet is scanned from the
        GitHub API (``api_url``, by default ``PULSEHOOK_GITHUB_API_URL``) the first
        time it is asked for, and a missing store is made for that. ``create``: make
        a fresh store where there is none; otherwise a missing file is
        DatabaseMissing."""
        settings = Settings()
        self.org = org
        self.path = Path(db) if db is not None else settings.db_path
        self.clock = clock or SystemClock()
        found = settings.github_token
        self.token = token or (found.get_secret_value() if found is not None else None)
        self.api_url = api_url or settings.github_api_url
        if (create or self.token) and not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            open_database(self.path).close()
        self._require()

    def _require(self) -> None:
        if not self.path.is_file():
            raise DatabaseMissing(
                f"no pulsehook database at {self.path.absolute()} (give db= the service's"
                " pulsehook.db, or create=True for a fresh store to scan into)",
                path=self.path,
            )

    def _db(self) -> Database:
        self._require()  # connecting to a path that is gone would create an empty file
        return wrap(connect(self.path, readonly=True))

    def _repos(self, db: Tx) -> list[RepoRef]:
        """The live repositories (the org's, with one), by full name."""
        return find_repos(db, owner=self.org or None)

    def _find(self, db: Tx, name: str) -> RepoRef:
        """``owner/repo`` exactly, or the first by full name called ``repo``."""
        found = find_repos(db, name, owner=self.org or None)
        if not found:
            raise UnknownRepository(f"no repository {name!r} in {self.path}")
        return found[0]

    def check_repo(self, name: str) -> RepoHealth:
        """Score one repository now, with each component's sub-score and reason.

        A repository the store does not know is scanned first when there is a token
        (``owner/repo``, or ``repo`` of the monitor's ``org``); what the scan stored
        is processed here as the service's worker would (``_process``)."""
        try:
            return self._check(name)
        except UnknownRepository:
            if self.token is None or not (self.org or "/" in name):
                raise
        from .github.backfill import run_scan
        from .github.scan import Pace

        full = name if "/" in name else f"{self.org}/{name}"
        run_scan(
            self.path,
            org=None,  # that repository alone, not the organisation's listing
            repos=[full],
            token=self.token,
            api_url=self.api_url,
            pace=Pace(),
            clock=self.clock,
        )
        self._process()
        return self._check(name)

    def _process(self) -> None:
        """Process what the scan stored. The service's own file goes the worker's
        way, alert rules included (notices wait in the outbox for the service to
        send): what a running service had not processed yet loses no alert. Any
        other file is no service's, and is processed without rules."""
        from .alerts.engine import Policy
        from .ingest import Alerting, Worker
        from .rules.load import load_rules
        from .store.db import SqliteWriter

        alerting = None
        if self.path.name == "pulsehook.db":
            settings = Settings(data_dir=self.path.parent)
            found = settings.rules_dir
            if found.is_dir():
                alerting = Alerting(
                    rules=load_rules(found, os.environ),
                    policy=Policy.of(settings),
                )

        async def drain() -> None:
            writer = SqliteWriter(self.path)
            try:
                await Worker(writer, self.clock, alerting=alerting).drain()
            finally:
                writer.close()

        asyncio.run(drain())

    def _check(self, name: str) -> RepoHealth:
        db = self._db()
        try:
            repo = self._find(db, name)
            data = inputs(db, repo.id)
        finally:
            db.conn.close()
        if data is None:
            raise UnknownRepository(f"no repository {name!r} in {self.path}")
        result = health.score(data, self.clock.now())
        return RepoHealth(
            name=repo.full_name,
            score=result.score,
            components=health.as_dict(result),
            warnings=result.warnings,
            formula_version=result.formula_version,
        )

    def scan_vulnerabilities(self, *, include_closed: bool = False) -> list[VulnerabilityItem]:
        """Open Dependabot alerts across the ecosystem, most severe first."""
        db = self._db()
        try:
            ids = {r.id for r in self._repos(db)}
            rows = vulnerability_rows(db, include_closed=include_closed)
        finally:
            db.conn.close()
        return [
            VulnerabilityItem(
                repo=r["full_name"],
                package=r["package"],
                severity=r["severity"],
                description=r["description"],
                summary=r["summary"],
                state=r["state"],
                ghsa_id=r["ghsa_id"],
                cve_id=r["cve_id"],
                url=r["url"],
            )
            for r in rows
            if r["id"] in ids
        ]

    def get_build_statuses(self) -> dict[str, BuildStatus]:
        """Each repository's default-branch build state and its latest run."""
        db = self._db()
        try:
            names = {r.id: r.full_name for r in self._repos(db)}
            runs: dict[int, list[dict[str, Any]]] = {}
            for run in latest_builds(db):
                runs.setdefault(run["repo_id"], []).append(run)
        finally:
            db.conn.close()
        out = {}
        for repo_id, name in names.items():
            workflows = runs.get(repo_id, [])
            latest = max(workflows, key=lambda w: w["completed_at"] or "", default=None)
            out[name] = BuildStatus(
                state=build_state(workflows),
                last_run=latest["completed_at"] if latest else None,
                url=latest["url"] if latest else None,
                workflows={w["workflow"]: w["status"] for w in workflows},
            )
        return out

    def scan(
        self,
        *,
        token: str | None = None,
        repos: list[str] | None = None,
        api_url: str | None = None,
    ) -> Any:
        """Backfill the store from the GitHub API (see ``pulsehook scan``); what it
        stores waits for processing (the service's, or ``check_repo``'s)."""
        from .github.backfill import run_scan
        from .github.scan import Pace

        self._require()
        return run_scan(
            self.path,
            org=self.org,
            repos=repos,
            token=token or self.token,
            api_url=api_url or self.api_url,
            pace=Pace(),
            clock=self.clock,
        )


__all__ = [
    "BuildStatus",
    "DatabaseMissing",
    "EcosystemMonitor",
    "RepoHealth",
    "UnknownRepository",
    "VulnerabilityItem",
]
