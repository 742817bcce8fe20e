"""Option types: a bad value is one usage error that names the accepted forms.

Each type parses the text once, in click, so a command receives a timedelta, a
datetime or a checked string and never a value it would have to refuse later
with a traceback.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import click
import httpx

from ..clock import parse_iso
from ..timing import parse_duration, valid_cron

# Generic in the click that mypy checks against, but not in every click the pin
# allows (nor with the same parameters): subscripted for the type checker only.
if TYPE_CHECKING:
    ParamType = click.ParamType[Any, Any]
else:
    ParamType = click.ParamType

SHOWN = 80  # characters of a refused value repeated in the error


def _shown(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "…")


class Duration(ParamType):
    """A positive length of time: ``30m``, ``2h``, ``1d``, ``1h30m`` or ISO-8601 ``PT30M``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        try:
            length = parse_duration(str(value))
        except ValueError:
            self.fail(
                f"{_shown(value)} is not a duration: use e.g. 30m, 2h, 1d, 1h30m or PT30M",
                param,
                ctx,
            )
        if length <= timedelta(0):
            self.fail(f"{_shown(value)} is no time at all: use e.g. 30m, 2h or 1d", param, ctx)
        return length


class Time(ParamType):
    """An ISO-8601 time; without an offset it is read in the configured timezone."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            return parse_iso(str(value).strip())
        except ValueError:
            self.fail(
                f"{_shown(value)} is not an ISO-8601 time: use e.g. 2026-03-01T18:00:00Z,"
                " 2026-03-01T18:00+01:00 or 2026-03-01 (no offset: PULSEHOOK_TIMEZONE)",
                param,
                ctx,
            )


class Cron(ParamType):
    """A five-field cron expression."""

    name = "cron"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip()
        if not valid_cron(text):
            self.fail(
                f"{_shown(value)} is not a cron expression: use five fields,"
                " minute hour day month weekday, e.g. '0 22 * * *'",
                param,
                ctx,
            )
        return text


class RepoName(ParamType):
    """``owner/name``."""

    name = "owner/name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip()
        owner, slash, repo = text.partition("/")
        if not (slash and owner and repo) or "/" in repo or any(c.isspace() for c in text):
            self.fail(
                f"{_shown(value)} is not a repository: use owner/name, e.g. octo-org/api",
                param,
                ctx,
            )
        return text


class HttpUrl(ParamType):
    """An ``http://`` or ``https://`` URL with a host."""

    name = "url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip()
        try:
            url = httpx.URL(text)
        except (httpx.InvalidURL, ValueError):
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            self.fail(
                f"{_shown(value)} is not an http(s) URL: use e.g. https://github.example.com/api/v3",
                param,
                ctx,
            )
        return text


DURATION = Duration()
TIME = Time()
CRON = Cron()


class RepoOrName(ParamType):
    """``owner/name``, or a bare ``name`` whose owner is the organisation given."""

    name = "owner/name|name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip()
        if "/" in text:
            return REPO.convert(value, param, ctx)
        if not text or any(c.isspace() for c in text) or len(text) > 100:
            self.fail(
                f"{_shown(value)} is not a repository: use owner/name, or a name with --org",
                param,
                ctx,
            )
        return text


REPO = RepoName()
REPO_OR_NAME = RepoOrName()
HTTP_URL = HttpUrl()
