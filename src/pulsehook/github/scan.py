"""Backfill: read repositories through the REST API and store what webhooks would have said.

Each finding becomes a synthetic delivery shaped like the webhook payload the
normalizers already read, with a guid derived from what it describes, so a re-scan
of an unchanged repository stores nothing new (the store ignores a known guid).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from ..clock import iso
from ..store.deliveries import Delivery
from .api import GitHubClient, GitHubError, RateLimited
from .response import Response
from .scan_payloads import CODECOV_PROJECT, Json, push_delivery, run_delivery, status_delivery

Sink = Callable[[list[Delivery]], Awaitable[None]]
Progress = Callable[[int, int, str], None]

DEPENDABOT = "dependabot[bot]"
OPEN_PULLS = {"state": "open", "per_page": 100}
RECENTLY_CLOSED = {"state": "closed", "sort": "updated", "direction": "desc", "per_page": 50}


def _quiet(done: int, total: int, repo: str) -> None:
    """The default progress: says nothing."""


@dataclass
class ScanReport:
    counts: dict[str, int] = field(default_factory=dict)  # deliveries per event
    repos: list[str] = field(default_factory=list)  # full names scanned
    errors: list[str] = field(default_factory=list)

    @property
    def deliveries(self) -> int:
        return sum(self.counts.values())


class _Repo:
    """Deliveries for one repository, and the errors met while reading it."""

    def __init__(self, repo: Json, now: datetime) -> None:
        self.repo = repo
        self.full_name: str = repo["full_name"]
        self.id = repo["id"]
        self.received_at = iso(now)
        self.deliveries: list[Delivery] = []
        self.errors: list[str] = []

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


async def _repositories(
    client: GitHubClient, org: str | None, names: list[str], report: ScanReport
) -> list[Json]:
    found: dict[str, Json] = {}
    if org:
        params = {"per_page": 100, "type": "all"}
        try:
            try:
                async for repo in client.paginate(f"/orgs/{quote(org)}/repos", params):
                    found[repo["full_name"]] = repo
            except GitHubError as exc:
                if exc.status != 404:
                    raise
                # Not an organisation: a user account lists its repositories elsewhere.
                async for repo in client.paginate(f"/users/{quote(org)}/repos", params):
                    found[repo["full_name"]] = repo
        except RateLimited:
            raise
        except (GitHubError, KeyError, TypeError) as exc:
            report.errors.append(f"{org}: listing repositories: {exc}")
    for name in names:
        owner, _, repo_name = name.partition("/")
        try:
            rsp = await client.get(f"/repos/{quote(owner)}/{quote(repo_name)}")
        except RateLimited:
            raise
        except GitHubError as exc:
            report.errors.append(f"{name}: {exc}")
            continue
        if rsp.ok and isinstance(rsp.body, dict) and "full_name" in rsp.body:
            found.setdefault(rsp.body["full_name"], rsp.body)
        else:
            report.errors.append(f"{name}: {client.error(rsp)}")
    return list(found.values())


async def scan(
    client: GitHubClient,
    *,
    org: str | None,
    repos: list[str] | None,
    now: datetime,
    sink: Sink,
    progress: Progress = _quiet,
) -> ScanReport:
    """Scan an organisation's (or user's) repositories and/or named ``owner/name`` ones.

    An error on one repository is recorded and the scan goes on; a rate limit that
    cannot be waited out (RateLimited) ends it, as every further request would fail.
    """
    if not org and not repos:
        raise ValueError("scan needs an organisation or a list of repositories")
    report = ScanReport()
    found = await _repositories(client, org, list(repos or []), report)
    for done, repo in enumerate(found, start=1):
        scanned = _Repo(repo, now)
        await _scan_repo(client, scanned, now)
        if scanned.deliveries:
            await sink(scanned.deliveries)
        for d in scanned.deliveries:
            report.counts[d.event] = report.counts.get(d.event, 0) + 1
        report.errors.extend(scanned.errors)
        report.repos.append(scanned.full_name)
        progress(done, len(found), scanned.full_name)
    return report


async def _scan_repo(client: GitHubClient, r: _Repo, now: datetime) -> None:
    repo = r.repo
    r.add(
        f"scan:repo:{r.id}:{repo.get('updated_at')}:{repo.get('pushed_at')}",
        "repository",
        {"action": "scanned", "repository": repo},
    )
    base = f"/repos/{r.full_name}"
    default = str(repo.get("default_branch") or "")
    readme: bool | None = None
    profile: Json | None = None
    dependabot: bool | None = None
    head: str | None = None  # the default branch's newest commit

    async def runs() -> None:
        rsp = _ok(client, await client.get(f"{base}/actions/runs", _branch(default, 20)))
        for run in (rsp.body or {}).get("workflow_runs") or []:
            r.add(*run_delivery(r.repo, run))

    async def alerts() -> None:
        nonlocal dependabot
        dependabot = await _alerts(client, r, base)

    async def documentation() -> None:
        nonlocal readme, profile
        rsp = await client.get(f"{base}/readme")
        readme = True if rsp.ok else False if rsp.status == 404 else None
        if readme is None:
            r.errors.append(f"{r.full_name}: readme: {client.error(rsp)}")
        rsp = await client.get(f"{base}/community/profile")
        # 404 (and 422 for some forks): no community profile, so unknown.
        profile = rsp.body if rsp.ok and isinstance(rsp.body, dict) else None
        if not rsp.ok and rsp.status not in (404, 422):
            r.errors.append(f"{r.full_name}: community profile: {client.error(rsp)}")

    async def commits() -> None:
        nonlocal head
        params = {"sha": default, "per_page": 30} if default else {"per_page": 30}
        rsp = await client.get(f"{base}/commits", params)
        if rsp.status == 409:  # an empty repository
            return
        listed = [c for c in _ok(client, rsp).body or [] if isinstance(c, dict)]
        if listed:
            r.add(*push_delivery(r.repo, default, listed))
            head = listed[0]["sha"]

    async def statuses() -> None:
        if head is not None:
            await _status(client, r, base, default, head)

    async def pulls() -> None:
        # Open ones, and the most recently closed: a close whose webhook was missed.
        found = [pr async for pr in client.paginate(f"{base}/pulls", OPEN_PULLS)]
        found += _ok(client, await client.get(f"{base}/pulls", RECENTLY_CLOSED)).body or []
        for pr in found:
            if not isinstance(pr, dict) or (pr.get("user") or {}).get("login") != DEPENDABOT:
                continue
            n = pr["number"]
            payload = {"action": "scanned", "number": n, "pull_request": pr, "repository": repo}
            r.add(f"scan:pr:{r.id}:{n}:{pr.get('updated_at')}", "pull_request", payload)

    sections: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("workflow runs", runs),
        ("dependabot alerts", alerts),
        ("documentation", documentation),
        ("commits", commits),
        ("statuses", statuses),
        ("pull requests", pulls),
    ]
    for name, read in sections:
        try:
            await read()
        except RateLimited:
            raise
        except (GitHubError, KeyError, TypeError, AttributeError) as exc:
            r.errors.append(f"{r.full_name}: {name}: {exc}")
    if profile is not None:
        # The README endpoint and the community profile may look in different places.
        found = (profile.get("files") or {}).get("readme") is not None
        readme = found if readme is None else (readme or found)
    checked = iso(now)
    r.add(
        f"scan:profile:{r.id}:{checked}",
        "pulsehook.profile",
        {
            "repository": repo,
            "readme": readme,
            "api_docs": bool(profile.get("documentation")) if profile is not None else None,
            "dependabot": dependabot,
            "checked_at": checked,
        },
    )


def _ok(client: GitHubClient, rsp: Response) -> Response:
    if not rsp.ok:
        raise client.error(rsp)
    return rsp


def _branch(default: str, per_page: int) -> dict[str, Any]:
    return {"branch": default, "per_page": per_page} if default else {"per_page": per_page}


async def _alerts(client: GitHubClient, r: _Repo, base: str) -> bool:
    """Open alerts, and the most recently updated of any state; False if disabled."""
    path = f"{base}/dependabot/alerts"
    rsp = await client.get(path, {"state": "open", "per_page": 100})
    if rsp.status in (403, 404):
        return False  # disabled, or the token may not see them: not an error
    alerts: dict[int, Json] = {}
    pages: list[Response] = [_ok(client, rsp)]
    while (next_url := pages[-1].link("next")) is not None:
        pages.append(_ok(client, await client.get(next_url)))
    recent = {"sort": "updated", "direction": "desc", "per_page": 50}
    pages.append(_ok(client, await client.get(path, recent)))
    for page in pages:
        for alert in page.body or []:
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


async def _status(client: GitHubClient, r: _Repo, base: str, default: str, sha: str) -> None:
    """The newest codecov/project status of the default branch's head."""
    ref = quote(default or sha, safe="")
    rsp = _ok(client, await client.get(f"{base}/commits/{ref}/statuses", {"per_page": 100}))
    statuses = [
        s for s in rsp.body or [] if isinstance(s, dict) and s.get("context") == CODECOV_PROJECT
    ]
    if not statuses:
        return
    newest = max(statuses, key=lambda s: (str(s.get("updated_at")), s.get("id") or 0))
    r.add(*status_delivery(r.repo, default, sha, newest))
