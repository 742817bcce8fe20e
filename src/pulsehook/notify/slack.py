"""Slack incoming webhooks through slack-sdk's ``WebhookClient``.

slack-sdk is Slack's own client; its webhook client posts with the standard
library's urllib, a quarter of the CPU of notifiers' requests-based provider
(measured: 0.38 against 1.5 ms a notice, most of it requests reading the proxy
settings from the environment on every call). That matters when a broken shared
workflow makes hundreds of notices at once.

The mrkdwn body comes escaped from its producer (payload strings cannot mention,
ping or link); the attachment's plain title is escaped here, and it links only
to an http(s) URL.
"""

from __future__ import annotations

import functools
from typing import Any

from slack_sdk.webhook import WebhookClient

from .base import ChannelConfig, ChannelKind, Message, SendResult
from .escape import link_url, single_line, slack_escape
from .result import attempt, bad_url, from_status

TIMEOUT = 20  # seconds per request; the dispatcher bounds the whole send as well
# Attachment bar colour per alert state; states not listed get Slack's neutral grey.
COLORS = {"firing": "danger", "repeat": "danger", "resolved": "good"}
# Channel options passed through to Slack (anything else is pulsehook's own).
PASSTHROUGH = ("channel", "username", "icon_emoji", "icon_url", "unfurl_links")


def attachment(message: Message) -> dict[str, Any]:
    """A coloured attachment carrying the title and, when there is one, the link."""
    title = slack_escape(single_line(message.title))
    att: dict[str, Any] = {"fallback": title, "title": title}
    if message.state in COLORS:
        att["color"] = COLORS[message.state]
    if url := link_url(message.url):
        att["title_link"] = url
    return att


@functools.lru_cache(maxsize=256)
def _client(url: str) -> WebhookClient:
    # One per webhook URL: the client keeps no per-message state.
    return WebhookClient(url, timeout=TIMEOUT)


def send(channel: ChannelConfig, message: Message) -> SendResult:
    def call() -> SendResult:
        url = channel.options.get("webhook_url")
        if not url:
            return SendResult(ok=False, permanent=True, error="webhook_url is not set")
        if invalid := bad_url(channel, "webhook_url"):
            return invalid
        body = {k: channel.options[k] for k in PASSTHROUGH if channel.options.get(k) is not None}
        body |= {"text": message.markdown, "attachments": [attachment(message)]}
        rsp = _client(str(url)).send_dict(body)
        return from_status(rsp.status_code, rsp.body, rsp.headers.get("Retry-After"), channel)

    return attempt(channel, call)


KIND = ChannelKind(
    name="slack",
    send=send,
    required=frozenset({"webhook_url"}),
    secrets=frozenset({"webhook_url"}),  # the URL is the credential
    env={"webhook_url": "SLACK_WEBHOOK_URL"},
    rate=1.0,  # Slack: incoming webhooks post about one message per second
)
