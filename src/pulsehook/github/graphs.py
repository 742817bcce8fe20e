"""Dependency graphs and workflows read again after a push changed them, between scans.

A push to the default branch that changes a workflow file marks the repository's
workflows as wanted (``store/scans.want_workflows``); the next pass reads them
(``scan.read_workflows``: conditional, and only changed files), so a new or moved
schedule is watched within ``PASS_SECONDS``, not at the next scan.

A push to the default branch that changes a manifest or lock file marks the
repository's graph as wanted (``store/dependencies.want``, in the push's own
transaction). Every ``PASS_SECONDS`` the refresher reads up to ``PER_PASS``
wanted graphs whose last read is older than ``MIN_AGE``: a repository pushed to
all day costs one SBOM request per ``MIN_AGE`` at most, and each request carries
the ETag of the last answer, so an unchanged graph costs no rate limit (304).
What it reads is stored and processed like a scan's finding.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial

from ..clock import Clock, iso
from ..store import dependencies, scans
from ..store.db import NORMAL, Readers, Tx, Writer
from ..store.deliveries import Delivery
from ..store.scans import Memory
from .api import GitHubClient, GitHubError, RateLimited
from .budget import ShareSpent
from .scan import Pace, RepoReading, read_graph, read_workflows

log = logging.getLogger(__name__)

PASS_SECONDS = 30.0
PER_PASS = 20
MIN_AGE = timedelta(minutes=10)
ETAGS = ("sbom",)
FACTS = ("graph", "graph_digest", "graph_checked")
WORKFLOW_ETAGS = ("workflows", "workflow_dir")
WORKFLOW_FACTS = ("workflows", "workflow_dir", "workflow_files")


class GraphRefresher:
    def __init__(
        self,
        writer: Writer,
        readers: Readers,
        clock: Clock,
        submit: Callable[[list[Delivery]], Awaitable[None]],
        pace: Pace | None = None,
    ) -> None:
        self._pace = pace or Pace()
        self._writer = writer
        self._readers = readers
        self._clock = clock
        self._submit = submit
        self.read = 0  # graphs asked for since start
        self.errors = 0

    async def once(self, client: GitHubClient) -> int:
        """Read the wanted graphs due now; how many were asked for."""
        now = self._clock.now()
        due = await self._readers.run(
            lambda db: dependencies.wanted(db, read_before=iso(now - MIN_AGE), limit=PER_PASS)
        )
        asked = 0
        for row in due:
            repo_id, name, wanted_at = int(row["repo_id"]), str(row["full_name"]), row["wanted_at"]
            memory = await self._readers.run(partial(scans.memory, repo_id=repo_id))
            repo = {"id": repo_id, "full_name": name, "default_branch": row["default_branch"]}
            reading = RepoReading(repo, self._clock.now(), memory)
            try:
                await read_graph(client, reading)
            except (RateLimited, ShareSpent):
                raise  # the next pass tries again; the wants stay
            except (GitHubError, KeyError, TypeError, AttributeError) as exc:
                # The next scan reads it anyway; asking again every pass would not help.
                self.errors += 1
                log.warning("dependency graph of %s: %s", name, exc)
            asked += 1
            if reading.deliveries:
                await self._submit(reading.deliveries)

            def settle(
                db: Tx, i: int = repo_id, at: str = wanted_at, learned: Memory = reading.learned
            ) -> None:
                scans.remember(db, i, learned, etags=ETAGS, facts=FACTS)
                dependencies.done(db, i, at)

            await self._writer.run(settle, NORMAL)
        self.read += asked
        if asked:
            log.info("dependency graphs read after pushes: %d", asked)
        return asked + await self._workflows(client)

    async def _workflows(self, client: GitHubClient) -> int:
        """Read the workflows pushes changed; how many repositories were read."""
        now = self._clock.now()
        due = await self._readers.run(
            lambda db: scans.workflows_wanted(db, wanted_before=iso(now), limit=PER_PASS)
        )
        for row in due:
            repo_id, name, wanted_at = int(row["repo_id"]), str(row["full_name"]), row["wanted_at"]
            memory = await self._readers.run(partial(scans.memory, repo_id=repo_id))
            repo = {
                "id": repo_id,
                "full_name": name,
                "default_branch": row["default_branch"],
                "private": bool(row["private"]),
                "pushed_at": row["last_push_at"],
            }
            reading = RepoReading(repo, self._clock.now(), memory)
            try:
                await read_workflows(client, reading, self._pace, pushed=True)
            except (RateLimited, ShareSpent):
                raise
            except (GitHubError, KeyError, TypeError, AttributeError) as exc:
                self.errors += 1
                log.warning("workflows of %s: %s", name, exc)
            if reading.deliveries:
                await self._submit(reading.deliveries)

            def settle(
                db: Tx, i: int = repo_id, at: str = wanted_at, learned: Memory = reading.learned
            ) -> None:
                scans.remember(db, i, learned, etags=WORKFLOW_ETAGS, facts=WORKFLOW_FACTS)
                scans.workflows_read(db, i, at)

            await self._writer.run(settle, NORMAL)
        if due:
            log.info("workflows read after pushes: %d", len(due))
        return len(due)
