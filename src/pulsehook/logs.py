"""Where log records go, and what they may not carry.

Only pulsehook's own loggers follow ``--log-level``: third-party libraries
(httpx, slack-sdk, notifiers, urllib3, ...) log request URLs and bodies at
DEBUG and INFO, and a Slack or Discord webhook URL is a bearer credential, so
they stay at WARNING whatever the level. Every record then passes one
redacting filter that replaces each known secret (webhook secrets, the API
token, heartbeat tokens, the GitHub token, channel credentials) by ``***``,
tracebacks included. Access-log lines lose their query string, where a
``?token=`` would be.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
MIN_SECRET = 6  # shorter values would mask ordinary words; no secret is that short
# Loggers whose records stay at WARNING and above, whatever --log-level says.
THIRD_PARTY_LEVEL = logging.WARNING
# uvicorn's own lines (started, shutting down) are operational news, not debug chatter.
OWN = ("pulsehook", "uvicorn", "uvicorn.error")


class Redactor(logging.Filter):
    """Replaces every registered secret in a record's message and traceback."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()

    def add(self, values: Iterable[str | None]) -> None:
        found = set(self._secrets)
        for value in values:
            if value and len(value) >= MIN_SECRET:
                found.update({value, quote(value, safe="")})
        # Longest first, so a secret containing another is masked whole.
        self._secrets = tuple(sorted(found, key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class WithoutQuery(logging.Filter):
    """uvicorn's access line, its path without the query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        # uvicorn.access logs (client, method, path with query, http version, status).
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


def configure(level: str, *, access_log: bool) -> Redactor:
    """One handler on stderr for every logger, with the redacting filter on it."""
    redactor = Redactor()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(redactor)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(THIRD_PARTY_LEVEL)
    numeric = logging.getLevelName(level.upper())
    for name in OWN:
        logger = logging.getLogger(name)
        logger.setLevel(numeric)
        logger.handlers.clear()  # uvicorn's own handlers would print a second format
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = True
    access.setLevel(logging.INFO if access_log else logging.WARNING)
    access.addFilter(WithoutQuery())
    return redactor
