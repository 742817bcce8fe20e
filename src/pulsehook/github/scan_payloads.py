"""What a scan finds, shaped as the webhook payloads the normalizers read (pure).

Each builder returns ``(guid, event, payload)``. The guid is derived from what
the payload describes, so scanning an unchanged repository again yields the
same guids and stores nothing new.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
Found = tuple[str, str, Json]

CODECOV_PROJECT = "codecov/project"
ZERO_SHA = "0" * 40


def run_delivery(repo: Json, run: Json) -> Found:
    """A workflow run from the REST API as a ``workflow_run`` delivery."""
    status = run.get("status")
    return (
        f"scan:run:{run['id']}:{run.get('run_attempt')}:{run.get('updated_at')}",
        "workflow_run",
        {
            "action": "completed" if status == "completed" else status,
            "workflow_run": run,
            "workflow": {"name": run.get("name")},
            "repository": repo,
        },
    )


def commit_payload(c: Json) -> Json:
    """A REST commit as a push payload lists it."""
    inner = c.get("commit") or {}
    author, committer = inner.get("author") or {}, inner.get("committer") or {}
    login = (c.get("author") or {}).get("login")
    return {
        "id": c["sha"],
        "tree_id": (inner.get("tree") or {}).get("sha"),
        "distinct": True,
        "message": inner.get("message"),
        "timestamp": author.get("date"),
        "url": c.get("html_url"),
        "author": {"name": author.get("name"), "email": author.get("email"), "username": login},
        "committer": {"name": committer.get("name"), "email": committer.get("email")},
    }


def push_delivery(repo: Json, default: str, commits: list[Json]) -> Found:
    """The listed commits (newest first) as one push of the default branch.

    One push stands for many commits, so its sender (bot or human) is the
    newest commit's author.
    """
    newest = commits[0]
    head = commit_payload(newest)
    parents = commits[-1].get("parents") or []
    login = (newest.get("author") or {}).get("login") or head["author"]["name"]
    return (
        f"scan:push:{repo['id']}:{newest['sha']}",
        "push",
        {
            "ref": f"refs/heads/{default}",
            "before": parents[0].get("sha") if parents else ZERO_SHA,
            "after": newest["sha"],
            "created": False,
            "forced": False,
            "deleted": False,
            "commits": [commit_payload(c) for c in reversed(commits)],  # oldest first
            "head_commit": head,
            "pusher": {"name": head["author"]["name"], "email": head["author"]["email"]},
            "sender": {
                "login": login,
                "type": "Bot" if str(login).endswith("[bot]") else "User",
            },
            "repository": repo,
        },
    )


def status_delivery(repo: Json, default: str, sha: str, status: Json) -> Found:
    """A commit status from the REST API as a ``status`` delivery of ``sha``."""
    payload = {k: status.get(k) for k in ("id", "context", "description", "target_url")}
    payload |= {k: status.get(k) for k in ("state", "created_at", "updated_at")}
    payload |= {
        "sha": sha,
        "branches": [{"name": default, "commit": {"sha": sha}}] if default else [],
        "repository": repo,
    }
    return f"scan:status:{repo['id']}:{status.get('id')}", "status", payload
