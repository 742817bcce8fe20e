"""Discord webhooks: a notifiers provider (registered via the "notifiers" entry point).

Mentions are off for every message (``allowed_mentions: {"parse": []}``), and
``@everyone``/``@here`` are broken with a zero-width space in the content too, so
no client shows them as a ping. The markdown comes escaped from its producer; a
message without one sends its plain text, escaped here.
"""

from __future__ import annotations

import re
from typing import Any

from notifiers.core import Provider, Response
from notifiers.models import SchemaModel
from notifiers.utils import requests
from pydantic import Field

from . import providers
from .base import ChannelConfig, ChannelKind, Message, SendResult
from .escape import discord_escape, link_url
from .result import attempt, bad_url, from_response, truncate

LIMIT = 2000  # Discord rejects message content longer than this (HTTP 400)


class DiscordSchema(SchemaModel):  # type: ignore[misc]
    webhook_url: str = Field(description="the Discord webhook URL (a secret)")
    message: str = Field(description="message content, markdown, up to 2000 characters")
    username: str | None = Field(None, description="override the webhook's name")
    avatar_url: str | None = Field(None, description="override the webhook's avatar")


class Discord(Provider):  # type: ignore[misc]
    """Send Discord webhook notifications"""

    name = "discord"
    base_url = "https://discord.com/api/webhooks/"
    site_url = "https://discord.com/developers/docs/resources/webhook"
    schema_model = DiscordSchema

    def _prepare_data(self, data: dict[str, Any]) -> dict[str, Any]:
        # Last guard for callers going through notifiers directly; send() truncates nicer.
        data["content"] = neutralise(truncate(data.pop("message"), LIMIT))
        # Alert text quotes commit messages and titles: never let them ping @everyone.
        data["allowed_mentions"] = {"parse": []}
        return data

    def _send_notification(self, data: dict[str, Any]) -> Response:
        url = data.pop("webhook_url")
        response, errors = requests.post(url, json=data)
        return self.create_response(data, response, errors)


_EVERYONE = re.compile(r"@(?=everyone|here)", re.IGNORECASE)


def neutralise(content: str) -> str:
    """``@everyone`` and ``@here`` broken by a zero-width space (already escaped text
    has one after every ``@``, so this changes nothing there)."""
    return _EVERYONE.sub("@\u200b", content)


def content(message: Message) -> str:
    """The markdown to send: the producer's Discord form, or the plain text made literal."""
    return message.discord or discord_escape(message.text)


def fit(markdown: str, url: str | None, limit: int = LIMIT) -> str:
    """Cut long content at a line break, keep code fences closed and the link visible."""
    if len(markdown) <= limit:
        return markdown
    tail = "\n…" + (f"\n{url}" if url and len(url) < limit // 4 else "")
    budget = limit - len(tail) - len("\n```")
    head = markdown[:budget]
    newline = head.rfind("\n")
    if newline > budget * 3 // 4:  # a clean line break not too far back
        head = head[:newline]
    if head.count("```") % 2:  # cut inside a code block: close it
        head += "\n```"
    return head + tail


def send(channel: ChannelConfig, message: Message) -> SendResult:
    def call() -> SendResult:
        if invalid := bad_url(channel, "webhook_url"):
            return invalid
        options = {
            k: channel.options[k]
            for k in ("username", "avatar_url")
            if channel.options.get(k) is not None
        }
        if "webhook_url" in channel.options:
            options["webhook_url"] = channel.options["webhook_url"]
        # Normally found through the entry point; the class itself if the install lacks it.
        provider = providers.optional("discord") or Discord()
        rsp = provider.notify(message=fit(content(message), link_url(message.url)), **options)
        return from_response(rsp, channel)

    return attempt(channel, call)


KIND = ChannelKind(
    name="discord",
    send=send,
    required=frozenset({"webhook_url"}),
    secrets=frozenset({"webhook_url"}),  # the URL is the credential
    env={"webhook_url": "DISCORD_WEBHOOK_URL"},
    rate=0.5,  # Discord: 30 messages a minute per channel (5 per 2 s per webhook)
)
