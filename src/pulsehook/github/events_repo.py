"""Repository events -> Push, Repo, Dependency and HookPing facts (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from ..facts import Dependency, Fact, HookPing, Push, Repo
from . import sbom, workflow_files
from .payload import Json, flag, integer, is_bot, obj, repository, text, timestamp

DEPENDABOT = "dependabot[bot]"
_BUMP = re.compile(r"[Bb]ump (?P<pkg>\S+) from (?P<old>\S+) to (?P<new>\S+)")


def push(payload: Json) -> list[Push]:
    full_name, repo_id, _ = repository(payload)
    ref = text(payload, "ref") or ""
    head = obj(payload, "head_commit")  # null when a branch is deleted
    commits = payload.get("commits")
    sender = obj(payload, "sender")
    changed = _changed(commits)
    return [
        Push(
            repo=full_name,
            repo_id=repo_id,
            branch=ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None,
            forced=flag(payload, "forced"),
            commits=len(commits) if isinstance(commits, list) else 0,
            author=text(payload, "pusher", "name") or text(sender, "login"),
            # head_commit's time when there is one; else the epoch seconds GitHub
            # puts in repository.pushed_at for push events.
            at=timestamp(head.get("timestamp"))
            or timestamp(obj(payload, "repository").get("pushed_at")),
            bot=is_bot(sender),
            deleted=flag(payload, "deleted"),
            head_sha=text(payload, "after"),
            manifests=sbom.touches_manifest(changed),
            workflows=workflow_files.touches_workflows(changed),
        )
    ]


def _changed(commits: Any) -> list[str]:
    """The paths a push's commits list as added, modified or removed (GitHub lists
    at most 20 commits, and those of each at most 3,000 files)."""
    paths: list[str] = []
    for commit in commits if isinstance(commits, list) else []:
        if isinstance(commit, dict):
            for key in ("added", "modified", "removed"):
                listed = commit.get(key)
                if isinstance(listed, list):
                    paths += [p for p in listed if isinstance(p, str)]
    return paths


def repo_fact(payload: Json, repo: Json, action: str, previous: str | None = None) -> Repo:
    full_name = text(repo, "full_name")
    if not full_name:
        full_name, _, _ = repository(payload)
    return Repo(
        repo=full_name,
        repo_id=integer(repo, "id"),
        action=action,
        owner=text(repo, "owner", "login") or full_name.partition("/")[0],
        default_branch=text(repo, "default_branch"),
        archived=flag(repo, "archived"),
        private=flag(repo, "private"),
        url=text(repo, "html_url"),
        previous_name=previous,
        at=timestamp(repo.get("updated_at")),
    )


def repository_event(payload: Json) -> list[Repo]:
    action = text(payload, "action") or "edited"
    repo = obj(payload, "repository")
    previous = None
    changes = obj(payload, "changes")
    if action == "renamed":
        old = text(changes, "repository", "name", "from")
        owner = text(repo, "owner", "login")
        previous = f"{owner}/{old}" if owner and old else old
    elif action == "transferred":
        source = obj(changes, "owner", "from")
        old_owner = text(source, "user", "login") or text(source, "organization", "login")
        previous = f"{old_owner}/{text(repo, 'name')}" if old_owner else None
    return [repo_fact(payload, repo, action, previous)]


_TRACKING = {
    "created": "tracked",
    "unsuspend": "tracked",
    "new_permissions_accepted": "tracked",
    "added": "tracked",
    "deleted": "untracked",
    "suspend": "untracked",
    "removed": "untracked",
}


def _tracked(payload: Json, repos: object, action: str) -> list[Repo]:
    owner = text(payload, "installation", "account", "login")
    facts: list[Repo] = []
    for item in repos if isinstance(repos, list) else []:
        full_name = text(item, "full_name")
        if not full_name:
            continue
        facts.append(
            Repo(
                repo=full_name,
                repo_id=integer(item, "id"),
                action=action,
                owner=owner or full_name.partition("/")[0],
                default_branch=None,
                archived=False,
                private=flag(item, "private"),
                url=None,
                previous_name=None,
                at=None,
            )
        )
    return facts


def installation(payload: Json) -> list[Repo]:
    action = _TRACKING.get(text(payload, "action") or "")
    return _tracked(payload, payload.get("repositories"), action) if action else []


def installation_repositories(payload: Json) -> list[Repo]:
    return _tracked(payload, payload.get("repositories_added"), "tracked") + _tracked(
        payload, payload.get("repositories_removed"), "untracked"
    )


def pull_request(payload: Json) -> list[Dependency]:
    pr = obj(payload, "pull_request")
    if text(pr, "user", "login") != DEPENDABOT:
        return []
    number = integer(pr, "number") or integer(payload, "number")
    if number is None:
        return []
    full_name, repo_id, _ = repository(payload)
    title = text(pr, "title") or ""
    bump = _BUMP.search(title)
    return [
        Dependency(
            repo=full_name,
            repo_id=repo_id,
            number=number,
            action=text(payload, "action") or "",
            state=text(pr, "state") or "open",
            # The list endpoint (a scan) has no "merged", only "merged_at".
            merged=flag(pr, "merged") or pr.get("merged_at") is not None,
            title=title,
            package=bump.group("pkg") if bump else None,
            from_version=bump.group("old") if bump else None,
            to_version=bump.group("new") if bump else None,
            url=text(pr, "html_url"),
            opened_at=timestamp(pr.get("created_at")),
            closed_at=timestamp(pr.get("closed_at")),
            updated_at=timestamp(pr.get("updated_at")),
        )
    ]


def ping(payload: Json) -> list[HookPing]:
    hook = obj(payload, "hook")
    events = hook.get("events")
    return [
        HookPing(
            hook_id=integer(payload, "hook_id") or integer(hook, "id"),
            events=tuple(e for e in events if isinstance(e, str))
            if isinstance(events, list)
            else (),
            content_type=text(hook, "config", "content_type"),
            target=text(hook, "type"),
            repo=text(payload, "repository", "full_name"),
            org=text(payload, "organization", "login"),
            at=timestamp(hook.get("updated_at") or hook.get("created_at")),
        )
    ]


# The events this module reads, each with its normalizer (github/normalize.py gathers them).
EVENTS: dict[str, Callable[[Json], Sequence[Fact]]] = {
    "push": push,
    "pull_request": pull_request,
    "repository": repository_event,
    "installation": installation,
    "installation_repositories": installation_repositories,
    "ping": ping,
}
