"""Generic webhooks: each notice POSTed as JSON to any URL, signed as GitHub signs.

Two bodies: pulsehook's own (``format = "pulsehook"``, the default) and Prometheus
Alertmanager's webhook payload, version 4 (``format = "alertmanager"``), which a
receiver written for Alertmanager reads as it is. With a ``secret``, the HMAC-SHA256
of the exact body bytes goes in ``X-Pulsehook-Signature-256`` as ``sha256=<hex>``:
GitHub's ``X-Hub-Signature-256`` convention, so a receiver checks it with the code
it checks GitHub's with.

``X-Pulsehook-Delivery`` is a hash of the notice (its channel and everything the
message says), so every attempt of one notice carries the same id and a receiver
can drop the repeat of one it already took. Answers are classified by
``result.from_status`` as every channel's are: 408, 429 and 5xx retried (with
``Retry-After``), other 4xx parked; a timeout or a refused connection is retried.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from ..clock import SystemClock, iso
from ..github.verify import sign
from .base import ChannelConfig, ChannelKind, Message, SendResult
from .result import attempt, bad_url, from_status, scrub

FORMATS = ("pulsehook", "alertmanager")
TIMEOUT = 10.0  # seconds per request, unless the channel's ``timeout`` says otherwise
MAX_TIMEOUT = 60.0  # the dispatcher gives up on a send after this long anyway
ANSWER_LIMIT = 64 * 1024  # bytes of a receiver's answer read (only the start is kept)
USER_AGENT = "pulsehook"
SIGNATURE = "X-Pulsehook-Signature-256"
EVENT = "X-Pulsehook-Event"
DELIVERY = "X-Pulsehook-Delivery"
# Headers a channel's ``headers`` may not set: pulsehook's own, and the framing.
RESERVED = frozenset(
    {"content-type", "content-length", "transfer-encoding", "connection", "host", "user-agent"}
)
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP header name
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but the tab


def _options_problem(channel: ChannelConfig) -> str | None:
    """Why this channel's options can never send; None when they can."""
    if not channel.options.get("url"):
        return "url is not set"
    if (fmt := channel.options.get("format", "pulsehook")) not in FORMATS:
        return f"format must be one of {', '.join(FORMATS)}, not {fmt!r}"
    secret = channel.options.get("secret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        return "secret must be a non-empty string"
    timeout = channel.options.get("timeout", TIMEOUT)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_TIMEOUT
    ):
        return f"timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT:g}"
    external = channel.options.get("external_url")
    if external is not None and not isinstance(external, str):
        return "external_url must be a string"
    return _headers_problem(channel.options.get("headers"))


def _headers_problem(headers: Any) -> str | None:
    # Header values may be credentials: a problem names the header, never its value.
    if headers is None:
        return None
    if not isinstance(headers, Mapping):
        return "headers must be a table of header names and values"
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            return f"headers: {str(name)[:60]!r} is not a header name"
        if name.lower() in RESERVED or name.lower().startswith("x-pulsehook-"):
            return f"headers: {name} is set by pulsehook"
        if not isinstance(value, str):
            return f"headers.{name} must be a string"
        if _BAD_VALUE.search(value) or not value.isascii():
            return f"headers.{name} must be printable ASCII"
    return None


def _scrubbing(channel: ChannelConfig) -> ChannelConfig:
    """The channel with each header value (and its credential after a scheme word,
    "Bearer xyz") as a secret option of its own, so scrubbing finds them."""
    headers = channel.options.get("headers")
    if not isinstance(headers, Mapping) or not headers:
        return channel
    extra: dict[str, str] = {}
    for name, value in headers.items():
        text = str(value)
        extra[f"headers.{name}"] = text
        parts = text.split()
        if len(parts) > 1 and len(parts[-1]) >= 8:
            extra[f"headers.{name}.credential"] = parts[-1]
    return dataclasses.replace(
        channel,
        options={**channel.options, **extra},
        secret_keys=channel.secret_keys | frozenset(extra),
    )


def _plain(details: dict[str, Any]) -> dict[str, Any]:
    # Round-trip through JSON so odd values (datetimes, sets...) can't fail the request.
    plain: dict[str, Any] = json.loads(json.dumps(details, default=str))
    return plain


def pulsehook_body(message: Message) -> dict[str, Any]:
    """pulsehook's own body: what every notice says, whatever its state."""
    return {
        "version": 1,
        "state": message.state,
        "title": message.title,
        "text": message.text,
        "severity": message.severity,
        "url": message.url,
        "source": message.source,
        "dedup_key": message.dedup_key,
        "details": _plain(message.details),
    }


def fingerprint(key: str) -> str:
    """16 hexadecimal digits, the same for every notice of one alert."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _group_fields(dedup_key: str, rule: str) -> dict[str, str]:
    """A grouped notice's ``group_by`` values, read from its key:
    ``group|<rule>[|field=value…]``."""
    parts = dedup_key.split("|")
    if len(parts) < 2 or parts[0] != "group" or parts[1] != rule:
        return {}
    return dict(part.split("=", 1) for part in parts[2:] if "=" in part)


def _alert(
    *,
    status: str,
    labels: dict[str, str],
    summary: str,
    description: str,
    starts: str,
    ends: str | None,
    url: str | None,
    key: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": summary, "description": description},
        "startsAt": starts,
        "endsAt": ends if status == "resolved" and ends else ZERO_TIME,
        "generatorURL": url or "",
        "fingerprint": fingerprint(key),
    }


def _alerts(message: Message, now: str) -> tuple[list[dict[str, Any]], int]:
    """The notice as Alertmanager alerts, and how many were left out."""
    details = message.details
    status = "resolved" if message.state == "resolved" else "firing"
    rules = details.get("rules")
    if isinstance(rules, list) and ("firing" in details or "resolved" in details):
        return _group_alerts(message, [str(r) for r in rules], now)
    rule = str(details.get("rule") or f"pulsehook_{message.state}")
    labels = {"alertname": rule, "severity": str(details.get("severity") or message.severity)}
    if details.get("repo"):
        labels["repo"] = str(details["repo"])
    if details.get("fact"):
        labels["fact"] = str(details["fact"])
    started = details.get("started_at") or details.get("notified_at") or now
    alert = _alert(
        status=status,
        labels=labels,
        summary=message.title,
        description=message.text,
        starts=str(started),
        ends=str(details.get("resolved_at") or now),
        url=message.url,
        key=message.dedup_key or message.title,
    )
    return [alert], 0


def _group_alerts(message: Message, rules: list[str], now: str) -> tuple[list[dict[str, Any]], int]:
    """A grouped notice: one alert per repository it names when it speaks for one
    rule (it carries no per-alert times: they are the send's), else one alert."""
    details = message.details
    severity = message.severity
    if len(rules) != 1:
        status = "resolved" if message.state == "resolved" else "firing"
        labels = {"alertname": ",".join(rules) or "pulsehook_group", "severity": severity}
        alert = _alert(
            status=status,
            labels=labels,
            summary=message.title,
            description=message.text,
            starts=now,
            ends=now,
            url=message.url,
            key=message.dedup_key or message.title,
        )
        return [alert], 0
    (rule,) = rules
    fields = _group_fields(message.dedup_key, rule)
    firing = [str(r) for r in details.get("firing") or []]
    still = set(firing)
    # A repository with one subject still firing and another resolved: it fires.
    resolved = [str(r) for r in details.get("resolved") or [] if str(r) not in still]
    alerts = []
    for status, repos in (("firing", firing), ("resolved", resolved)):
        word = "FIRING" if status == "firing" else "RESOLVED"
        for repo in repos:
            labels = {"alertname": rule, **fields, "severity": severity, "repo": repo}
            alerts.append(
                _alert(
                    status=status,
                    labels=labels,
                    summary=f"[{word}] {rule} — {repo}",
                    description=message.title,
                    starts=now,
                    ends=now,
                    url=message.url,
                    key=f"{rule}|{repo}",
                )
            )
    count = details.get("firing_count")
    left_out = max(0, count - len(firing)) if isinstance(count, int) else 0
    return alerts, left_out


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    """The pairs every map has."""
    if not maps:
        return {}
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def _group_key(labels: dict[str, str]) -> str:
    """Alertmanager's form: the route's matchers, then the group's labels."""
    pairs = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(labels.items()))
    return f"{{}}:{{{pairs}}}"


def alertmanager_body(channel: ChannelConfig, message: Message, now: str) -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4) for the notice; ``now``: the time
    given to what the notice has no time for (RFC 3339, UTC)."""
    alerts, left_out = _alerts(message, now)
    common_labels = _common([a["labels"] for a in alerts])
    alertname = common_labels.get("alertname", alerts[0]["labels"]["alertname"])
    group_labels = {"alertname": alertname, **_group_fields(message.dedup_key, alertname)}
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": _group_key(group_labels),
        "truncatedAlerts": left_out,
        "status": "firing" if firing else "resolved",
        "receiver": channel.name,
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": channel.options.get("external_url") or "",
        "alerts": alerts,
    }


def body(channel: ChannelConfig, message: Message, now: str | None = None) -> bytes:
    """The exact bytes sent (and signed) for ``message`` on ``channel``."""
    if channel.options.get("format", "pulsehook") == "alertmanager":
        data = alertmanager_body(channel, message, now or iso(SystemClock().now()))
    else:
        data = pulsehook_body(message)
    return orjson.dumps(data)


def delivery_id(channel: ChannelConfig, message: Message) -> str:
    """The same for every attempt of one notice, different for another notice."""
    said = {
        "channel": channel.name,
        "format": channel.options.get("format", "pulsehook"),
        "message": dataclasses.asdict(message),
    }
    raw = orjson.dumps(said, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(raw).hexdigest()[:32]


def headers(channel: ChannelConfig, message: Message, content: bytes) -> dict[str, str]:
    """The channel's own headers, then pulsehook's (which they cannot replace)."""
    out = {str(k): str(v) for k, v in (channel.options.get("headers") or {}).items()}
    out |= {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT: message.state,
        DELIVERY: delivery_id(channel, message),
    }
    if secret := channel.options.get("secret"):
        out[SIGNATURE] = sign(content, str(secret).encode())
    return out


@functools.cache
def _client() -> httpx.Client:
    # One pool for every webhook channel; redirects are not followed (a 3xx is parked).
    return httpx.Client(follow_redirects=False)


def _post(url: str, content: bytes, sent: dict[str, str], timeout: float) -> tuple[int, str, Any]:
    """(status, the start of the answer, Retry-After), reading at most ANSWER_LIMIT."""
    with _client().stream("POST", url, content=content, headers=sent, timeout=timeout) as rsp:
        read = bytearray()
        for chunk in rsp.iter_bytes():
            read += chunk
            if len(read) >= ANSWER_LIMIT:
                break
        text = bytes(read[:ANSWER_LIMIT]).decode(rsp.encoding or "utf-8", errors="replace")
        return rsp.status_code, text, rsp.headers.get("Retry-After")


def send(channel: ChannelConfig, message: Message) -> SendResult:
    shown = _scrubbing(channel)

    def call() -> SendResult:
        if problem := _options_problem(channel):
            return SendResult(ok=False, permanent=True, error=problem)
        if invalid := bad_url(channel, "url"):
            return invalid
        content = body(channel, message)
        sent = headers(channel, message, content)
        timeout = float(channel.options.get("timeout", TIMEOUT))
        try:
            status, text, retry_after = _post(str(channel.options["url"]), content, sent, timeout)
        except httpx.TimeoutException:
            return SendResult(ok=False, error=f"timed out after {timeout:g} s")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as e:
            # A request that cannot be made fails alike on every retry.
            return SendResult(ok=False, permanent=True, error=scrub(_named(e), shown))
        except httpx.RequestError as e:  # refused, reset, cut short: worth retrying
            return SendResult(ok=False, error=scrub(_named(e), shown))
        return from_status(status, text, retry_after, shown)

    return attempt(shown, call)


def _named(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


KIND = ChannelKind(
    name="webhook",
    send=send,
    required=frozenset({"url"}),
    # The signing secret, and extra headers (an Authorization header's token).
    secrets=frozenset({"secret", "headers"}),
    env={},  # configured by a [channels.NAME] table only
    rate=10.0,  # a receiver of our own choosing: paced only against bursts
)
