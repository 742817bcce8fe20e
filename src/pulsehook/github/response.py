"""GitHub's answers as the client hands them on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

SHORT = 200  # characters of GitHub's message kept in an error

_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]*)"')


@dataclass(frozen=True)
class Response:
    """An answer, decoded. ``cached``: GitHub said 304 and ``body`` is the remembered one."""

    status: int
    body: Any
    headers: httpx.Headers
    url: str
    cached: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        """GitHub's error message (``{"message": ...}``), shortened, or ""."""
        text = self.body.get("message") if isinstance(self.body, dict) else None
        return " ".join(str(text or "").split())[:SHORT]

    def link(self, rel: str = "next") -> str | None:
        for url, rels in _LINK.findall(self.headers.get("link", "")):
            if rel in rels.split():
                return str(url)
        return None


def decode(rsp: httpx.Response) -> Any:
    if not rsp.content:
        return None
    try:
        return rsp.json()
    except ValueError:
        return {"message": rsp.text}
