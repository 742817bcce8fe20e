"""Which transport sends to which kind of channel, and what each needs configured."""

from __future__ import annotations

import notifiers

from . import discord, email, generic, pagerduty, providers, slack
from .base import Transport

TRANSPORTS: dict[str, Transport] = {
    "slack": slack.send,
    "discord": discord.send,
    "email": email.send,
    "pagerduty": pagerduty.send,
}
REQUIRED: dict[str, frozenset[str]] = {
    "slack": frozenset({"webhook_url"}),
    "discord": frozenset({"webhook_url"}),
    "email": frozenset({"host", "to"}),
    "pagerduty": frozenset({"routing_key"}),
}


def _provider_names() -> set[str]:
    # Loading entry points imports third-party plugins; a broken one mustn't break config.
    try:
        return set(notifiers.all_providers())
    except Exception:  # noqa: BLE001 — a broken third-party plugin must not break config
        from notifiers.providers import _all_providers

        return set(_all_providers)


KNOWN_KINDS: frozenset[str] = frozenset(TRANSPORTS) | frozenset(_provider_names())


def transport_for(kind: str) -> Transport:
    return TRANSPORTS.get(kind, generic.send)


def required_options(kind: str) -> set[str]:
    """Options a channel of this kind must set (the message is pulsehook's to give)."""
    if kind in REQUIRED:
        return set(REQUIRED[kind])
    provider = providers.optional(kind)
    if provider is None:
        return set()
    return {str(name) for name in provider.required["required"]} - {"message"}
