"""A loopback stand-in for the parts of GitHub's REST API that scans and recovery read.

Objects are GitHub's own examples (tests/payloads/, from the documented webhook
payloads, whose objects match the REST ones) with ids, names and times adapted.
Behaviour that matters is real: page-number Links for repositories, cursor Links for
hook deliveries, ETags with 304s, Dependabot's 403 when disabled, rate-limit answers
(scripted), and redelivery, which records what was asked and appends the new attempt
(failed for the guids in ``failing``, none for those in ``pending``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .conftest import live, payload

Json = dict[str, Any]

TOKEN = "ghp_ScanT0kenNeverShownAnywhere"
ORG = "acme"
REPO_PAGE = 2  # repositories per page, whatever per_page asks: the org spans 2 pages
DELIVERY_PAGE = 3  # deliveries per page: the hook spans 4 cursor pages
CODECOV = "87.50% (+0.15%) compared to abc1234"
DISABLED = "Dependabot alerts are disabled for this repository."
NOT_FOUND = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
API = "https://api.github.com"


def sha(seed: str) -> str:
    return hashlib.sha1(seed.encode(), usedforsecurity=False).hexdigest()


def retarget(value: Any, old: str, new: str) -> Any:
    """Deep copy of an example with its repository's name replaced in every string."""
    if isinstance(value, dict):
        return {k: retarget(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [retarget(v, old, new) for v in value]
    return value.replace(old, new) if isinstance(value, str) else value


def user(login: str, uid: int, kind: str = "User") -> Json:
    return {
        "login": login,
        "id": uid,
        "node_id": f"U_{uid}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
        "url": f"{API}/users/{login}",
        "html_url": f"https://github.com/{login}",
        "type": kind,
        "site_admin": False,
    }


BOT = user("dependabot[bot]", 49699333, "Bot")


def repository(rid: int, full_name: str, default: str, **kw: Any) -> Json:
    template = payload("dependabot_alert.created")["repository"]
    repo: Json = retarget(template, "wolfy1339/pika-pack", full_name)
    owner = full_name.partition("/")[0]
    kind = "Organization" if owner == ORG else "User"
    repo |= {"id": rid, "node_id": f"R_{rid}", "name": full_name.partition("/")[2]}
    repo |= {"full_name": full_name, "owner": user(owner, 9000 + rid % 100, kind)}
    repo |= {"default_branch": default, "archived": False, "private": False, **kw}
    return repo


def run(
    repo: Json, rid: int, name: str, branch: str, status: str, conclusion: str | None, at: str
) -> Json:
    template = payload("workflow_run.completed")["workflow_run"]
    item: Json = retarget(template, "octo-org/octo-repo", repo["full_name"])
    item = retarget(item, "289782451", str(rid))
    head = sha(f"{repo['full_name']}:{branch}")
    item |= {"id": rid, "name": name, "display_title": name, "head_branch": branch}
    item |= {"status": status, "conclusion": conclusion, "event": "push", "head_sha": head}
    item |= {"created_at": at, "run_started_at": at, "updated_at": at, "run_attempt": 1}
    return item


def alert(repo: Json, number: int, severity: str, package: str, state: str, at: str) -> Json:
    template = payload("dependabot_alert.created")["alert"]
    item: Json = retarget(template, "wolfy1339/pika-pack", repo["full_name"])
    item = retarget(item, "/alerts/20", f"/alerts/{number}")
    item = retarget(item, "/dependabot/20", f"/dependabot/{number}")
    item |= {"number": number, "state": state, "created_at": "2026-02-20T08:00:00Z"}
    item |= {"updated_at": at, "fixed_at": at if state == "fixed" else None}
    pkg = {"ecosystem": "pip", "name": package}
    item["dependency"] |= {"package": pkg, "manifest_path": "requirements.txt"}
    item["security_vulnerability"] |= {"package": pkg, "severity": severity}
    item["security_advisory"]["severity"] = severity
    for vulnerability in item["security_advisory"]["vulnerabilities"]:
        vulnerability |= {"package": pkg, "severity": severity}
    return item


def commit(repo: Json, seed: str, message: str, at: str, who: Json | None, parent: str) -> Json:
    name = who["login"] if who else "Legacy Importer"
    person = {"name": name, "email": f"{name}@users.noreply.github.com", "date": at}
    full = repo["full_name"]
    return {
        "sha": sha(seed),
        "node_id": f"C_{seed}",
        "commit": {
            "author": person,
            "committer": person,
            "message": message,
            "tree": {"sha": sha(f"tree{seed}"), "url": f"{API}/repos/{full}/git/trees/t"},
            "url": f"{API}/repos/{full}/git/commits/{sha(seed)}",
            "comment_count": 0,
            "verification": {"verified": False, "reason": "unsigned", "signature": None},
        },
        "url": f"{API}/repos/{full}/commits/{sha(seed)}",
        "html_url": f"https://github.com/{full}/commit/{sha(seed)}",
        "author": who,
        "committer": who,
        "parents": [{"sha": parent, "url": f"{API}/repos/{full}/commits/{parent}"}],
    }


def pull(repo: Json, number: int, title: str, who: Json, at: str) -> Json:
    template = payload("pull_request.opened")["pull_request"]
    item: Json = retarget(template, "Codertocat/Hello-World", repo["full_name"])
    item = retarget(item, "/pull/2", f"/pull/{number}")
    item = retarget(item, "/pulls/2", f"/pulls/{number}")
    # The list endpoint answers "pull-request-simple": no merge details or counts.
    for key in (
        "merged",
        "mergeable",
        "rebaseable",
        "mergeable_state",
        "merged_by",
        "comments",
        "review_comments",
        "maintainer_can_modify",
        "commits",
        "additions",
        "deletions",
        "changed_files",
    ):
        item.pop(key, None)
    item |= {"number": number, "title": title, "user": who, "state": "open"}
    item |= {"created_at": "2026-02-25T04:00:00Z", "updated_at": at}
    return item


def closed(pr: Json, *, merged: bool = True) -> Json:
    """``pr`` closed (merged, by default) at its ``updated_at``."""
    at = pr["updated_at"]
    return pr | {"state": "closed", "closed_at": at, "merged_at": at if merged else None}


def status(sid: int, context: str, state: str, description: str, at: str) -> Json:
    return {
        "url": f"{API}/repos/{ORG}/api/statuses/{sid}",
        "avatar_url": "https://avatars.githubusercontent.com/in/254?v=4",
        "id": sid,
        "node_id": f"SC_{sid}",
        "state": state,
        "description": description,
        "target_url": f"https://app.codecov.io/gh/{ORG}/api/commit/{sid}",
        "context": context,
        "created_at": at,
        "updated_at": at,
        "creator": user("codecov[bot]", 22429695, "Bot"),
    }


@dataclass
class Site:
    """One repository's answers; None means the endpoint answers 404 (or 403 for alerts)."""

    repo: Json
    runs: list[Json] = field(default_factory=list)
    alerts: list[Json] | None = field(default_factory=list)
    alerts_status: int = 403
    readme: bool = True
    profile: Json | None = None
    commits: list[Json] = field(default_factory=list)
    pulls: list[Json] = field(default_factory=list)
    statuses: list[Json] = field(default_factory=list)  # newest first, as GitHub lists them
    sbom: Json | None = None  # the dependency graph's SPDX answer; None: graph disabled (404)
    workflows: list[Json] = field(default_factory=list)  # the Actions API's workflow objects
    files: dict[str, str] = field(default_factory=dict)  # workflow file path -> its text

    def blob(self, text: str) -> str:
        """The git blob sha GitHub gives a file of this text."""
        data = text.encode()
        return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def workflow(repo: Json, wid: int, name: str, file: str, state: str = "active") -> Json:
    """A workflow as ``GET /repos/{owner}/{repo}/actions/workflows`` lists it
    (tests/payloads/rest/actions_workflows.json), for ``file`` under .github/workflows/."""
    found: Json = retarget(
        payload("rest/actions_workflows")["workflows"][0], "octo-org/octo-repo", repo["full_name"]
    )
    path = f".github/workflows/{file}"
    found.update(
        id=wid,
        name=name,
        path=path,
        state=state,
        html_url=f"https://github.com/{repo['full_name']}/blob/main/{path}",
    )
    return found


def workflow_file(name: str) -> str:
    """A workflow file of tests/payloads/workflows/."""
    return (Path(__file__).parent / "payloads" / "workflows" / name).read_text()


def sbom(repo: Json) -> Json:
    """GitHub's SBOM answer (tests/payloads/rest/dependency_graph.sbom.json) for ``repo``."""
    found: Json = retarget(
        payload("rest/dependency_graph.sbom"), "octo-org/octo-repo", repo["full_name"]
    )
    return found


def community(readme: bool, docs: str | None) -> Json:
    file = {"url": f"{API}/repos/x/y/contents/README.md", "html_url": "https://github.com/x"}
    return {
        "health_percentage": 85 if readme else 28,
        "description": "Service",
        "documentation": docs,
        "files": {
            "code_of_conduct": None,
            "code_of_conduct_file": None,
            "contributing": None,
            "issue_template": None,
            "pull_request_template": None,
            "license": None,
            "readme": file if readme else None,
        },
        "updated_at": "2026-02-27T10:00:00Z",
        "content_reports_enabled": False,
    }


def sites() -> dict[str, Site]:
    api = repository(
        70001,
        "acme/api",
        "main",
        updated_at="2026-02-27T10:00:00Z",
        pushed_at="2026-03-01T09:30:00Z",
    )
    web = repository(
        70002,
        "acme/web",
        "develop",
        private=True,
        updated_at="2026-02-20T10:00:00Z",
        pushed_at="2026-02-28T16:00:00Z",
    )
    legacy = repository(
        70003,
        "acme/legacy",
        "master",
        archived=True,
        updated_at="2024-05-01T10:00:00Z",
        pushed_at="2023-11-02T10:00:00Z",
    )
    notes = repository(
        80001,
        "solo/notes",
        "main",
        updated_at="2026-01-01T00:00:00Z",
        pushed_at="2026-01-01T00:00:00Z",
    )
    alice, carol = user("alice", 501), user("carol", 503)
    api_commits = [
        commit(
            api, "a3", "Bump requests from 2.31.0 to 2.32.3", "2026-03-01T09:30:00Z", BOT, sha("a2")
        ),
        commit(api, "a2", "Add retry on 503", "2026-02-28T15:00:00Z", alice, sha("a1")),
        commit(api, "a1", "Fix the health check", "2026-02-27T11:00:00Z", alice, sha("a0")),
    ]
    return {
        "acme/api": Site(
            api,
            runs=[
                run(api, 9001, "CI", "main", "completed", "failure", "2026-03-01T09:40:00Z"),
                run(api, 9002, "Docs", "main", "completed", "success", "2026-03-01T09:35:00Z"),
                run(api, 9003, "CI", "feature/x", "completed", "failure", "2026-03-01T08:00:00Z"),
                run(api, 9004, "Nightly", "main", "in_progress", None, "2026-03-01T09:45:00Z"),
            ],
            alerts=[
                alert(api, 3, "critical", "requests", "open", "2026-03-01T07:00:00Z"),
                alert(api, 2, "moderate", "jinja2", "fixed", "2026-02-28T07:00:00Z"),
            ],
            profile=community(True, "https://acme.example/api-docs"),
            sbom=sbom(api),
            commits=api_commits,
            pulls=[
                pull(api, 12, "Bump urllib3 from 2.0.7 to 2.2.2", BOT, "2026-03-01T06:00:00Z"),
                pull(api, 11, "Add rate limiting", alice, "2026-02-28T12:00:00Z"),
                closed(pull(api, 10, "Bump idna from 3.4 to 3.7", BOT, "2026-02-27T10:00:00Z")),
            ],
            statuses=[
                status(505, "ci/jenkins", "success", "Build finished", "2026-03-01T09:50:00Z"),
                status(
                    504,
                    "codecov/patch",
                    "success",
                    "100.00% of diff hit (target 87.35%)",
                    "2026-03-01T09:46:00Z",
                ),
                status(503, "codecov/project", "success", CODECOV, "2026-03-01T09:45:00Z"),
                status(
                    499,
                    "codecov/project",
                    "success",
                    "87.35% (-0.02%) compared to 0fedcba",
                    "2026-02-28T15:10:00Z",
                ),
            ],
        ),
        "acme/web": Site(
            web,
            runs=[
                run(web, 9101, "Build", "develop", "completed", "success", "2026-02-28T16:05:00Z")
            ],
            alerts=None,
            readme=False,
            profile=community(False, None),
            commits=[
                commit(web, "w2", "Polish the footer", "2026-02-28T16:00:00Z", carol, sha("w1")),
                commit(web, "w1", "Start the site", "2026-02-27T16:00:00Z", carol, sha("w0")),
            ],
        ),
        "acme/legacy": Site(
            legacy,
            commits=[commit(legacy, "l1", "Final import", "2023-11-02T10:00:00Z", None, sha("l0"))],
        ),
        "solo/notes": Site(notes, alerts=None, alerts_status=404, readme=False),
    }


def attempt(did: int, guid: str, at: str, code: int, redelivery: bool = False) -> Json:
    return {
        "id": did,
        "guid": guid,
        "delivered_at": at,
        "redelivery": redelivery,
        "duration": 0.27,
        "status": "OK" if 200 <= code < 300 else f"Invalid HTTP Response: {code}",
        "status_code": code,
        "event": "push",
        "action": None,
        "installation_id": None,
        "repository_id": 70001,
        "throttled_at": None,
    }


def hook_deliveries() -> dict[str, list[Json]]:
    """Newest first, as GitHub lists them. Keyed by the deliveries path."""
    return {
        "/repos/acme/api/hooks/77/deliveries": [
            attempt(1010, "g-ok", "2026-03-02T10:00:00Z", 200),
            attempt(1009, "g-missed", "2026-03-02T09:00:00Z", 502),
            attempt(1008, "g-known", "2026-03-02T08:00:00Z", 500),
            attempt(1007, "g-recovered", "2026-03-02T07:30:00Z", 200, redelivery=True),
            attempt(1006, "g-recovered", "2026-03-02T07:00:00Z", 503),
            attempt(1005, "g-twice", "2026-03-02T06:30:00Z", 502, redelivery=True),
            attempt(1004, "g-twice", "2026-03-02T06:00:00Z", 504),
            attempt(1003, "g-old", "2026-02-27T06:00:00Z", 500),
            attempt(1002, "g-older", "2026-02-26T06:00:00Z", 500),
            attempt(1001, "g-oldest", "2026-02-25T06:00:00Z", 500),
        ],
        "/orgs/acme/hooks/88/deliveries": [
            attempt(2002, "g-org-missed", "2026-03-02T11:00:00Z", 500),
            attempt(2001, "g-org-ok", "2026-03-02T10:30:00Z", 202),
        ],
    }


@dataclass
class FakeGitHub:
    url: str = ""
    sites: dict[str, Site] = field(default_factory=sites)
    deliveries: dict[str, list[Json]] = field(default_factory=hook_deliveries)
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # method, path?query, status
    auth: list[str] = field(default_factory=list)  # Authorization headers received
    headers: dict[str, str] = field(default_factory=dict)  # of the last request
    limits: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    spent_until: int | None = None  # the next 200 says the budget is spent until then
    redelivered: list[str] = field(default_factory=list)  # delivery paths POSTed
    refuse: set[int] = field(default_factory=set)  # delivery ids whose redelivery is refused
    failing: set[str] = field(default_factory=set)  # guids whose redelivered attempts fail (502)
    pending: set[str] = field(default_factory=set)  # guids accepted for redelivery, never attempted
    broken: set[str] = field(default_factory=set)  # paths that answer 500
    now: str = "2026-03-02T12:00:00Z"  # delivered_at of the attempts redelivery adds
    lock: threading.Lock = field(default_factory=threading.Lock)
    # GitHub's primary rate limit, enforced when ``rate_limit`` is set: every answer
    # but a 304 counts; past the limit, 403 until the window (from its first request)
    # is over. ``epoch`` is the stand-in's clock; ``tick`` runs on every request.
    rate_limit: int | None = None
    rate_window: int = 3600
    rate_used: int = 0
    rate_reset: int | None = None
    epoch: Callable[[], float] | None = None
    tick: Callable[[], None] | None = None
    charged: list[int] = field(default_factory=list)  # per window: answers that counted
    # GitHub's GraphQL endpoint (workflow directories and blobs), a rate limit of its
    # own; False: it answers 404, as a proxy that passes REST alone would.
    graphql: bool = True
    blobs_read: list[str] = field(default_factory=list)  # oids whose text GraphQL gave

    def limit(
        self,
        count: int = 1,
        *,
        reset: int | None = None,
        retry_after: int | None = None,
        secondary: bool = False,
        status: int = 403,
    ) -> None:
        """The next ``count`` requests answer a rate limit (primary unless ``secondary``)."""
        headers = {"x-ratelimit-limit": "5000", "x-ratelimit-resource": "core"}
        headers["x-ratelimit-remaining"] = "3" if secondary else "0"
        if reset is not None:
            headers["x-ratelimit-reset"] = str(reset)
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        message = (
            "You have exceeded a secondary rate limit. Please wait a few minutes before you"
            " try again."
            if secondary
            else "API rate limit exceeded for user ID 1."
        )
        with self.lock:
            self.limits.extend([(status, headers, message)] * count)

    def files_read(self) -> list[str]:
        """The blob shas of workflow files read, through GraphQL or REST."""
        with self.lock:
            rest = [p.rsplit("/", 1)[-1] for _, p, _ in self.calls if "/git/blobs/" in p]
            return self.blobs_read + rest

    def count(self, status: int) -> int:
        with self.lock:
            return sum(1 for _, _, s in self.calls if s == status)

    def statuses(self) -> Counter[int]:
        with self.lock:
            return Counter(s for _, _, s in self.calls)

    def paths(self) -> list[str]:
        with self.lock:
            return [p for _, p, _ in self.calls]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            if self.tick is not None:
                self.tick()
            if request.url.path == "/graphql":
                rsp = self.graphql_answer(body)
            else:
                rsp = self.metered(request, body)
            query = f"?{request.url.query}" if request.url.query else ""
            self.calls.append((request.method, request.url.path + query, rsp.status_code))
            return rsp

    def graphql_answer(self, body: bytes) -> Response:
        """The two queries pulsehook asks: a workflow directory, and blobs by oid."""
        headers = {"x-ratelimit-resource": "graphql", "x-ratelimit-remaining": "4999"}
        if not self.graphql:
            return JSONResponse(NOT_FOUND, status_code=404, headers=headers)
        request = json.loads(body)
        names = request.get("variables") or {}
        site = self.sites.get(f"{names.get('owner')}/{names.get('name')}")
        if site is None:
            data: Json = {"repository": None}
            errors = [{"type": "NOT_FOUND", "message": "Could not resolve to a Repository"}]
            return JSONResponse({"data": data, "errors": errors}, headers=headers)
        if "HEAD:.github/workflows" in request["query"]:
            entries = [
                {"name": path.rsplit("/", 1)[-1], "type": "blob", "oid": site.blob(text)}
                for path, text in sorted(site.files.items())
            ]
            tree = {"entries": entries} if entries else None
            return JSONResponse({"data": {"repository": {"object": tree}}}, headers=headers)
        texts = {site.blob(t): t for t in site.files.values()}
        found: Json = {}
        for alias, oid in names.items():
            if alias in ("owner", "name"):
                continue
            text = texts.get(oid)
            self.blobs_read.append(str(oid))
            found[alias] = (
                None
                if text is None
                else {
                    "text": text,
                    "isBinary": False,
                    "isTruncated": False,
                    "byteSize": len(text.encode()),
                }
            )
        return JSONResponse({"data": {"repository": found}}, headers=headers)

    def metered(self, request: Request, body: bytes) -> Response:
        if self.rate_limit is None:
            return self.answer(request, body)
        now = int(self.epoch() if self.epoch is not None else 0)
        if self.rate_reset is None or now >= self.rate_reset:
            self.rate_reset, self.rate_used = now + self.rate_window, 0
            self.charged.append(0)
        refused = self.rate_used >= self.rate_limit
        if refused:
            rsp: Response = JSONResponse(
                {"message": "API rate limit exceeded for user ID 1."}, status_code=403
            )
        else:
            rsp = self.answer(request, body)
        if rsp.status_code != 304 and not refused:
            self.rate_used += 1
            self.charged[-1] += 1
        rsp.headers.update(
            {
                "x-ratelimit-limit": str(self.rate_limit),
                "x-ratelimit-remaining": str(max(0, self.rate_limit - self.rate_used)),
                "x-ratelimit-reset": str(self.rate_reset),
                "x-ratelimit-used": str(self.rate_used),
                "x-ratelimit-resource": "core",
            }
        )
        return rsp

    def answer(self, request: Request, body: bytes) -> Response:
        self.headers = dict(request.headers)
        auth = request.headers.get("authorization")
        if auth is not None:
            self.auth.append(auth)
            if auth != f"Bearer {TOKEN}":  # echoes it, so a client quoting answers leaks it
                return JSONResponse({"message": f"Bad credentials ({auth})"}, status_code=401)
        if self.limits:
            code, headers, message = self.limits.pop(0)
            return JSONResponse({"message": message}, status_code=code, headers=headers)
        if request.url.path in self.broken:
            return JSONResponse({"message": "Server Error"}, status_code=500)
        found = self.route(request)
        if isinstance(found, Response):
            return found
        data, headers = found
        rendered = JSONResponse(data)
        etag = f'W/"{sha(bytes(rendered.body).decode() + headers.get("link", ""))}"'
        headers = {"etag": etag, "x-ratelimit-remaining": "4000", **headers}
        if self.spent_until is not None:
            headers |= {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(self.spent_until)}
            self.spent_until = None
        if request.headers.get("if-none-match") == etag:
            # No Link, no body; the rate limit as it stands (a 304 does not count).
            kept = {k: v for k, v in headers.items() if k.startswith("x-ratelimit-")}
            return Response(status_code=304, headers={"etag": etag, **kept})
        return JSONResponse(data, headers=headers)

    def route(self, request: Request) -> Response | tuple[Any, dict[str, str]]:
        path, q = request.url.path, request.query_params
        if request.method == "POST":
            return self.redeliver(path)
        if m := re.fullmatch(r"/(orgs|users)/([^/]+)/repos", path):
            owner = m.group(2)
            if (m.group(1) == "orgs") != (owner == ORG):
                return JSONResponse(NOT_FOUND, status_code=404)
            repos = [s.repo for name, s in self.sites.items() if name.startswith(f"{owner}/")]
            if q.get("sort") == "pushed":
                repos.sort(key=lambda r: str(r["pushed_at"]), reverse=q.get("direction") != "asc")
            return self.numbered(request, repos)
        if path in self.deliveries:
            return self.cursor(request, self.deliveries[path])
        if path == "/elsewhere":
            return [], {"link": '<https://evil.invalid/steal?page=2>; rel="next"'}
        m = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path)
        site = self.sites.get(m.group(1)) if m else None
        if m is None or site is None:
            return JSONResponse(NOT_FOUND, status_code=404)
        rest = m.group(2) or ""
        default = site.repo["default_branch"]
        answers: dict[str, Callable[[], Any]] = {
            "": lambda: site.repo,
            "/actions/runs": lambda: self.runs(site, q.get("branch"), int(q["per_page"])),
            "/readme": lambda: (
                {"name": "README.md", "path": "README.md", "type": "file"} if site.readme else None
            ),
            "/community/profile": lambda: site.profile,
            "/dependency-graph/sbom": lambda: site.sbom,
            "/commits": lambda: site.commits if q.get("sha") in (None, default) else [],
            "/pulls": lambda: sorted(
                (p for p in site.pulls if q.get("state") in (None, "all", p["state"])),
                key=lambda p: str(p["updated_at" if q.get("sort") == "updated" else "created_at"]),
                reverse=q.get("direction") == "desc",
            ),
            f"/commits/{default}/statuses": lambda: site.statuses,
        }
        if site.commits:
            answers[f"/commits/{site.commits[0]['sha']}/statuses"] = lambda: site.statuses
        answers["/actions/workflows"] = lambda: {
            "total_count": len(site.workflows),
            "workflows": site.workflows,
        }
        if site.files:
            answers["/contents/.github/workflows"] = lambda: [
                {
                    "type": "file",
                    "name": path.rsplit("/", 1)[-1],
                    "path": path,
                    "sha": site.blob(text),
                    "size": len(text.encode()),
                }
                for path, text in sorted(site.files.items())
            ]
        if m := re.fullmatch(r"/git/blobs/([0-9a-f]{40})", rest):
            text = next((t for t in site.files.values() if site.blob(t) == m.group(1)), None)
            if text is None:
                return JSONResponse(NOT_FOUND, status_code=404)
            encoded = base64.encodebytes(text.encode()).decode()
            return {
                "sha": m.group(1),
                "size": len(text.encode()),
                "encoding": "base64",
                "content": encoded,
            }, {}
        if rest == "/dependabot/alerts":
            if site.alerts is None:
                message = DISABLED if site.alerts_status == 403 else "Not Found"
                return JSONResponse({"message": message}, status_code=site.alerts_status)
            states = q.get("state", "").split(",") if q.get("state") else None
            found = [a for a in site.alerts if states is None or a["state"] in states]
            if q.get("sort") == "updated":
                found.sort(key=lambda a: a["updated_at"], reverse=True)
            return found, {}
        data = answers[rest]() if rest in answers else None
        return (data, {}) if data is not None else JSONResponse(NOT_FOUND, status_code=404)

    @staticmethod
    def runs(site: Site, branch: str | None, per_page: int) -> Json:
        runs = [r for r in site.runs if branch in (None, r["head_branch"])]
        return {"total_count": len(runs), "workflow_runs": runs[:per_page]}

    def numbered(self, request: Request, items: list[Json]) -> tuple[Any, dict[str, str]]:
        page = int(request.query_params.get("page", "1"))
        last = max(1, -(-len(items) // REPO_PAGE))
        query = {k: v for k, v in request.query_params.items() if k != "page"}
        base = f"{self.url}{request.url.path}"
        links = []
        if page < last:
            links.append(f'<{base}?{urlencode({**query, "page": page + 1})}>; rel="next"')
            links.append(f'<{base}?{urlencode({**query, "page": last})}>; rel="last"')
        if page > 1:
            links.append(f'<{base}?{urlencode({**query, "page": page - 1})}>; rel="prev"')
        chunk = items[(page - 1) * REPO_PAGE : page * REPO_PAGE]
        return chunk, ({"link": ", ".join(links)} if links else {})

    def cursor(self, request: Request, items: list[Json]) -> tuple[Any, dict[str, str]]:
        cursor = request.query_params.get("cursor")
        start = next((i for i, d in enumerate(items) if f"v1_{d['id']}" == cursor), 0)
        chunk = items[start : start + DELIVERY_PAGE]
        rest = items[start + DELIVERY_PAGE :]
        if not rest:
            return chunk, {}
        query = urlencode(
            {
                "per_page": request.query_params.get("per_page", "30"),
                "cursor": f"v1_{rest[0]['id']}",
            }
        )
        return chunk, {"link": f'<{self.url}{request.url.path}?{query}>; rel="next"'}

    def redeliver(self, path: str) -> Response:
        m = re.fullmatch(r"(/.+/deliveries)/(\d+)/attempts", path)
        items = self.deliveries.get(m.group(1), []) if m else []
        did = int(m.group(2)) if m else -1
        original = next((d for d in items if d["id"] == did), None)
        if m is None or original is None:
            return JSONResponse(NOT_FOUND, status_code=404)
        self.redelivered.append(path)
        if did in self.refuse:
            return JSONResponse({"message": "Validation Failed"}, status_code=422)
        guid = original["guid"]
        if guid not in self.pending:
            new_id = max(d["id"] for d in items) + 1
            code = 502 if guid in self.failing else 200
            items.insert(0, attempt(new_id, guid, self.now, code, redelivery=True))
        return JSONResponse({}, status_code=202)


@contextmanager
def standin() -> Iterator[FakeGitHub]:
    gh = FakeGitHub()
    app = Starlette(routes=[Route("/{path:path}", gh.handle, methods=["GET", "POST"])])
    with live(app) as server:
        gh.url = server.url
        yield gh
