"""Defensive readers over untrusted webhook JSON (pure).

A payload is whatever the sender posted; these helpers never assume a shape,
so normalization can only fail in the one documented way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..clock import iso
from ..errors import UnsupportedEvent

Json = dict[str, Any]


def obj(data: Any, *path: str) -> Json:
    """The dict at ``path`` below ``data``, or an empty dict."""
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def text(data: Any, *path: str) -> str | None:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    if isinstance(data, str):
        return data
    if isinstance(data, int | float) and not isinstance(data, bool):
        return str(data)
    return None


def integer(data: Any, *path: str) -> int | None:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    if isinstance(data, bool):
        return None
    if isinstance(data, int):
        return data
    if isinstance(data, str) and data.isascii() and data.isdigit():
        return int(data)
    return None


def flag(data: Any, *path: str) -> bool:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data is True


def timestamp(value: Any) -> str | None:
    """An ISO-8601 UTC string from GitHub's timestamps.

    GitHub sends ISO strings almost everywhere, but integer epoch seconds in
    some ``push`` fields (``repository.pushed_at``, ``created_at``).
    """
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            when = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str) and value:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
        else:
            return None
        return iso(when)
    except (ValueError, OverflowError, OSError):
        # Not a time, or one that leaves datetime's range once in UTC.
        return None


def repository(payload: Json) -> tuple[str, int | None, str | None]:
    """(full name, id, default branch) of the payload's repository."""
    repo = obj(payload, "repository")
    full_name = text(repo, "full_name")
    if not full_name:
        raise UnsupportedEvent("payload has no repository.full_name")
    return full_name, integer(repo, "id"), text(repo, "default_branch")


def is_bot(user: Json) -> bool:
    login = text(user, "login") or ""
    return text(user, "type") == "Bot" or login.endswith("[bot]")
