"""Backfill: read repositories through the REST API and store what webhooks would have said.

Each finding becomes a synthetic delivery shaped like the webhook payload the
normalizers already read, with a guid derived from what it describes, so a re-scan
of an unchanged repository stores nothing new (the store ignores a known guid).

A round spends at most a share of GitHub's hourly rate limit. It lists the
repositories (most recently pushed first), then scans, in this order, those pushed
to since their last scan, those never scanned, and those whose last scan is older
than the cycle (a day by default), until the share or the round's time is spent;
the rest wait for the next round. Every request carries the ETag its last answer
had, so an unchanged repository is rescanned on 304s, which cost no rate limit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

from ..clock import iso, parse_iso
from ..store.deliveries import Delivery
from ..store.scans import Memory, Scanned
from . import sbom, workflow_files
from .api import Failure, GitHubClient, GitHubError, RateLimited, failure
from .budget import Share, ShareSpent
from .response import Response
from .scan_payloads import CODECOV_PROJECT, Json, push_delivery, run_delivery, status_delivery

Sink = Callable[[list[Delivery]], Awaitable[None]]
Progress = Callable[[int, int, str], None]

DEPENDABOT = "dependabot[bot]"
PAGE = 100
RECENT_PULLS = {"state": "all", "sort": "updated", "direction": "desc", "per_page": PAGE}
OPEN_PULLS = {"state": "open", "per_page": PAGE}
RECENT_ALERTS = {"sort": "updated", "direction": "desc", "per_page": PAGE}
OPEN_ALERTS = {"state": "open", "per_page": PAGE}
LISTING = {"per_page": PAGE, "type": "all", "sort": "pushed", "direction": "desc"}
# What pulsehook reads of a repository object: a listing keeps these and drops the
# rest (about 5 KB each), so holding an organisation of 10,000 stays small.
KEPT = (
    "id", "node_id", "name", "full_name", "owner", "private", "html_url", "description",
    "fork", "url", "created_at", "updated_at", "pushed_at", "size", "language",
    "archived", "disabled", "visibility", "default_branch",
)  # fmt: skip
OWNER_KEPT = ("login", "id", "type", "html_url")
DEFAULT_SHARE = 0.75  # of the rate limit: a quarter is left to the token's other users
PUSHED, NEW, DUE = "pushed", "new", "due"  # why a repository is scanned, in that order
SHARE_SPENT = "rate-limit share spent"
TIME_UP = "round time up"
DISABLED_RECHECK = timedelta(days=7)  # how long a disabled dependency graph is believed


def _quiet(done: int, total: int, repo: str) -> None:
    """The default progress: says nothing."""


class Ledger(Protocol):
    """Where the scan remembers each repository's last scan (the store, in the service)."""

    async def scanned(self) -> Mapping[int, Scanned]: ...

    async def memory(self, repo_id: int) -> Memory: ...

    async def record(self, done: Scanned, memory: Memory, share: Share) -> None: ...

    async def share(self) -> Any: ...

    async def keep(self, share: Share) -> None: ...


@dataclass(frozen=True)
class Pace:
    """How far one round goes, and how it watches the scheduled workflows it reads."""

    share: float = DEFAULT_SHARE  # of each rate-limit window
    cycle: timedelta = timedelta(days=1)  # every repository rescanned at least this often
    seconds: float | None = None  # start no repository after this long
    # A scheduled workflow's run may come this late (GitHub delays them under load).
    schedule_grace: timedelta = timedelta(hours=1)
    inactivity_warning_days: int = 50  # GitHub disables scheduled workflows at 60


@dataclass
class ScanReport:
    counts: dict[str, int] = field(default_factory=dict)  # deliveries per event
    repos: list[str] = field(default_factory=list)  # full names scanned
    errors: list[Failure] = field(default_factory=list)  # text, and GitHub's status
    listed: int = 0  # repositories found
    behind: dict[str, int] = field(default_factory=dict)  # left for later rounds, per reason
    stopped: str | None = None  # why the round ended before its list did
    requests: int = 0  # answers received this round
    not_modified: int = 0  # of which 304 (free)
    graphql: int = 0  # of which GraphQL queries (a rate limit of their own)
    spent: int = 0  # counted against the rate limit this window, by the scan
    allowed: int | None = None  # the scan's share of this window
    oldest_scan: str | None = None  # the least recent last scan of a listed repository

    @property
    def deliveries(self) -> int:
        return sum(self.counts.values())

    @property
    def backlog(self) -> int:
        return sum(self.behind.values())

    def summary(self) -> dict[str, Any]:
        """Figures only (no names, no error text): safe to show anyone."""
        return {
            "listed": self.listed,
            "scanned": len(self.repos),
            "backlog": self.backlog,
            "behind": dict(self.behind),
            "stopped": self.stopped,
            "errors": len(self.errors),
            "requests": self.requests,
            "not_modified": self.not_modified,
            "graphql": self.graphql,
            "rate_limit_spent": self.spent,
            "rate_limit_share": self.allowed,
            "oldest_scan": self.oldest_scan,
        }


@dataclass(frozen=True)
class Listed:
    """A repository as the listing gave it."""

    repo: Json

    @property
    def repo_id(self) -> int:
        return int(self.repo["id"])

    @property
    def pushed_at(self) -> str | None:
        value = self.repo.get("pushed_at")
        return value if isinstance(value, str) else None


def slim(repo: Json) -> Json:
    kept = {k: repo[k] for k in KEPT if k in repo}
    if isinstance(repo.get("owner"), dict):
        kept["owner"] = {k: repo["owner"][k] for k in OWNER_KEPT if k in repo["owner"]}
    return kept


def plan(
    listed: Iterable[Listed], ledger: Mapping[int, Scanned], *, due_before: str
) -> list[tuple[str, Listed]]:
    """Which repositories this round scans, in order, and why (pure).

    Pushed to since the last scan (most recent push first): what users wait for.
    Never scanned (most recent push first). Then those last scanned before
    ``due_before``, longest unscanned first. The rest are up to date.
    """
    pushed: list[Listed] = []
    new: list[Listed] = []
    due: list[tuple[str, Listed]] = []
    for item in listed:
        last = ledger.get(item.repo_id)
        if last is None:
            new.append(item)
        elif item.pushed_at is not None and item.pushed_at != last.pushed_at:
            pushed.append(item)
        elif last.scanned_at < due_before:
            due.append((last.scanned_at, item))
    newest_push = lambda item: item.pushed_at or ""  # noqa: E731 - a sort key
    pushed.sort(key=newest_push, reverse=True)
    new.sort(key=newest_push, reverse=True)
    due.sort(key=lambda pair: pair[0])
    return [(PUSHED, i) for i in pushed] + [(NEW, i) for i in new] + [(DUE, i) for _, i in due]


class RepoReading:
    """Deliveries for one repository, and the errors met while reading it."""

    def __init__(self, repo: Json, now: datetime, memory: Memory) -> None:
        self.repo = repo
        self.full_name: str = repo["full_name"]
        self.id = repo["id"]
        self.received_at = iso(now)
        self.deliveries: list[Delivery] = []
        self.errors: list[Failure] = []
        self.known = memory  # what the last scan left
        self.learned = Memory(dict(memory.etags), dict(memory.facts))

    def add(self, guid: str, event: str, payload: Json) -> None:
        action = payload.get("action")
        self.deliveries.append(
            Delivery(
                guid=guid,
                event=event,
                payload=json.dumps(payload, separators=(",", ":")),
                content_type="application/json",
                received_at=self.received_at,
                action=action if isinstance(action, str) else None,
                repo=self.full_name,
            )
        )

    async def get(
        self, client: GitHubClient, key: str, path: str, params: dict[str, Any] | None = None
    ) -> Response:
        """A conditional GET: the ETag of the last 200 for ``key``; a 304 comes back as is."""
        rsp = await client.get(path, params, etag=self.known.etags.get(key), cache=False)
        etag = rsp.headers.get("etag")
        if rsp.status == 200 and etag:
            self.learned.etags[key] = etag
        elif rsp.status != 304:
            self.learned.etags.pop(key, None)
        return rsp


def _listing(client: GitHubClient, path: str) -> AsyncIterator[Any]:
    # Not conditional: the pages' bodies are needed, and a push reorders them anyway.
    return client.paginate(path, LISTING, cache=False)


async def _repositories(
    client: GitHubClient, org: str | None, names: list[str], report: ScanReport
) -> list[Listed]:
    found: dict[str, Json] = {}
    if org:
        try:
            try:
                async for repo in _listing(client, f"/orgs/{quote(org)}/repos"):
                    found[repo["full_name"]] = slim(repo)
            except GitHubError as exc:
                if exc.status != 404:
                    raise
                # Not an organisation: a user account lists its repositories elsewhere.
                async for repo in _listing(client, f"/users/{quote(org)}/repos"):
                    found[repo["full_name"]] = slim(repo)
        except (RateLimited, ShareSpent):
            raise
        except (GitHubError, KeyError, TypeError) as exc:
            report.errors.append(failure(f"{org}: listing repositories", exc))
    for name in names:
        owner, _, repo_name = name.partition("/")
        try:
            rsp = await client.get(f"/repos/{quote(owner)}/{quote(repo_name)}", cache=False)
        except (RateLimited, ShareSpent):
            raise
        except GitHubError as exc:
            report.errors.append(failure(name, exc))
            continue
        if rsp.ok and isinstance(rsp.body, dict) and "full_name" in rsp.body:
            found.setdefault(rsp.body["full_name"], slim(rsp.body))
        else:
            report.errors.append(failure(name, client.error(rsp)))
    return [Listed(repo) for repo in found.values() if isinstance(repo.get("id"), int)]


async def scan(
    client: GitHubClient,
    *,
    org: str | None,
    repos: list[str] | None,
    ledger: Ledger,
    sink: Sink,
    pace: Pace | None = None,
    progress: Progress = _quiet,
) -> ScanReport:
    """One round over an organisation's (or user's) and/or named ``owner/name`` repositories.

    Times come from the client's clock. An error on one repository is recorded and
    the round goes on; a rate limit that cannot be waited out (RateLimited) ends
    it, as every further request would fail. A repository is recorded in the
    ledger only once its findings are in the sink.
    """
    if not org and not repos:
        raise ValueError("scan needs an organisation or a list of repositories")
    pace = pace or Pace()
    clock = client.clock
    started = clock.now()
    share = Share.load(pace.share, await ledger.share())
    report = ScanReport()
    asked, unchanged, queried = client.requests, client.not_modified, client.graphql_requests
    todo: list[tuple[str, Listed]] = []
    found: list[Listed] = []
    known: dict[int, Scanned] = {}
    until = None if pace.seconds is None else started.timestamp() + pace.seconds
    with client.metered(share, wait_until=until):
        try:
            found = await _repositories(client, org, list(repos or []), report)
            report.listed = len(found)
            known = dict(await ledger.scanned())
            todo = plan(found, known, due_before=iso(started - pace.cycle))
            for done, (_, item) in enumerate(todo, start=1):
                now = clock.now()
                if pace.seconds is not None and (now - started).total_seconds() >= pace.seconds:
                    report.stopped = TIME_UP
                    break
                scanned = RepoReading(item.repo, now, await ledger.memory(item.repo_id))
                try:
                    await _scan_repo(client, scanned, pace)
                finally:
                    # What was read is kept, even when the share ran out half-way.
                    if scanned.deliveries:
                        await sink(scanned.deliveries)
                    for d in scanned.deliveries:
                        report.counts[d.event] = report.counts.get(d.event, 0) + 1
                report.errors.extend(scanned.errors)
                report.repos.append(scanned.full_name)
                known[item.repo_id] = last = Scanned(
                    item.repo_id, scanned.full_name, item.pushed_at, iso(now)
                )
                await ledger.record(last, scanned.learned, share)
                progress(done, len(todo), scanned.full_name)
        except ShareSpent:
            # A repository cut short is not recorded: the next round scans it again.
            report.stopped = SHARE_SPENT
        finally:
            await ledger.keep(share)
    for reason, _ in todo[len(report.repos) :]:
        report.behind[reason] = report.behind.get(reason, 0) + 1
    listed_scans = [known[i.repo_id].scanned_at for i in found if i.repo_id in known]
    report.oldest_scan = min(listed_scans, default=None)
    report.requests = client.requests - asked
    report.not_modified = client.not_modified - unchanged
    report.graphql = client.graphql_requests - queried
    report.spent = share.spent
    report.allowed = None if share.limit is None else int(share.fraction * share.limit)
    return report


# One repository's reads in the order the budget spends them, each guarded alike.
async def _scan_repo(client: GitHubClient, r: RepoReading, pace: Pace) -> None:  # noqa: C901
    repo = r.repo
    r.add(
        f"scan:repo:{r.id}:{repo.get('updated_at')}:{repo.get('pushed_at')}",
        "repository",
        {"action": "scanned", "repository": repo},
    )
    base = f"/repos/{r.full_name}"
    default = str(repo.get("default_branch") or "")
    facts = r.learned.facts  # what a 304 stands for, kept for the next scan
    head: str | None = None  # the default branch's newest commit

    async def runs() -> None:
        rsp = await r.get(client, "runs", f"{base}/actions/runs", _branch(default, 20))
        for run in (_fresh(client, rsp) or {}).get("workflow_runs") or []:
            r.add(*run_delivery(r.repo, run))

    async def alerts() -> None:
        facts["dependabot"] = await _alerts(client, r, base)

    async def workflows() -> None:
        await read_workflows(client, r, pace)

    async def graph() -> None:
        # A graph GitHub does not have answers 404, which costs rate limit and has no
        # ETag: asked again weekly (a push changing a manifest asks at once).
        checked = facts.get("graph_checked")
        if (
            facts.get("graph") == "disabled"
            and isinstance(checked, str)
            and r.received_at < iso(parse_iso(checked) + DISABLED_RECHECK)
        ):
            return
        await read_graph(client, r)

    async def documentation() -> None:
        rsp = await r.get(client, "profile", f"{base}/community/profile")
        if rsp.status == 200 and isinstance(rsp.body, dict):
            facts["api_docs"] = bool(rsp.body.get("documentation"))
            facts["profile_readme"] = (rsp.body.get("files") or {}).get("readme") is not None
        elif rsp.status != 304:
            # 404 (and 422 for some forks): no community profile, so unknown.
            facts["api_docs"] = facts["profile_readme"] = None
            if rsp.status not in (404, 422):
                r.errors.append(failure(f"{r.full_name}: community profile", client.error(rsp)))
        if facts.get("profile_readme"):
            facts["readme"] = True
            return
        # The README endpoint looks where the profile may not: asked only when needed.
        rsp = await r.get(client, "readme", f"{base}/readme")
        if rsp.status != 304:
            facts["readme"] = True if rsp.ok else False if rsp.status == 404 else None
        if facts.get("readme") is None:
            r.errors.append(failure(f"{r.full_name}: readme", client.error(rsp)))
            facts["readme"] = facts.get("profile_readme")  # the profile's word, if any

    async def commits() -> None:
        nonlocal head
        params = {"sha": default, "per_page": 30} if default else {"per_page": 30}
        rsp = await r.get(client, "commits", f"{base}/commits", params)
        if rsp.status == 409:  # an empty repository
            facts["head"] = None
            return
        if rsp.status == 304:
            head = facts.get("head")
            return
        listed = [c for c in _ok(client, rsp).body or [] if isinstance(c, dict)]
        if listed:
            r.add(*push_delivery(r.repo, default, listed))
            head = listed[0]["sha"]
        facts["head"] = head

    async def statuses() -> None:
        if head is not None:
            await _status(client, r, base, default, head)

    async def pulls() -> None:
        # Recently updated ones of any state catch a close whose webhook was missed; past
        # a full page, the open ones are listed as well.
        rsp = await r.get(client, "pulls", f"{base}/pulls", RECENT_PULLS)
        found = list(_fresh(client, rsp) or [])
        if rsp.link("next") is not None:
            found += [pr async for pr in client.paginate(f"{base}/pulls", OPEN_PULLS, cache=False)]
        for pr in found:
            if not isinstance(pr, dict) or (pr.get("user") or {}).get("login") != DEPENDABOT:
                continue
            n = pr["number"]
            payload = {"action": "scanned", "number": n, "pull_request": pr, "repository": repo}
            r.add(f"scan:pr:{r.id}:{n}:{pr.get('updated_at')}", "pull_request", payload)

    sections: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("workflow runs", runs),
        ("workflows", workflows),
        ("dependabot alerts", alerts),
        ("dependency graph", graph),
        ("documentation", documentation),
        ("commits", commits),
        ("statuses", statuses),
        ("pull requests", pulls),
    ]
    for name, read in sections:
        try:
            await read()
        except (RateLimited, ShareSpent):
            raise
        except (GitHubError, KeyError, TypeError, AttributeError) as exc:
            r.errors.append(failure(f"{r.full_name}: {name}", exc))
    checked = r.received_at
    r.add(
        f"scan:profile:{r.id}:{checked}",
        "pulsehook.profile",
        {
            "repository": repo,
            "readme": facts.get("readme"),
            "api_docs": facts.get("api_docs"),
            "dependabot": facts.get("dependabot"),
            "checked_at": checked,
        },
    )


def _ok(client: GitHubClient, rsp: Response) -> Response:
    if not rsp.ok:
        raise client.error(rsp)
    return rsp


def _fresh(client: GitHubClient, rsp: Response) -> Any:
    """The body of a 200; None for a 304 (nothing new since the last scan)."""
    return None if rsp.status == 304 else _ok(client, rsp).body


def _branch(default: str, per_page: int) -> dict[str, Any]:
    return {"branch": default, "per_page": per_page} if default else {"per_page": per_page}


async def _alerts(client: GitHubClient, r: RepoReading, base: str) -> bool:
    """The most recently updated alerts of any state (and, past a page, every open
    one); False if alerts are disabled."""
    path = f"{base}/dependabot/alerts"
    rsp = await r.get(client, "alerts", path, RECENT_ALERTS)
    if rsp.status in (403, 404):
        return False  # disabled, or the token may not see them: not an error
    if rsp.status == 304:
        return True  # nothing changed since the last answer, which listed them
    alerts: dict[int, Json] = {}
    found = list(_ok(client, rsp).body or [])
    if rsp.link("next") is not None:
        found += [a async for a in client.paginate(path, OPEN_ALERTS, cache=False)]
    for alert in found:
        known = alerts.get(alert["number"])
        if known is None or str(alert.get("updated_at")) > str(known.get("updated_at")):
            alerts[alert["number"]] = alert
    for number, alert in sorted(alerts.items()):
        r.add(
            f"scan:alert:{r.id}:{number}:{alert.get('updated_at')}",
            "dependabot_alert",
            {"action": "scanned", "alert": alert, "repository": r.repo},
        )
    return True


async def read_graph(client: GitHubClient, r: RepoReading) -> None:
    """The repository's dependency graph (GitHub's SBOM), stored when it changed; a
    graph GitHub does not have (disabled, or hidden from the token) once as such."""
    rsp = await r.get(client, "sbom", f"/repos/{r.full_name}/dependency-graph/sbom")
    facts = r.learned.facts
    if rsp.status == 304:
        return
    if rsp.status in (403, 404):
        if facts.get("graph") != "disabled":
            message = rsp.body.get("message") if isinstance(rsp.body, dict) else None
            r.add(
                f"scan:sbom:{r.id}:disabled:{r.received_at}",
                "pulsehook.sbom",
                {
                    "repository": r.repo,
                    "disabled": True,
                    "reason": str(message or f"HTTP {rsp.status}")[:200],
                    "checked_at": r.received_at,
                },
            )
        facts["graph"], facts["graph_checked"] = "disabled", r.received_at
        facts.pop("graph_digest", None)
        return
    doc = sbom.slim(_ok(client, rsp).body)
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
    if facts.get("graph") == "ok" and facts.get("graph_digest") == digest:
        return  # answered in full, but the same graph
    r.add(
        f"scan:sbom:{r.id}:{digest}:{r.received_at}",
        "pulsehook.sbom",
        {"repository": r.repo, "sbom": doc, "checked_at": r.received_at},
    )
    facts["graph"], facts["graph_digest"] = "ok", digest
    facts.pop("graph_checked", None)


WORKFLOW_KEPT = ("name", "path", "state", "html_url")


async def read_workflows(
    client: GitHubClient, r: RepoReading, pace: Pace, *, pushed: bool = False
) -> None:
    """The repository's workflows, GitHub's state of each and the crons of its file,
    as one ``pulsehook.workflows`` finding.

    The list is a conditional request (a 304 is free). The directory of workflow
    files is read when the list changed, the repository was pushed to since, or
    ``pushed`` (a push changed a workflow file): through GraphQL, whose rate limit
    is not the scan's, else through REST (conditional). A file is read only when
    its blob sha differs from the last read, so an unchanged repository costs nothing.
    """
    base = f"/repos/{r.full_name}"
    facts = r.learned.facts
    rsp = await r.get(client, "workflows", f"{base}/actions/workflows", {"per_page": PAGE})
    listed: list[Json]
    if rsp.status == 304:
        listed = list(facts.get("workflows") or [])
    elif rsp.status in (403, 404):
        listed = []  # Actions disabled, or hidden from the token
    else:
        body = _ok(client, rsp).body
        found = body.get("workflows") if isinstance(body, dict) else None
        listed = [
            {k: w.get(k) for k in WORKFLOW_KEPT}
            for w in found or []
            if isinstance(w, dict) and isinstance(w.get("path"), str)
        ]
    facts["workflows"] = listed
    known: dict[str, Any] = dict(facts.get("workflow_files") or {})
    read: dict[str, Any] = {}
    if any(str(w["path"]).startswith(workflow_files.WORKFLOWS_DIR) for w in listed):
        unchanged = (
            not pushed
            and rsp.status == 304
            and "workflow_dir" in facts
            and facts.get("workflow_pushed_at") == r.repo.get("pushed_at")
        )
        if not unchanged:
            # The files change only with a push: an unchanged list of an unpushed
            # repository keeps what was read.
            found_files = await _graphql_workflow_files(client, r, listed, known)
            if found_files is None:
                found_files = await _rest_workflow_files(client, r, listed, known)
            facts["workflow_dir"] = found_files[0]
            read = found_files[1]
            facts["workflow_pushed_at"] = r.repo.get("pushed_at")
        else:
            read = {w: f for w, f in known.items() if w in facts["workflow_dir"]}
    else:
        facts["workflow_dir"] = {}
    facts["workflow_files"] = read
    now_listed = {str(w["path"]) for w in listed}
    gone = [
        {"name": w.get("name"), "path": w.get("path"), "state": workflow_files.DELETED}
        for w in r.known.facts.get("workflows") or []
        if isinstance(w, dict) and w.get("path") not in now_listed
    ]
    if not listed and not gone:
        return
    found = [
        {**w, **{k: v for k, v in (read.get(str(w["path"])) or {}).items() if k != "sha"}}
        for w in listed
    ] + gone
    # What was read is in the guid: a read after a push, at the same time as the
    # scan's, is a delivery of its own.
    digest = hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()[:16]
    r.add(
        f"scan:workflows:{r.id}:{r.received_at}:{digest}",
        "pulsehook.workflows",
        {
            "repository": r.repo,
            "checked_at": r.received_at,
            "last_activity": r.repo.get("pushed_at"),
            "grace_s": int(pace.schedule_grace.total_seconds()),
            "warn_days": pace.inactivity_warning_days,
            "workflows": found,
        },
    )


def _schedule_entry(sha: str, text: str | workflow_files.Schedules | None) -> dict[str, Any]:
    """What a file of this blob says: its text read, or why it has none."""
    if isinstance(text, workflow_files.Schedules):
        found = text
    elif text is None:
        found = workflow_files.Schedules(problem="not a text file")
    else:
        found = workflow_files.schedules(text)
    return {"sha": sha, "crons": list(found.crons), "problem": found.problem}


def _to_read(
    listed: list[Json], shas: Mapping[str, str], known: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The listed workflows' files already read (same blob sha), and path -> sha of
    those to read; a workflow with no file on the default branch (dynamic) has none."""
    kept: dict[str, Any] = {}
    wanted: dict[str, str] = {}
    for w in listed:
        file, sha = str(w["path"]), shas.get(str(w["path"]))
        if sha is None:
            continue
        before = known.get(file)
        if isinstance(before, dict) and before.get("sha") == sha:
            kept[file] = before
        else:
            wanted[file] = sha
    return kept, wanted


async def _graphql_workflow_files(
    client: GitHubClient, r: RepoReading, listed: list[Json], known: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, Any]] | None:
    """The workflow directory and the changed files through GraphQL (its own rate
    limit); None when GraphQL does not answer (REST is asked instead)."""
    rsp = await client.graphql(workflow_files.tree_query(r.full_name))
    shas = workflow_files.tree_entries(rsp.body) if rsp.status == 200 else None
    if shas is None:
        return None
    read, wanted = _to_read(listed, shas, known)
    pending = sorted(set(wanted.values()))
    texts: dict[str, Any] = {}
    while pending:
        batch, pending = (
            pending[: workflow_files.BLOBS_PER_QUERY],
            pending[workflow_files.BLOBS_PER_QUERY :],
        )
        rsp = await client.graphql(workflow_files.blobs_query(r.full_name, batch))
        got = workflow_files.blob_texts(rsp.body, batch) if rsp.status == 200 else None
        if got is None:
            return None
        texts |= got
    for file, sha in wanted.items():
        read[file] = _schedule_entry(sha, texts.get(sha))
    return shas, read


async def _rest_workflow_files(
    client: GitHubClient, r: RepoReading, listed: list[Json], known: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, Any]]:
    """The same through REST: the directory (conditional) and each changed blob."""
    base = f"/repos/{r.full_name}"
    facts = r.learned.facts
    shas: dict[str, str] = dict(facts.get("workflow_dir") or {})
    default = r.repo.get("default_branch")
    params = {"ref": default} if isinstance(default, str) and default else None
    path = f"{base}/contents/{workflow_files.WORKFLOWS_DIR.rstrip('/')}"
    rsp = await r.get(client, "workflow_dir", path, params)
    if rsp.status == 404:
        shas = {}
    elif rsp.status != 304:
        entries = _ok(client, rsp).body
        shas = {
            str(e["path"]): str(e["sha"])
            for e in (entries if isinstance(entries, list) else [])
            if isinstance(e, dict) and e.get("type") == "file" and e.get("sha")
        }
    read, wanted = _to_read(listed, shas, known)
    for file, sha in wanted.items():
        blob = await client.get(f"{base}/git/blobs/{sha}", cache=False)
        read[file] = _schedule_entry(sha, workflow_files.blob_text(_ok(client, blob).body))
    return shas, read


async def _status(client: GitHubClient, r: RepoReading, base: str, default: str, sha: str) -> None:
    """The newest codecov/project status of the default branch's head."""
    ref = quote(default or sha, safe="")
    rsp = await r.get(client, "statuses", f"{base}/commits/{ref}/statuses", {"per_page": 100})
    statuses = [
        s
        for s in _fresh(client, rsp) or []
        if isinstance(s, dict) and s.get("context") == CODECOV_PROJECT
    ]
    if not statuses:
        return
    newest = max(statuses, key=lambda s: (str(s.get("updated_at")), s.get("id") or 0))
    r.add(*status_delivery(r.repo, default, sha, newest))
