"""Signs of life and what scans learn: pushes, issue activity, a repository's profile.

Each keeps the newest time it has seen (``max``), whatever order deliveries
arrive in; bots' pushes and issue activity are recorded but are no sign of life.
"""

from __future__ import annotations

from sqlite_utils import Database

from ..facts import IssueActivity, Profile, Push


def push(db: Database, p: Push, repo_id: int) -> None:
    db.execute(
        "INSERT OR IGNORE INTO activity (repo_id, branch, author, commits, forced, bot,"
        " head_sha, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (repo_id, p.branch, p.author, p.commits, int(p.forced), int(p.bot), p.head_sha, p.at),
    )
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


def issue(db: Database, fact: IssueActivity, repo_id: int) -> None:
    if not fact.bot and fact.at:
        db.execute(
            "UPDATE repositories SET last_issue_activity_at ="
            " max(coalesce(last_issue_activity_at, ''), ?) WHERE id = ?",
            (fact.at, repo_id),
        )


def profile(db: Database, fact: Profile, repo_id: int, now: str) -> None:
    db.execute(
        "UPDATE repositories SET readme = coalesce(?, readme),"
        " api_docs = coalesce(?, api_docs), dependabot = coalesce(?, dependabot),"
        " profile_checked_at = ? WHERE id = ?",
        (fact.readme, fact.api_docs, fact.dependabot, fact.at or now, repo_id),
    )
