"""``issues`` and ``issue_comment``: conversation as a sign of life (pure).

Every action counts as activity at the time the payload gives for it: the
comment's for a comment, the issue's last update otherwise. Comments on pull
requests arrive as ``issue_comment`` too and count the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..facts import Fact, IssueActivity
from .payload import Json, integer, is_bot, obj, repository, text, timestamp


def _activity(payload: Json, issue: Json, who: Json, at: object) -> list[IssueActivity]:
    full_name, repo_id, _ = repository(payload)
    sender = obj(payload, "sender")
    return [
        IssueActivity(
            repo=full_name,
            repo_id=repo_id,
            number=integer(issue, "number"),
            action=text(payload, "action") or "",
            author=text(who, "login") or text(sender, "login"),
            bot=is_bot(sender) or is_bot(who),
            at=timestamp(at),
        )
    ]


def issues(payload: Json) -> list[IssueActivity]:
    issue = obj(payload, "issue")
    at = issue.get("updated_at") or issue.get("created_at")
    return _activity(payload, issue, obj(issue, "user"), at)


def issue_comment(payload: Json) -> list[IssueActivity]:
    comment = obj(payload, "comment")
    at = comment.get("updated_at") or comment.get("created_at")
    return _activity(payload, obj(payload, "issue"), obj(comment, "user"), at)


# The events this module reads, each with its normalizer (github/normalize.py gathers them).
EVENTS: dict[str, Callable[[Json], Sequence[Fact]]] = {
    "issues": issues,
    "issue_comment": issue_comment,
}
