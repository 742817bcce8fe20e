"""Typed models of what the API takes (bodies, query and path parameters) and of some
of what it answers, and the reading of a request through them.

The handlers read every input through these models and ``openapi.py`` describes the
API from the same models, so what is documented is what is enforced. Every bound
here keeps a value inside what the code behind it can hold: ids and limits within
SQLite's 64-bit integers, times and durations far from ``datetime``'s year 9999,
strings short enough that an error message quoting a field stays small.

A body that cannot be read as a JSON object answers 400; one that can but breaks a
model, and any bad query or path parameter, 422. The message names each field and
why, from pydantic's errors, and never repeats the input itself.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError
from starlette.requests import Request

from ..clock import parse_iso
from ..errors import BadRequest, InputInvalid, PayloadTooLarge
from ..timing import last_due, next_due, parse_duration, valid_cron

INT64_MAX = 2**63 - 1  # SQLite's largest integer
# Times a silence may name: the end plus the longest duration stays far below
# datetime's year 9999 whatever the offset it was given in.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
LONGEST = timedelta(days=36_600)  # a hundred years and then some
MAX_BODY_BYTES = 64 * 1024  # a silence is well under 8 KiB even with every character escaped
MAX_MESSAGE = 1000  # characters of an error message
MAX_PROBLEMS = 5  # field errors named in one message
MAX_NAME = 40  # characters of a field name quoted in a message (unknown keys are input)
# Where a cron expression is tried once to see that it ever fires (pure: no clock).
CRON_PROBE = datetime(2026, 1, 1, tzinfo=UTC)

M = TypeVar("M", bound=BaseModel)


class Model(BaseModel):
    """An input: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _time(value: object) -> datetime:
    if not isinstance(value, str):
        raise PydanticCustomError("time_type", "must be an ISO-8601 time as a string")
    if len(value) > 64:
        raise PydanticCustomError("time_too_long", "is too long for a time (64 characters)")
    try:
        when = parse_iso(value)
    except ValueError:
        raise PydanticCustomError(
            "time_parsing", "must be an ISO-8601 time, e.g. 2026-05-01T08:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise PydanticCustomError("time_naive", "needs a timezone (e.g. Z)")
    try:
        when = when.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 moved by its offset
        when = EARLIEST - LONGEST
    if not EARLIEST <= when <= LATEST:
        raise PydanticCustomError("time_range", "must be from 1970 to 9000 (UTC)")
    return when


def _duration(value: object) -> timedelta | None:
    """As ``parse_duration``, bounded; an empty value (``""``, ``0``) is no duration."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PydanticCustomError("duration_type", "must be a string such as 1h30m or seconds")
    if not value:
        return None
    if isinstance(value, str) and len(value) > 64:
        raise PydanticCustomError("duration_too_long", "is too long for a duration")
    try:
        delta = parse_duration(value)
    except OverflowError:  # past timedelta's 999999999 days
        delta = timedelta.max
    except ValueError as exc:
        reason = "cannot be negative" if "negative" in str(exc) else "is not a duration"
        raise PydanticCustomError(
            "duration_parsing", f"{reason} (use e.g. PT10M, 10m, 1h30m, 2d or seconds)"
        ) from None
    if delta > LONGEST:
        raise PydanticCustomError("duration_range", "must be at most 36600 days")
    return delta


def _cron(value: object) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("cron_type", "must be a cron expression as a string")
    if len(value) > 100:
        raise PydanticCustomError("cron_too_long", "is too long for a cron expression")
    try:
        # A valid expression may never fire (30 February): every later reading of
        # the silence would fail on it.
        fires = valid_cron(value)
        if fires:
            next_due(value, CRON_PROBE)
            last_due(value, CRON_PROBE)
    except (ValueError, ArithmeticError, LookupError, TypeError):
        fires = False
    if not fires:
        raise PydanticCustomError("cron_invalid", "is not a cron expression that fires")
    return value


Time = Annotated[
    datetime,
    PlainValidator(_time),
    WithJsonSchema({"type": "string", "format": "date-time", "maxLength": 64}),
]
Duration = Annotated[
    timedelta | None,
    PlainValidator(_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": 64, "examples": ["PT10M", "1h30m", "2d"]},
                {"type": "number", "minimum": 0, "maximum": LONGEST.total_seconds()},
                {"type": "null"},
            ],
            "description": "PT10M, 10m, 1h30m, 2d, or seconds; at most 36600 days",
        }
    ),
]
Cron = Annotated[
    str,
    PlainValidator(_cron),
    WithJsonSchema({"type": "string", "maxLength": 100, "examples": ["0 22 * * 1-5"]}),
]
Pattern = Annotated[
    str,
    StringConstraints(max_length=200),
    Field(description="fnmatch pattern (*, ?, [...]); empty or absent: every one"),
]


class SilenceIn(Model):
    """``POST /api/v1/silences``: hold back notices of matching alerts."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["rule"], "properties": {"rule": {"type": "string", "minLength": 1}}},
                {"required": ["repo"], "properties": {"repo": {"type": "string", "minLength": 1}}},
            ]
        }
    )

    rule: Pattern | None = None
    repo: Pattern | None = None
    starts_at: Annotated[Time | None, Field(description="default: now")] = None
    ends_at: Annotated[Time | None, Field(description="default: starts_at + duration")] = None
    duration: Duration = None
    cron: Annotated[
        Cron | None, Field(description="recurring: holds for `duration` after each cron time")
    ] = None
    comment: str | None = Field(None, max_length=2000)


Limit = Annotated[int, Field(ge=1, description="how many, newest first")]


class AlertsQuery(Model):
    state: Literal["firing", "resolved"] | None = None
    rule: str | None = Field(None, max_length=200, description="only this rule's alerts")
    limit: Annotated[Limit, Field(le=1000)] = 100


class OutboxQuery(Model):
    status: Literal["pending", "sent", "parked", "merged"] | None = None
    limit: Annotated[Limit, Field(le=1000)] = 100


# store.deliveries.STATUSES (a test keeps the two the same)
DeliveryStatus = Literal["pending", "processed", "ignored", "error"]


class DeliveriesQuery(Model):
    status: DeliveryStatus | None = None
    event: str | None = Field(None, max_length=100, description="event name (X-GitHub-Event)")
    limit: Annotated[Limit, Field(le=500)] = 50
    before: (
        Annotated[int, Field(ge=1, le=INT64_MAX, description="page: ids below this (next_before)")]
        | None
    ) = None


class RecoveryQuery(Model):
    outcome: Literal["requested", "failed", "recovered", "expired", "abandoned"] | None = None
    limit: Annotated[Limit, Field(le=1000)] = 100


class SummaryItemsQuery(Model):
    status: Literal["ERROR", "MISSING", "OK"] | None = None
    repo: str | None = Field(None, max_length=200, description="owner/name")
    implicit: bool | None = Field(
        None, description="true: expected from a workflow file's schedule, nothing declared"
    )
    limit: Annotated[Limit, Field(le=5000)] = 500


class MetricsQuery(Model):
    days: Annotated[int, Field(ge=1, le=3650, description="history length in days")] = 90


class VulnerabilitiesQuery(Model):
    severity: Literal["critical", "high", "medium", "low", "unknown"] | None = None
    state: str | None = Field(None, max_length=50, description="open, fixed, dismissed…")
    repo: str | None = Field(None, max_length=200, description="owner/name")
    package: str | None = Field(None, max_length=300, description="package name")
    limit: Annotated[Limit, Field(le=5000)] = 200


class BuildsQuery(Model):
    repo: str | None = Field(None, max_length=200, description="owner/name")
    branch: str | None = Field(None, max_length=300, description="branch")
    status: str | None = Field(None, max_length=50, description="success, failure, cancelled…")
    limit: Annotated[Limit, Field(le=5000)] = 100


class ReposQuery(Model):
    """``GET /api/v1/repos``: one page, sorted and filtered by the server."""

    limit: Annotated[Limit, Field(le=1000, description="repositories per page")] = 100
    cursor: str | None = Field(
        None, max_length=1000, description="next_cursor of the page before (same sort)"
    )
    sort: Literal["name", "score", "-score"] = "name"
    owner: str | None = Field(None, max_length=100, description="the owner's login, any case")
    q: str | None = Field(None, max_length=100, description="a part of the full name, any case")
    state: Literal["success", "failure"] | None = Field(None, description="the build state")
    min_score: float | None = Field(None, ge=0, le=100)
    max_score: float | None = Field(None, ge=0, le=100)


def encode_cursor(sort: str, key: list[Any]) -> str:
    """An opaque cursor: the sort it belongs to and the last key of its page."""
    raw = json.dumps({"s": sort, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, length: int) -> list[Any]:
    """The key a cursor continues after; 422 naming ``cursor`` if it is not one."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key = data["k"] if isinstance(data, dict) and data.get("s") == sort else None
    except (ValueError, TypeError, KeyError):
        key = None
    if not (
        isinstance(key, list)
        and len(key) == length
        and all(isinstance(k, str | int | float) and not isinstance(k, bool) for k in key)
    ):
        raise invalid(f"query parameter 'cursor': not a cursor of a page sorted by {sort!r}")
    return key


class NoQuery(Model):
    """An endpoint that takes no parameters."""


class SilencePath(Model):
    silence_id: Annotated[int, Field(ge=1, le=INT64_MAX, description="the silence's id")]


class NoticePath(Model):
    notice_id: Annotated[int, Field(ge=1, le=INT64_MAX, description="the notice's id")]


class RepoPath(Model):
    owner: str = Field(max_length=100, description="repository owner")
    name: str = Field(max_length=100, description="repository name")


class BareRepoPath(Model):
    name: str = Field(max_length=100, description="repository name (when only one has it)")


# Answers, for the description (the handlers build them as plain dicts).


class ErrorDetail(BaseModel):
    code: str
    message: str


class Error(BaseModel):
    """The one error shape of the whole API."""

    error: ErrorDetail


class Silence(BaseModel):
    id: int
    rule: str | None
    repo: str | None
    starts_at: str
    ends_at: str | None
    cron: str | None
    duration_s: int | None
    comment: str | None
    created_at: str
    active: bool


class Silences(BaseModel):
    silences: list[Silence]


class SilenceCreated(BaseModel):
    id: int


class SilenceDeleted(BaseModel):
    deleted: int


class ScoreCoverage(BaseModel):
    """How much of a health score rests on data (not test coverage): the components
    with data, of all, and their weight as a percentage of all the weight."""

    components: int = Field(ge=0, description="components with data")
    of: int = Field(ge=0, description="components of the formula")
    weight: float = Field(ge=0, le=100, description="their weight, percent of all the weight")


_PROVISIONAL = (
    "the score rests on less than half the weight (coverage.weight < 50):"
    " shown grey and marked provisional, never green; false without a score"
)


class ScoredRepository(BaseModel):
    """One repository (``GET /api/v1/repos/{owner}/{name}``, each of ``/api/v1/repos``):
    the fields about its score; the seed's metrics and pulsehook's details beside."""

    model_config = ConfigDict(extra="allow")

    name: str
    health_score: float | None = Field(description="0-100, one decimal; null: no data at all")
    coverage: ScoreCoverage | None = Field(description="null before the first score")
    provisional: bool = Field(description=_PROVISIONAL)


class RepoHealth(BaseModel):
    """A repository's score explained (``GET /api/v1/repos/{owner}/{name}/metrics``)."""

    model_config = ConfigDict(extra="allow")

    name: str
    health_score: float | None
    coverage: ScoreCoverage | None = Field(description="null before the first score")
    provisional: bool = Field(description=_PROVISIONAL)
    components: dict[str, Any] = Field(
        description="by name: score (null: no data), weight, effective_weight, reason, inputs"
    )
    warnings: list[str]
    history: list[dict[str, Any]]


# Reading a request through the models.


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


Source = Literal["body", "query", "path"]
_NOUNS = {"body": "body field", "query": "query parameter", "path": "path parameter"}


def problems(exc: ValidationError, source: Source) -> str:
    """One message naming each failing field and why (pure; the input is not repeated,
    and a field name, which may be an unknown key of the input, is clipped)."""
    found = exc.errors(include_url=False, include_input=False, include_context=False)
    parts = []
    for err in found[:MAX_PROBLEMS]:
        where = ".".join(_clip(str(p), MAX_NAME) for p in err["loc"])
        noun = _NOUNS[source] if where else source
        parts.append(f"{noun} '{where}': {err['msg']}" if where else f"{noun}: {err['msg']}")
    if len(found) > MAX_PROBLEMS:
        parts.append(f"and {len(found) - MAX_PROBLEMS} more")
    return _clip("; ".join(parts), MAX_MESSAGE)


def invalid(message: str) -> InputInvalid:
    """Input that was read but breaks its model: 422."""
    return InputInvalid(message)


def validated(model: type[M], data: dict[str, Any], source: Source) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(problems(exc, source)) from None


def json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or BadRequest saying why not (pure)."""
    if not raw.strip():
        raise BadRequest("body is empty: a JSON object is needed")
    try:
        # orjson refuses what json would let through: invalid UTF-8, lone
        # surrogates (SQLite cannot store them), NaN, nesting past 1024 levels.
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(_clip(f"body is not JSON: {exc.msg}", MAX_MESSAGE)) from None
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a value")
        raise BadRequest(f"body must be a JSON object, not {kind}")
    return value


async def read_body(request: Request, model: type[M]) -> M:
    """The body through ``model``: 413 past ``MAX_BODY_BYTES``, 400 if it is not a JSON
    object, 422 if the object breaks the model."""
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and len(declared) < 20 and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body over {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return validated(model, json_object(b"".join(chunks)), "body")


def read_query(request: Request, model: type[M]) -> M:
    """The query string through ``model``; an empty value is as if not given."""
    given = {k: v for k, v in request.query_params.items() if v != ""}
    return validated(model, given, "query")


def read_path(request: Request, model: type[M]) -> M:
    return validated(model, dict(request.path_params), "path")


class DependenciesQuery(Model):
    """``GET /api/v1/dependencies``: one package's users, or the packages most used."""

    package: str | None = Field(
        None, min_length=1, max_length=300, description="a package name: who uses it"
    )
    ecosystem: str | None = Field(
        None, max_length=50, description="npm, pip, rubygems, maven, go, actions…"
    )
    q: str | None = Field(None, max_length=300, description="a part of a package's name")
    limit: Annotated[Limit, Field(le=1000)] = 100
    offset: Annotated[int, Field(ge=0, le=1_000_000)] = 0
