"""PagerDuty Events API v2 through notifiers' PagerDuty provider, URL overridable."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from notifiers.providers.pagerduty import PagerDuty

from .base import ChannelConfig, ChannelKind, Message, SendResult
from .result import attempt, bad_url, from_response, truncate

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_LIMIT = 1024  # PagerDuty rejects longer summaries
DEDUP_LIMIT = 255
SEVERITY = {
    "critical": "critical",
    "fatal": "critical",
    "error": "error",
    "high": "error",
    "warning": "warning",
    "warn": "warning",
    "medium": "warning",
    "info": "info",
    "low": "info",
    "notice": "info",
}
ALERT_STATES = {"firing", "repeat", "resolved"}
PASSTHROUGH = ("component", "group", "class")  # optional payload fields from channel options


class RoutedPagerDuty(PagerDuty):  # type: ignore[misc]
    """The stock provider posts to a class-level base_url; this one to any events URL
    (EU service region, a proxy, a test server)."""

    def __init__(self, events_url: str = EVENTS_URL) -> None:
        super().__init__()
        self.base_url = events_url


def dedup_key(key: str) -> str:
    """Keys over 255 chars keep a prefix plus a hash: still stable, still distinct."""
    if len(key) <= DEDUP_LIMIT:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{key[: DEDUP_LIMIT - len(digest) - 1]}:{digest}"


def event(channel: ChannelConfig, message: Message) -> dict[str, Any]:
    """The notify() arguments for this message (notifiers builds the v2 payload from them)."""
    alert = message.state in ALERT_STATES
    data: dict[str, Any] = {
        "routing_key": channel.options.get("routing_key"),
        "event_action": "resolve" if message.state == "resolved" else "trigger",
        # Digests and tests are informational whatever the rule's severity.
        "severity": SEVERITY.get(message.severity.lower(), "error") if alert else "info",
        "source": message.source or "pulsehook",
        "message": truncate(message.title, SUMMARY_LIMIT),
    }
    if message.dedup_key:
        data["dedup_key"] = dedup_key(message.dedup_key)
    if message.url:
        data["links"] = [{"href": message.url, "text": "Details"}]
    if message.details:
        # Round-trip through JSON so odd values (datetimes...) can't fail the request.
        data["custom_details"] = json.loads(json.dumps(message.details, default=str))
    data.update({k: channel.options[k] for k in PASSTHROUGH if channel.options.get(k)})
    return data


def send(channel: ChannelConfig, message: Message) -> SendResult:
    def call() -> SendResult:
        data = event(channel, message)
        if data["routing_key"] is None:
            del data["routing_key"]  # let the schema report it as missing
        if data["event_action"] == "resolve" and "dedup_key" not in data:
            return SendResult(ok=False, permanent=True, error="resolve needs a dedup_key")
        if invalid := bad_url(channel, "events_url"):
            return invalid
        provider = RoutedPagerDuty(channel.options.get("events_url") or EVENTS_URL)
        return from_response(provider.notify(**data), channel)

    return attempt(channel, call)


KIND = ChannelKind(
    name="pagerduty",
    send=send,
    required=frozenset({"routing_key"}),
    secrets=frozenset({"routing_key"}),  # it lets anyone open incidents on the service
    env={
        "routing_key": "PULSEHOOK_PAGERDUTY_ROUTING_KEY",
        "events_url": "PULSEHOOK_PAGERDUTY_EVENTS_URL",
    },
    rate=2.0,  # PagerDuty Events API v2: 120 events a minute per routing key
    incident=True,
)
