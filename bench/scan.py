"""The GitHub scan at 10,000 repositories within GitHub's primary rate limit, in virtual time.

    .venv/bin/python bench/scan.py [--quick] [--repos 10000] [--limit 5000] [--share 0.75]
        [--interval 3600] [--pushes 50] [--latency 0.25] [--after 3] [--max-rounds 40]
        [--seconds 900] [--phase 0.9] [--cycle-hours 24] [--seed 7]

A stand-in for GitHub (Starlette on uvicorn, 127.0.0.1, in a thread) serves an
organisation ``bench`` of N repositories: the listing (``sort=pushed``, 100 a
page, page-numbered ``Link``s) and, per repository, what the scan reads (runs,
Dependabot alerts or a 403 "disabled", the dependency graph's SBOM (a 404 where
Dependabot is disabled), community profile, README, commits, the head's
statuses, pull requests), each 200 with a deterministic ETag and a 304 for
a matching ``If-None-Match``. It enforces GitHub's primary rate limit: L answers
a window, the window opening at the first request after the last one closed and
lasting 3,600 s; every answer but a 304 counts; past L, 403 "API rate limit
exceeded" with ``x-ratelimit-remaining: 0``.

Time is virtual: one clock, shared by the stand-in and pulsehook's client, that
each request moves by a modelled GitHub latency and that the client's ``sleep``
moves instead of sleeping. The service's rounds are simulated: every
``--interval`` one ``scan()`` into a real SQLite store, ledger and all. Each
hour ``--pushes`` repositories are pushed to at random moments of the hour (a
round may be under way: the stand-in applies a push when the clock passes it),
and each push is timed until the scan next scans its repository. It runs until
every repository has been scanned once, then ``--after`` rounds more, within
``--max-rounds`` and ``--seconds`` of real time. ``--quick``: the same shape at a
fifth (2,000 repositories, limit 1,000, 10 pushes an hour), within 110 s.

Targets: no window with more counted answers than share x limit and no 403
refusal; every repository scanned within 24 virtual hours; every push scanned by
the first round that starts after it (a poller's bound: a push landing while a
round lists waits for the next one, so a few wait a little over one interval).
The baseline, from the same run: a naive scan that reads every repository each
round with the requests its first scan took, without ETags or a share.

``--phase``: rounds start that far past a whole second (0.9 by default: the
service's rounds start at any fraction of a second). GitHub's reset is a whole
second; once the phase plus the latency of a round's first request reaches a
second, the window a round opened is, by the reset it reports, still open when
the next round starts, with the round's share spent. ``--phase 0`` is the case
where every reset falls on a round's start. The wall time per round includes
the stand-in's answers (one request at a time); the CPU time is pulsehook's
alone (this process's less the stand-in's thread).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import heapq
import json
import math
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pulsehook.clock import iso, parse_iso
from pulsehook.github.api import GitHubClient, GitHubError
from pulsehook.github.backfill import StoreLedger
from pulsehook.github.scan import SHARE_SPENT, TIME_UP, Pace, ScanReport, scan
from pulsehook.store import deliveries
from pulsehook.store.db import NORMAL, SqliteReaders, SqliteWriter
from pulsehook.store.deliveries import Delivery

Json = dict[str, Any]

ORG = "bench"
TOKEN = "ghp_BenchScanT0kenNotARealOne"
API = "https://api.github.com"
START = datetime(2026, 3, 2, tzinfo=UTC).timestamp()  # rounds start --phase past this
WINDOW = 3600  # GitHub's primary rate-limit window
COVERAGE_HOURS = 24.0  # every repository scanned within a day (README, GitHub scan)
LISTING_PAGE = 100  # GitHub's largest per_page
DISABLED = "Dependabot alerts are disabled for this repository."
LIMITED = (
    "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help,"
    " please include the request ID."
)
EMPTY = "Git Repository is empty."
DOCS = "https://docs.github.com/rest"
CODECOV = "codecov/project"
BOT = {"login": "dependabot[bot]", "id": 49699333, "type": "Bot"}
OWNER = {"login": ORG, "id": 4242, "type": "Organization", "html_url": f"https://github.com/{ORG}"}


def sha(seed: str) -> str:
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


def stamp(epoch: float) -> str:
    return iso(datetime.fromtimestamp(epoch, UTC))


def render(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


# Each repository has three workflows, as most do: CI on pushes, a nightly job on a
# schedule, a release run by hand; every file names its repository, so every
# repository's blobs differ and each is read once.
WORKFLOWS = {"ci.yml": "CI", "nightly.yml": "Nightly", "release.yml": "Release"}
WORKFLOW_TEXT = {
    "ci.yml": "name: CI\non: [push, pull_request]\njobs:\n  test:\n    runs-on: ubuntu-latest\n"
    "    steps:\n      - run: make test  # {repo}\n",
    "nightly.yml": "name: Nightly\non:\n  schedule:\n    - cron: '0 3 * * *'\n"
    "  workflow_dispatch:\njobs:\n  run:\n    runs-on: ubuntu-latest\n"
    "    steps:\n      - run: make nightly  # {repo}\n",
    "release.yml": "name: Release\non: workflow_dispatch\njobs:\n  release:\n"
    "    runs-on: ubuntu-latest\n    steps:\n      - run: make release  # {repo}\n",
}


def workflow_files(full_name: str) -> dict[str, str]:
    return {f: t.format(repo=full_name) for f, t in WORKFLOW_TEXT.items()}


def blob_sha(text: str) -> str:
    data = text.encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def workflows(full_name: str) -> list[dict[str, Any]]:
    return [
        {"id": n, "name": name, "path": f".github/workflows/{f}", "state": "active",
         "html_url": f"https://github.com/{full_name}/blob/main/.github/workflows/{f}"}
        for n, (f, name) in enumerate(WORKFLOWS.items(), start=1)
    ]  # fmt: skip


class VirtualClock:
    """Shared by the stand-in and the client: requests move it, and so does ``sleep``."""

    def __init__(self, epoch: float) -> None:
        self._epoch = epoch
        self._lock = threading.Lock()
        self.waits = 0  # the client's sleeps (a rate-limit wait or a retry)
        self.waited = 0.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.epoch(), UTC)

    def epoch(self) -> float:
        with self._lock:
            return self._epoch

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._epoch += seconds
            return self._epoch

    def forward_to(self, epoch: float) -> None:
        with self._lock:
            self._epoch = max(self._epoch, epoch)

    async def sleep(self, seconds: float) -> None:
        self.waits += 1
        self.waited += seconds
        self.advance(seconds)


# -- the organisation ------------------------------------------------------------------


def person(login: str, uid: int) -> Json:
    return {"login": login, "id": uid, "type": "User", "html_url": f"https://github.com/{login}"}


@dataclass
class Repo:
    rid: int
    name: str
    created: int
    pushed: int
    updated: int
    private: bool
    archived: bool
    alerts: list[Json] | None  # None: Dependabot alerts disabled (403)
    profile_readme: bool  # the community profile finds the README
    readme: bool  # what the README endpoint says, when asked
    docs: str | None
    codecov: bool
    commits: list[Json] = field(default_factory=list)  # newest first
    runs: list[Json] = field(default_factory=list)  # newest first
    pulls: list[Json] = field(default_factory=list)
    statuses: dict[str, list[Json]] = field(default_factory=dict)  # per sha, newest first
    pushes: int = 0
    listed: Json | None = None  # the listing's object, until a push changes it

    @property
    def full_name(self) -> str:
        return f"{ORG}/{self.name}"

    @property
    def head(self) -> str | None:
        return self.commits[0]["sha"] if self.commits else None

    def obj(self) -> Json:
        if self.listed is None:
            self.listed = {
                "id": self.rid,
                "node_id": f"R_{self.rid}",
                "name": self.name,
                "full_name": self.full_name,
                "owner": OWNER,
                "private": self.private,
                "html_url": f"https://github.com/{self.full_name}",
                "description": None,
                "fork": False,
                "url": f"{API}/repos/{self.full_name}",
                "created_at": stamp(self.created),
                "updated_at": stamp(self.updated),
                "pushed_at": stamp(self.pushed),
                "size": 1024,
                "language": "Python",
                "archived": self.archived,
                "disabled": False,
                "visibility": "private" if self.private else "public",
                "default_branch": "main",
            }
        return self.listed

    def commit(self, at: int, who: Json) -> Json:
        n = self.pushes
        person_ = {"name": who["login"], "email": f"{who['login']}@users.noreply.github.com"}
        person_["date"] = stamp(at)
        digest = sha(f"{self.full_name}:{n}")
        parent = self.head or sha(f"{self.full_name}:root")
        message = "Bump requests from 2.31.0 to 2.32.3" if who is BOT else f"Change {n}"
        return {
            "sha": digest,
            "commit": {
                "author": person_,
                "committer": person_,
                "message": message,
                "tree": {"sha": sha(f"tree:{digest}")},
            },
            "html_url": f"https://github.com/{self.full_name}/commit/{digest}",
            "author": who,
            "committer": who,
            "parents": [{"sha": parent}],
        }

    def run(self, run_id: int, at: int, name: str, failed: bool) -> Json:
        return {
            "id": run_id,
            "name": name,
            "display_title": name,
            "head_branch": "main",
            "head_sha": self.head,
            "event": "push",
            "status": "completed",
            "conclusion": "failure" if failed else "success",
            "run_attempt": 1,
            "created_at": stamp(at),
            "run_started_at": stamp(at),
            "updated_at": stamp(at + 300),
            "html_url": f"https://github.com/{self.full_name}/actions/runs/{run_id}",
        }

    def status(self, at: int) -> Json:
        sid = int(sha(f"status:{self.head}")[:8], 16)
        return {
            "id": sid,
            "context": CODECOV,
            "state": "success",
            "description": f"{60 + sid % 40}.00% (+0.10%) compared to {str(self.head)[:7]}",
            "target_url": f"https://app.codecov.io/gh/{self.full_name}",
            "created_at": stamp(at + 400),
            "updated_at": stamp(at + 400),
        }

    def push(self, at: int, who: Json, run_id: int, failed: bool) -> None:
        self.pushes += 1
        self.commits.insert(0, self.commit(at, who))
        del self.commits[30:]  # a page is all the scan reads
        self.runs.insert(0, self.run(run_id, at, "CI", failed))
        del self.runs[20:]
        if self.codecov:
            self.statuses[str(self.head)] = [self.status(at)]
        self.pushed = at
        self.listed = None


def alert(repo: Repo, number: int, rng: random.Random, at: int) -> Json:
    severity = rng.choice(["low", "moderate", "high", "critical"])
    state = rng.choice(["open", "open", "fixed", "dismissed"])
    package = {"ecosystem": "pip", "name": rng.choice(["requests", "jinja2", "urllib3", "idna"])}
    return {
        "number": number,
        "state": state,
        "dependency": {"package": package, "manifest_path": "requirements.txt"},
        "security_advisory": {"ghsa_id": f"GHSA-{number:04d}", "severity": severity},
        "security_vulnerability": {"package": package, "severity": severity},
        "html_url": f"https://github.com/{repo.full_name}/security/dependabot/{number}",
        "created_at": stamp(at),
        "updated_at": stamp(at + 3600),
        "fixed_at": stamp(at + 3600) if state == "fixed" else None,
        "dismissed_at": stamp(at + 3600) if state == "dismissed" else None,
    }


def pull(repo: Repo, number: int, who: Json, at: int, state: str) -> Json:
    return {
        "number": number,
        "title": "Bump urllib3 from 2.0.7 to 2.2.2" if who is BOT else f"Feature {number}",
        "state": state,
        "user": who,
        "html_url": f"https://github.com/{repo.full_name}/pull/{number}",
        "created_at": stamp(at),
        "updated_at": stamp(at + 600),
        "closed_at": stamp(at + 600) if state == "closed" else None,
        "merged_at": stamp(at + 600) if state == "closed" else None,
        "head": {"ref": f"branch-{number}"},
        "base": {"ref": "main"},
    }


def organisation(count: int, rng: random.Random) -> list[Repo]:
    """``count`` repositories of a varied organisation, the same for a given ``rng``."""
    repos = []
    for n in range(count):
        created = int(START) - rng.randrange(400, 3000) * 86400
        pushed = int(START) - rng.randrange(60, 3 * 365 * 86400)
        pushed = max(pushed, created)
        repo = Repo(
            rid=500_000 + n,
            name=f"repo-{n:05d}",
            created=created,
            pushed=pushed,
            updated=pushed,
            private=rng.random() < 0.3,
            archived=rng.random() < 0.05,
            alerts=None if rng.random() < 0.35 else [],
            profile_readme=rng.random() < 0.8,
            readme=rng.random() < 0.5,
            docs=f"https://docs.example/{n}" if rng.random() < 0.2 else None,
            codecov=rng.random() < 0.5,
        )
        if repo.alerts is not None and rng.random() < 0.4:
            repo.alerts = [alert(repo, i, rng, pushed - 86400) for i in range(1, rng.randint(2, 4))]
        if rng.random() >= 0.01:  # one in a hundred is empty
            for i in range(3):
                at = pushed - (2 - i) * 86400
                who = BOT if rng.random() < 0.2 else person(f"dev{n % 97}", 1000 + n % 97)
                repo.commits.insert(0, repo.commit(at, who))
                repo.pushes += 1
            for i in range(2):
                repo.runs.insert(0, repo.run(n * 10 + i, pushed + i * 60, "CI", rng.random() < 0.1))
            if repo.codecov:
                repo.statuses[str(repo.head)] = [repo.status(pushed)]
        for i in range(rng.choice([0, 0, 1, 2, 3])):
            who = BOT if rng.random() < 0.6 else person(f"dev{i}", 1000 + i)
            state = "open" if rng.random() < 0.7 else "closed"
            repo.pulls.append(pull(repo, i + 1, who, pushed - (i + 1) * 7200, state))
        repos.append(repo)
    return repos


# -- the stand-in ----------------------------------------------------------------------


@dataclass
class Window:
    start: int
    counted: int = 0
    free: int = 0  # 304s
    refused: int = 0
    graphql: int = 0  # GraphQL queries (a rate limit of their own, a point each here)


@dataclass(order=True)
class Push:
    at: int
    rid: int


class GitHubStandIn:
    """The organisation behind GitHub's REST answers, rate limit and all."""

    def __init__(
        self,
        repos: list[Repo],
        clock: VirtualClock,
        limit: int,
        latency: float,
        seed: int,
        graphql: bool = True,
    ) -> None:
        self.graphql = graphql  # False: GraphQL answers 404, workflow files come by REST
        self.repos = repos
        self.by_name = {r.name: r for r in repos}
        self.by_id = {r.rid: r for r in repos}
        self.clock = clock
        self.limit = limit
        self.latency = latency
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.url = ""
        self.ordered: list[Repo] | None = None  # by pushed_at, newest first
        self.scheduled: list[Push] = []  # a heap
        self.applied: list[Push] = []
        self.used = 0
        self.reset: int | None = None
        self.windows: list[Window] = []
        self.refused = 0
        self.hits: Counter[int] = Counter()  # answers per repository since the last clear
        self.next_run = 10**8

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/graphql", self.handle_graphql, methods=["POST"]),
                Route("/{path:path}", self.handle, methods=["GET"]),
            ]
        )

    # pushes

    def schedule(self, pushes: list[Push]) -> None:
        with self.lock:
            for p in pushes:
                heapq.heappush(self.scheduled, p)

    def catch_up(self) -> None:
        """Apply the pushes the clock has passed (between rounds; requests do it too)."""
        with self.lock:
            self._apply(self.clock.epoch())

    def _apply(self, now: float) -> None:
        while self.scheduled and self.scheduled[0].at <= now:
            p = heapq.heappop(self.scheduled)
            who = BOT if self.rng.random() < 0.1 else person("pusher", 77)
            self.next_run += 1
            self.by_id[p.rid].push(p.at, who, self.next_run, self.rng.random() < 0.1)
            self.ordered = None
            self.applied.append(p)

    # answers

    async def handle(self, request: Request) -> Response:
        with self.lock:
            now = self.clock.advance(self.latency)  # GitHub's time to answer
            self._apply(now)
            rsp = self.metered(request, int(now))
            return rsp

    async def handle_graphql(self, request: Request) -> Response:
        """The workflow directory and blob queries; counted apart from the REST limit."""
        body = json.loads(await request.body())
        with self.lock:
            self.clock.advance(self.latency)
            headers = {"x-ratelimit-resource": "graphql", "x-ratelimit-remaining": "4000"}
            if not self.graphql:
                return self.json({"message": "Not Found"}, 404, headers)
            if self.windows:
                self.windows[-1].graphql += 1
            names = body.get("variables") or {}
            repo = self.by_name.get(str(names.get("name")))
            if repo is None:
                return self.json({"data": {"repository": None}}, 200, headers)
            files = workflow_files(repo.full_name)
            if "HEAD:.github/workflows" in body["query"]:
                entries = [
                    {"name": f, "type": "blob", "oid": blob_sha(t)} for f, t in files.items()
                ]
                return self.json(
                    {"data": {"repository": {"object": {"entries": entries}}}}, 200, headers
                )
            texts = {blob_sha(t): t for t in files.values()}
            found = {
                alias: {"text": texts[oid], "isBinary": False, "isTruncated": False,
                        "byteSize": len(texts[oid])} if oid in texts else None
                for alias, oid in names.items()
                if alias not in ("owner", "name")
            }  # fmt: skip
            return self.json({"data": {"repository": found}}, 200, headers)

    def metered(self, request: Request, now: int) -> Response:
        if self.reset is None or now >= self.reset:
            self.reset, self.used = now + WINDOW, 0
            self.windows.append(Window(now))
        window = self.windows[-1]
        if self.used >= self.limit:
            self.refused += 1
            window.refused += 1
            rsp: Response = self.json({"message": LIMITED, "documentation_url": DOCS}, 403)
        else:
            rsp = self.answer(request)
            if rsp.status_code == 304:
                window.free += 1
            else:
                self.used += 1
                window.counted += 1
        rsp.headers.update(
            {
                "x-ratelimit-limit": str(self.limit),
                "x-ratelimit-remaining": str(max(0, self.limit - self.used)),
                "x-ratelimit-reset": str(self.reset),
                "x-ratelimit-used": str(self.used),
                "x-ratelimit-resource": "core",
            }
        )
        return rsp

    @staticmethod
    def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(render(data), status, headers, media_type="application/json")

    def answer(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return self.json({"message": "Bad credentials", "documentation_url": DOCS}, 401)
        found = self.route(request)
        if isinstance(found, Response):
            return found
        data, headers = found
        body = render(data)
        etag = f'W/"{sha(body.decode() + headers.get("link", ""))}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"etag": etag})
        return Response(body, 200, {"etag": etag, **headers}, media_type="application/json")

    def route(self, request: Request) -> Response | tuple[Any, dict[str, str]]:
        path, q = request.url.path, request.query_params
        if path == f"/orgs/{ORG}/repos":
            return self.listing(request)
        prefix = f"/repos/{ORG}/"
        repo = None
        if path.startswith(prefix):
            name, _, rest = path[len(prefix) :].partition("/")
            repo = self.by_name.get(name)
        if repo is None:
            return self.json({"message": "Not Found", "documentation_url": DOCS}, 404)
        self.hits[repo.rid] += 1
        per_page = min(100, int(q.get("per_page", "30")))
        rest = f"/{rest}" if rest else ""
        if rest == "":
            return repo.obj(), {}
        if rest == "/actions/runs":
            runs = [r for r in repo.runs if q.get("branch") in (None, r["head_branch"])]
            return {"total_count": len(runs), "workflow_runs": runs[:per_page]}, {}
        if rest == "/dependabot/alerts":
            if repo.alerts is None:
                return self.json({"message": DISABLED, "documentation_url": DOCS}, 403)
            states = q["state"].split(",") if q.get("state") else None
            alerts = [a for a in repo.alerts if states is None or a["state"] in states]
            alerts.sort(key=lambda a: str(a["updated_at"]), reverse=q.get("direction") != "asc")
            return alerts[:per_page], {}
        if rest == "/community/profile":
            return self.profile(repo), {}
        if rest == "/dependency-graph/sbom":
            if repo.alerts is None:  # no Dependabot: no dependency graph either
                return self.json({"message": "Not Found", "documentation_url": DOCS}, 404)
            return self.sbom(repo), {}
        if rest == "/readme":
            if not (repo.readme or repo.profile_readme):
                return self.json({"message": "Not Found", "documentation_url": DOCS}, 404)
            return {"type": "file", "name": "README.md", "path": "README.md", "size": 512}, {}
        if rest == "/commits":
            if not repo.commits:
                return self.json({"message": EMPTY, "documentation_url": DOCS}, 409)
            return (repo.commits if q.get("sha") in (None, "main") else [])[:per_page], {}
        if rest.startswith("/commits/") and rest.endswith("/statuses"):
            ref = rest[len("/commits/") : -len("/statuses")]
            head = repo.head if ref == "main" else ref
            if head is None:
                return self.json({"message": "No commit found", "documentation_url": DOCS}, 422)
            return repo.statuses.get(head, [])[:per_page], {}
        if rest == "/actions/workflows":
            return {"total_count": len(WORKFLOWS), "workflows": workflows(repo.full_name)}, {}
        if rest == "/contents/.github/workflows":
            return [
                {"type": "file", "name": f, "path": f".github/workflows/{f}", "sha": blob_sha(t)}
                for f, t in workflow_files(repo.full_name).items()
            ], {}
        if rest.startswith("/git/blobs/"):
            wanted = rest[len("/git/blobs/") :]
            for text in workflow_files(repo.full_name).values():
                if blob_sha(text) == wanted:
                    encoded = base64.b64encode(text.encode()).decode()
                    return {"sha": wanted, "encoding": "base64", "content": encoded}, {}
            return self.json({"message": "Not Found", "documentation_url": DOCS}, 404)
        if rest == "/pulls":
            pulls = [p for p in repo.pulls if q.get("state", "open") in ("all", p["state"])]
            key = "updated_at" if q.get("sort") == "updated" else "created_at"
            pulls.sort(key=lambda p: str(p[key]), reverse=q.get("direction", "desc") == "desc")
            return pulls[:per_page], {}
        return self.json({"message": "Not Found", "documentation_url": DOCS}, 404)

    @staticmethod
    def sbom(repo: Any) -> dict[str, Any]:
        """A dependency graph of 20 packages, two levels deep, in GitHub's SBOM shape."""
        root = "SPDXRef-Repository"
        packages: list[dict[str, Any]] = [{"SPDXID": root, "name": f"{ORG}/{repo.name}"}]
        relationships = [
            {"relationshipType": "DESCRIBES", "spdxElementId": "SPDXRef-DOCUMENT",
             "relatedSpdxElement": root}
        ]  # fmt: skip
        for n in range(20):
            spdx = f"SPDXRef-npm-pkg{n}-1.{n}.0"
            packages.append(
                {"SPDXID": spdx, "name": f"npm:pkg{n}", "versionInfo": f"1.{n}.0",
                 "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER",
                                   "referenceType": "purl",
                                   "referenceLocator": f"pkg:npm/pkg{n}@1.{n}.0"}]}
            )  # fmt: skip
            parent = root if n < 5 else f"SPDXRef-npm-pkg{n % 5}-1.{n % 5}.0"
            relationships.append(
                {"relationshipType": "DEPENDS_ON", "spdxElementId": parent,
                 "relatedSpdxElement": spdx}
            )  # fmt: skip
        return {"sbom": {"SPDXID": "SPDXRef-DOCUMENT", "spdxVersion": "SPDX-2.3",
                         "packages": packages, "relationships": relationships}}  # fmt: skip

    @staticmethod
    def profile(repo: Repo) -> Json:
        readme = {"url": f"{API}/repos/{repo.full_name}/contents/README.md"}
        return {
            "health_percentage": 85 if repo.profile_readme else 28,
            "description": None,
            "documentation": repo.docs,
            "files": {
                "code_of_conduct": None,
                "contributing": None,
                "license": None,
                "readme": readme if repo.profile_readme else None,
            },
            "updated_at": stamp(repo.created),
        }

    def listing(self, request: Request) -> tuple[Any, dict[str, str]]:
        q = request.query_params
        per_page = max(1, min(LISTING_PAGE, int(q.get("per_page", "30"))))
        page = max(1, int(q.get("page", "1")))
        if q.get("sort") == "pushed" and q.get("direction", "desc") == "desc":
            if self.ordered is None:
                self.ordered = sorted(self.repos, key=lambda r: r.pushed, reverse=True)
            repos = self.ordered
        else:
            repos = sorted(self.repos, key=lambda r: r.name, reverse=q.get("direction") == "desc")
        last = max(1, math.ceil(len(repos) / per_page))
        query = {k: v for k, v in q.items() if k != "page"}
        base = f"{self.url}{request.url.path}"

        def link(n: int, rel: str) -> str:
            return f'<{base}?{urlencode({**query, "page": n})}>; rel="{rel}"'

        links = []
        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        chunk = [r.obj() for r in repos[(page - 1) * per_page : page * per_page]]
        return chunk, ({"link": ", ".join(links)} if links else {})


# -- serving ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Served:
    """An app on uvicorn, 127.0.0.1, in a thread of this process."""

    def __init__(self, app: Starlette) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the GitHub stand-in did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def cpu(self) -> float:
        """CPU seconds of the stand-in's thread (its event loop), not counted as pulsehook's."""
        assert self.thread.ident is not None
        return time.clock_gettime(time.pthread_getcpuclockid(self.thread.ident))


# -- the rounds ------------------------------------------------------------------------


@dataclass
class Round:
    number: int
    start: float
    report: ScanReport | None
    error: str | None
    wall: float
    cpu: float
    pushes: int  # pushes made since the last round ended


@dataclass
class Outcome:
    rounds: list[Round] = field(default_factory=list)
    first: dict[int, float] = field(default_factory=dict)  # repository -> first scan (epoch)
    covered_in: int | None = None  # rounds until every repository was scanned
    naive: dict[int, int] = field(default_factory=dict)  # requests of each first scan
    delays: list[tuple[Push, float, int]] = field(default_factory=list)  # push, delay, round
    pending: dict[int, list[Push]] = field(default_factory=lambda: defaultdict(list))
    out_of_time: bool = False
    stored: int = 0  # deliveries in the store at the end


def pushes_for(
    start: float, seconds: int, count: int, ids: list[int], rng: random.Random
) -> list[Push]:
    """``count`` pushes at random whole seconds of the round's interval, to random repositories."""
    first = math.ceil(start)
    return [Push(rng.randrange(first, first + seconds), rng.choice(ids)) for _ in range(count)]


async def simulate(
    args: argparse.Namespace, gh: GitHubStandIn, served: Served, db: Path
) -> Outcome:
    out = Outcome()
    clock = gh.clock
    rng = random.Random(args.seed + 1)
    writer, readers = SqliteWriter(db), SqliteReaders(db)
    ledger = StoreLedger(writer, readers)

    async def sink(batch: list[Delivery]) -> None:
        await writer.run(partial(deliveries.insert_batch, batch=batch), NORMAL)

    pace = Pace(
        share=args.share,
        cycle=timedelta(hours=args.cycle_hours),
        seconds=0.9 * args.interval,
    )
    per_round = round(args.pushes * args.interval / 3600)
    began = time.perf_counter()
    ids = [r.rid for r in gh.repos]
    seen = 0  # pushes of gh.applied already handed to out.pending
    try:
        async with GitHubClient(
            base_url=served.url, token=TOKEN, clock=clock, sleep=clock.sleep
        ) as client:
            for number in range(1, args.max_rounds + 1):
                if time.perf_counter() - began > args.seconds:
                    out.out_of_time = True
                    break
                clock.forward_to(START + args.phase + (number - 1) * args.interval)
                gh.catch_up()
                start = clock.epoch()
                gh.schedule(pushes_for(start, args.interval, per_round, ids, rng))
                gh.hits.clear()
                cpu, server, wall = time.process_time(), served.cpu(), time.perf_counter()
                report: ScanReport | None = None
                error = None
                try:
                    report = await scan(
                        client, org=ORG, repos=None, ledger=ledger, sink=sink, pace=pace
                    )
                except GitHubError as exc:  # RateLimited: the round is lost, the run goes on
                    error = str(exc)
                wall = time.perf_counter() - wall
                cpu = (time.process_time() - cpu) - (served.cpu() - server)
                known = await ledger.scanned()
                made = gh.applied[seen:]  # since the last round ended (no request is under way)
                seen += len(made)
                done = Round(number, start, report, error, wall, cpu, len(made))
                out.rounds.append(done)
                for push in made:
                    out.pending[push.rid].append(push)
                for name in report.repos if report else []:
                    rid = gh.by_name[name.partition("/")[2]].rid
                    # When this scan of it began: it saw every push made before then.
                    at = parse_iso(known[rid].scanned_at).timestamp()
                    if rid not in out.first:
                        out.first[rid] = at
                        out.naive[rid] = gh.hits[rid]
                    waiting = out.pending[rid]
                    for push in [p for p in waiting if p.at <= at]:
                        out.delays.append((push, at - push.at, number))
                        waiting.remove(push)
                print_round(done, len(out.first))
                if out.covered_in is None and len(out.first) == len(gh.repos):
                    out.covered_in = number
                if out.covered_in is not None and number >= out.covered_in + args.after:
                    break
        out.stored = await readers.run(
            lambda db: int(db.execute("SELECT count(*) FROM deliveries").fetchone()[0])
        )
    finally:
        writer.close()
        readers.close()
    return out


def print_round(r: Round, covered: int) -> None:
    if r.report is None:
        print(f"{r.number:>5} {(r.start - START) / 3600:>6.1f}  error: {r.error}", flush=True)
        return
    rep = r.report
    stopped = {SHARE_SPENT: "share spent", TIME_UP: "time up", None: "done"}.get(
        rep.stopped, str(rep.stopped)
    )
    counted = rep.requests - rep.not_modified - rep.graphql
    print(
        f"{r.number:>5} {(r.start - START) / 3600:>6.1f} {rep.listed:>7} {len(rep.repos):>7}"
        f" {covered:>7} {rep.backlog:>7} {r.pushes:>6} {counted:>7}"
        f" {rep.not_modified:>6}  {stopped:<11} {r.wall:>6.1f} {r.cpu:>6.1f}",
        flush=True,
    )


# -- the figures -----------------------------------------------------------------------


def first_round_after(starts: list[float], at: float) -> int | None:
    """The number of the first round that started at or after ``at`` (None: none ran)."""
    for number, start in enumerate(starts, start=1):
        if start >= at:
            return number
    return None


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarise(args: argparse.Namespace, gh: GitHubStandIn, out: Outcome, real: float) -> bool:
    rounds = [r for r in out.rounds if r.report is not None]
    cap = math.floor(args.share * args.limit)
    n = len(gh.repos)
    rows: list[tuple[str, str, str, bool | None]] = []

    worst = max(gh.windows, key=lambda w: w.counted, default=Window(0))
    rows.append(
        (
            "windows: most answers counted in one",
            f"{worst.counted} of {args.limit} ({len(gh.windows)} windows,"
            f" up to {max((w.free for w in gh.windows), default=0)} free 304s in one)",
            f"<= {cap} (share x limit)",
            worst.counted <= cap,
        )
    )
    rows.append(("rate-limit refusals (403)", str(gh.refused), "0", gh.refused == 0))
    most = max((w.graphql for w in gh.windows), default=0)
    rows.append(
        (
            "GraphQL queries in one window (most)",
            f"{most} ({sum(w.graphql for w in gh.windows)} in all; workflow files"
            + (")" if args.graphql else ", GraphQL off: read by REST)"),
            "<= 5000 (GitHub's GraphQL limit)",
            most <= 5000,
        )
    )
    lost = [r for r in out.rounds if r.report is None or (r.report.listed == 0)]
    rows.append(
        (
            "rounds that scanned nothing",
            f"{len(lost)} of {len(out.rounds)}"
            + (f" (first: round {lost[0].number})" if lost else ""),
            "(information)",
            None,
        )
    )
    if out.covered_in is not None:
        hours = (max(out.first.values()) - START) / 3600
        figure = f"{hours:.1f} virtual h (round {out.covered_in})"
    else:
        hours = math.inf
        figure = f"not reached: {len(out.first)} of {n} scanned in {len(out.rounds)} rounds"
    rows.append(
        (
            "every repository scanned once",
            figure,
            f"<= {COVERAGE_HOURS:.0f} h",
            hours <= COVERAGE_HOURS,
        )
    )

    starts = [r.start for r in out.rounds]
    resolved = {id(p): (delay, number) for p, delay, number in out.delays}
    measured = on_time = 0
    for push in gh.applied:
        due = first_round_after(starts, push.at)
        found = resolved.get(id(push))
        if found is None and due is None:
            continue  # made after the last round began, and not scanned since
        measured += 1
        if found is not None and (due is None or found[1] <= due):
            on_time += 1
    delays = [d for _, d, _ in out.delays]
    within = sum(1 for d in delays if d <= args.interval)
    share = 100 * on_time / measured if measured else 100.0
    rows.append(
        (
            "pushes scanned by the next round",
            f"{share:.1f} % ({on_time} of {measured})",
            "all",
            on_time == measured and measured > 0,
        )
    )
    rows.append(
        (
            "  of which within one interval",
            f"{100 * within / len(delays) if delays else 0:.1f} % ({within} of {len(delays)});"
            f" median {median(delays):.0f} s, worst {max(delays, default=0):.0f} s"
            f" ({max(delays, default=0) / args.interval:.2f} intervals)",
            "(information)",
            None,
        )
    )
    covered = out.covered_in or len(out.rounds) + 1
    before = [r.report for r in rounds if r.report is not None and r.number <= covered]
    after = [r.report for r in rounds if r.report is not None and r.number > covered]
    for label, group in (("until covered", before), ("after it", after)):
        if group:
            counted = [float(r.requests - r.not_modified - r.graphql) for r in group]
            free = [float(r.not_modified) for r in group]
            rows.append(
                (
                    f"requests per round, {label} (median)",
                    f"{median(counted):.0f} counted + {median(free):.0f} free 304s"
                    f" ({len(group)} rounds)",
                    "(information)",
                    None,
                )
            )
    rows.append(
        (
            "real s per round: pulsehook CPU / wall",
            f"median {median([r.cpu for r in rounds]):.2f} s /"
            f" {median([r.wall for r in rounds]):.2f} s,"
            f" max {max((r.cpu for r in rounds), default=0):.2f} s /"
            f" {max((r.wall for r in rounds), default=0):.2f} s",
            "(information)",
            None,
        )
    )
    findings = sum(r.report.deliveries for r in rounds if r.report is not None)
    rows.append(
        (
            "deliveries found / stored (new guids)",
            f"{findings} / {out.stored}",
            "(information)",
            None,
        )
    )
    rows.append(
        (
            "client waits (rate limit, retries)",
            f"{gh.clock.waits} ({gh.clock.waited:.0f} virtual s)",
            "(information)",
            None,
        )
    )

    # The baseline: every repository read each round, as its first scan read it.
    pages = math.ceil(n / LISTING_PAGE)
    if out.naive:
        mean = sum(out.naive.values()) / len(out.naive)
        exact = len(out.naive) == n
        per_pass = pages + (sum(out.naive.values()) if exact else round(mean * n))
        rows.append(
            (
                "naive: requests to read every repository",
                f"{per_pass} ({pages} listing + {mean:.2f} a repository"
                f"{'' if exact else ', extrapolated'}), every round alike",
                "(baseline)",
                None,
            )
        )
        rows.append(
            (
                "naive: hours to cover, whole limit / share",
                f"{math.ceil(per_pass / args.limit)} h / {math.ceil(per_pass / cap)} h,"
                " and as long again for every later pass",
                "(baseline)",
                None,
            )
        )
        rows.append(
            (
                "naive: 403 refusals per hourly round",
                f"{max(0, per_pass - args.limit)} (reads {args.limit} of {per_pass}; a push"
                f" waits up to {math.ceil(per_pass / args.limit)} h)",
                "(baseline)",
                None,
            )
        )

    print()
    width = max(len(r[0]) for r in rows)
    fig = max(len(r[1]) for r in rows)
    print(f"{'what':<{width}}  {'figure':<{fig}}  {'target':<22}  verdict")
    for what, figure, target, ok in rows:
        verdict = "" if ok is None else "PASS" if ok else "FAIL"
        print(f"{what:<{width}}  {figure:<{fig}}  {target:<22}  {verdict}")
    took = f"real time {real:.0f} s"
    if out.out_of_time:
        took += f" (stopped at --seconds {args.seconds:.0f})"
    print(took)
    met = all(ok for *_, ok in rows if ok is not None)
    print(f"targets: {'all met' if met else 'MISSED'}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 repositories, limit 1,000")
    parser.add_argument("--repos", type=int, default=None, help="repositories (10,000)")
    parser.add_argument("--limit", type=int, default=None, help="rate limit per window (5,000)")
    parser.add_argument("--share", type=float, default=0.75, help="the scan's share of it")
    parser.add_argument("--interval", type=int, default=3600, help="virtual s between rounds")
    parser.add_argument("--cycle-hours", type=float, default=24.0, help="Pace.cycle")
    parser.add_argument("--pushes", type=int, default=None, help="pushes per virtual hour (50)")
    parser.add_argument("--latency", type=float, default=0.25, help="virtual s per request")
    parser.add_argument("--after", type=int, default=3, help="rounds after full coverage")
    parser.add_argument("--max-rounds", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=None, help="real time cap (900)")
    parser.add_argument(
        "--phase",
        type=float,
        default=0.9,
        help="virtual s past a whole second at which rounds start (0.9; see above)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--rest-files",
        dest="graphql",
        action="store_false",
        help="GraphQL answers 404: workflow files are read through REST (the fallback)",
    )
    args = parser.parse_args()
    quick = {"repos": 2000, "limit": 1000, "pushes": 10, "seconds": 110.0}
    full = {"repos": 10_000, "limit": 5000, "pushes": 50, "seconds": 900.0}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    began = time.perf_counter()
    clock = VirtualClock(START + args.phase)
    gh = GitHubStandIn(
        organisation(args.repos, random.Random(args.seed)),
        clock,
        args.limit,
        args.latency,
        args.seed + 2,
        graphql=args.graphql,
    )
    print(
        f"scan of {args.repos} repositories: limit {args.limit} per {WINDOW} s, share"
        f" {args.share} ({math.floor(args.share * args.limit)}), interval {args.interval} s,"
        f" {args.pushes} pushes an hour, {args.latency} s a request (virtual)"
    )
    print(
        "round  hour  listed scanned covered backlog pushes counted   304  stopped"
        "       wall s  cpu s"
    )
    with tempfile.TemporaryDirectory() as tmp, Served(gh.app()) as served:
        gh.url = served.url
        out = asyncio.run(simulate(args, gh, served, Path(tmp) / "pulsehook.db"))
    return 0 if summarise(args, gh, out, time.perf_counter() - began) else 1


if __name__ == "__main__":
    sys.exit(main())
