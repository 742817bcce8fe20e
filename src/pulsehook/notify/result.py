"""One classification of notifiers' answers for every transport, with secrets scrubbed.

notifiers 2.0 never raises for HTTP failures: ``Response.errors`` holds the body text
(or, with no answer at all, ``str()`` of the requests exception, which names the URL's
*path*: the secret part of a Slack/Discord webhook). Status and headers are only on
``Response.response``, the raw ``requests.Response`` (``None`` when nothing answered).
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from notifiers.exceptions import BadArguments, NoSuchNotifierError

from ..clock import SystemClock
from ..retry_after import parse_retry_after
from .base import ALWAYS_SECRET, ChannelConfig, SendResult

SHORT = 300  # characters of provider text kept in a SendResult


def secret_values(channel: ChannelConfig) -> Iterator[str]:
    for key in channel.secret_keys | ALWAYS_SECRET:
        value = channel.options.get(key)
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None or str(item) == "":
                continue
            text = str(item)
            yield text
            yield quote(text, safe="")
            parts = urlsplit(text)
            if parts.scheme and parts.netloc:
                # requests' connection errors show "url: /path?query" without the host.
                tail = parts.path + (f"?{parts.query}" if parts.query else "")
                if len(parts.path) > 1:
                    yield tail
                    yield parts.path
                if parts.query:
                    yield parts.query


def scrub(text: str | None, channel: ChannelConfig) -> str | None:
    """``text`` with every secret option value (and the webhook URL) replaced by ***,
    then shortened (scrubbing first, so a cut can't leave half a secret behind)."""
    if not text:
        return None
    # Longest first, so a full URL is replaced before its path is.
    for secret in sorted(set(secret_values(channel)), key=len, reverse=True):
        text = text.replace(secret, "***")
    return short(text)


def short(text: str | None, limit: int = SHORT) -> str | None:
    if not text:
        return None
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def from_response(rsp: Any, channel: ChannelConfig) -> SendResult:
    """A notifiers ``Response`` -> SendResult (ok / transient / permanent)."""
    http = rsp.response
    status: int | None = getattr(http, "status_code", None)
    if rsp.ok:
        return SendResult(ok=True, status=status, response=scrub(http.text, channel))
    detail = "; ".join(str(e) for e in rsp.errors or []) or "no detail"
    if http is None or status is None:
        # Nothing answered: connection refused, DNS failure, timeout. Worth retrying.
        return SendResult(ok=False, error=scrub(detail, channel))
    return from_status(status, http.text, http.headers.get("Retry-After"), channel, detail)


def from_status(
    status: int,
    body: str | None,
    retry_after: str | None,
    channel: ChannelConfig,
    detail: str | None = None,
) -> SendResult:
    """An HTTP answer -> SendResult: 2xx sent; 408, 429 and 5xx retried; other 4xx parked."""
    text = scrub(body, channel)
    if 200 <= status < 300:
        return SendResult(ok=True, status=status, response=text)
    transient = status in (408, 429) or status >= 500
    return SendResult(
        ok=False,
        permanent=not transient,
        status=status,
        # Read as the answer arrives: an HTTP date counts from the wall clock's now.
        retry_after=parse_retry_after(retry_after, SystemClock().now()) if transient else None,
        error=scrub(f"HTTP {status}: {detail or body or 'no detail'}", channel),
        response=text,
    )


def attempt(channel: ChannelConfig, call: Callable[[], SendResult]) -> SendResult:
    """Run a send; a refusal of the channel's options and a network failure become data.

    Anything else raised is a bug in the transport (or the provider's code), and a retry
    would run the same code again: it propagates, for the dispatcher to log with its
    traceback and park the notice.
    """
    try:
        return call()
    except BadArguments as e:  # the channel's options don't fit the provider's schema
        return SendResult(ok=False, permanent=True, error=scrub(str(e.message), channel))
    except NoSuchNotifierError:
        return SendResult(
            ok=False, permanent=True, error=f"unknown notifiers provider {channel.kind!r}"
        )
    except http.client.InvalidURL as e:  # a URL the request cannot carry (a space in it)
        return SendResult(ok=False, permanent=True, error=scrub(f"InvalidURL: {e}", channel))
    except (OSError, http.client.HTTPException) as e:
        # Unreachable, refused, reset, timed out, or an answer cut short: worth retrying.
        return SendResult(ok=False, error=scrub(f"{type(e).__name__}: {e}", channel))


def bad_url(channel: ChannelConfig, key: str) -> SendResult | None:
    """A malformed URL fails every retry, yet notifiers reports it like a network error."""
    value = channel.options.get(key)
    if value is None:
        return None  # the provider's schema reports it missing
    parts = urlsplit(str(value))
    if parts.scheme in ("http", "https") and parts.netloc:
        return None
    return SendResult(ok=False, permanent=True, error=f"{key} is not an http(s) URL")


def truncate(text: str, limit: int, suffix: str = "…") -> str:
    return text if len(text) <= limit else text[: limit - len(suffix)] + suffix
