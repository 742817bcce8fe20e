"""Where log records go, and what they may not carry.

Only pulsehook's own loggers follow ``--log-level``: third-party libraries
(httpx, slack-sdk, notifiers, urllib3, ...) log request URLs and bodies at
DEBUG and INFO, and a Slack or Discord webhook URL is a bearer credential, so
they stay at WARNING whatever the level. Every record then passes one
redacting filter that replaces each known secret (webhook secrets, the API
token, heartbeat tokens, the GitHub token, channel credentials) by ``***``,
tracebacks included. Access-log lines lose their query string, where a
``?token=`` would be.

Two formats, one per stream (``PULSEHOOK_LOG_FORMAT``): ``text``, a line per
record with control characters escaped (a payload's string cannot forge a
second line), and ``json``, one object per line with stable field names:
``time``, ``level``, ``logger``, ``message``, the record's fields (``event``,
``delivery``, ``outcome``, ``channel``, ...) and ``exception``. ``note`` writes
a record with fields: in text they follow the message as ``key=value``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
MIN_SECRET = 6  # shorter values would mask ordinary words; no secret is that short
# Loggers whose records stay at WARNING and above, whatever --log-level says.
THIRD_PARTY_LEVEL = logging.WARNING
# uvicorn's own lines (started, shutting down) are operational news, not debug chatter.
OWN = ("pulsehook", "uvicorn", "uvicorn.error")
FIELD_LIMIT = 300  # characters of one field's value kept in a line
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BARE = re.compile(r"[^\s=\"]+")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{ord(char):02x}")


def clean(text: str) -> str:
    """``text`` on one line: control characters escaped."""
    return _CONTROL.sub(_escape, text)


def _value(value: Any) -> Any:
    if isinstance(value, str) and len(value) > FIELD_LIMIT:
        return value[:FIELD_LIMIT] + "…"
    return value


def note(
    logger: logging.Logger, level: int, message: str, *, trace: bool = False, **fields: Any
) -> None:
    """Log ``message`` with ``fields`` (None values left out), if the level is on;
    ``trace``: with the exception being handled."""
    if not logger.isEnabledFor(level):
        return
    kept = {k: _value(v) for k, v in fields.items() if v is not None}
    logger.log(level, message, exc_info=trace, extra={"fields": kept})


def _text_fields(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        parts.append(f"{key}={text if _BARE.fullmatch(text) else json.dumps(text)}")
    return " ".join(parts)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` on one line (tracebacks after it)."""

    def __init__(self) -> None:
        super().__init__(FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        message = record.getMessage()
        if fields:
            message = f"{message} {_text_fields(fields)}"
        record.message = clean(message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in (getattr(record, "fields", None) or {}).items():
            entry.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


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
        fields = getattr(record, "fields", None)
        if fields:
            record.fields = {
                k: self.redact(v) if isinstance(v, str) else v for k, v in fields.items()
            }
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


def configure(level: str, *, access_log: bool, fmt: str = "text") -> Redactor:
    """One handler on stderr for every logger, with the redacting filter on it."""
    redactor = Redactor()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
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
