"""Slack incoming webhooks through notifiers' "slack" provider."""

from __future__ import annotations

from typing import Any

from . import providers
from .base import ChannelConfig, Message, SendResult
from .result import attempt, bad_url, from_response

# Attachment bar colour per alert state; states not listed get Slack's neutral grey.
COLORS = {"firing": "danger", "repeat": "danger", "resolved": "good"}
# Channel options passed through to the provider (anything else is pulsehook's own).
PASSTHROUGH = ("channel", "username", "icon_emoji", "icon_url", "unfurl_links")


def attachment(message: Message) -> dict[str, Any]:
    """A coloured attachment carrying the title and, when there is one, the link."""
    att: dict[str, Any] = {"fallback": message.title, "title": message.title}
    if message.state in COLORS:
        att["color"] = COLORS[message.state]
    if message.url:
        att["title_link"] = message.url
    return att


def send(channel: ChannelConfig, message: Message) -> SendResult:
    def call() -> SendResult:
        if invalid := bad_url(channel, "webhook_url"):
            return invalid
        options = {k: channel.options[k] for k in PASSTHROUGH if channel.options.get(k) is not None}
        if "webhook_url" in channel.options:
            options["webhook_url"] = channel.options["webhook_url"]
        rsp = providers.provider("slack").notify(
            message=message.markdown, attachments=[attachment(message)], **options
        )
        return from_response(rsp, channel)

    return attempt(channel, call)
