"""The kinds of channel: pulsehook's own, listed here, and any other notifiers provider.

``KINDS`` is the one list of pulsehook's own kinds; each is a ChannelKind defined
beside its transport. What the rest of pulsehook asks of a kind (its transport,
the options it needs, its credentials, the channel the environment configures,
its pace) comes from ``kind_of``.
"""

from __future__ import annotations

import functools

import notifiers

from . import discord, email, generic, pagerduty, providers, slack, webhook
from .base import ChannelKind, Transport

KINDS: tuple[ChannelKind, ...] = (
    email.KIND,
    pagerduty.KIND,
    slack.KIND,
    discord.KIND,
    webhook.KIND,
)
OTHER_RATE = 1.0  # sends per second for any other notifiers provider

_OWN = {kind.name: kind for kind in KINDS}


def _provider_names() -> set[str]:
    # Loading entry points imports third-party plugins; a broken one mustn't break config.
    try:
        return set(notifiers.all_providers())
    except Exception:  # noqa: BLE001 — a broken third-party plugin must not break config
        from notifiers.providers import _all_providers

        return set(_all_providers)


KNOWN_KINDS: frozenset[str] = frozenset(_OWN) | frozenset(_provider_names())


@functools.cache
def kind_of(name: str) -> ChannelKind | None:
    """The kind called ``name``; None when neither pulsehook nor notifiers has it.

    Another notifiers provider is sent through ``generic``: the channel's options are
    its arguments, and those its schema requires (but the message) are required.
    """
    if name in _OWN:
        return _OWN[name]
    if name not in KNOWN_KINDS:
        return None
    provider = providers.optional(name)
    required = set() if provider is None else set(provider.required["required"])
    return ChannelKind(
        name=name,
        send=generic.send,
        required=frozenset(str(option) for option in required) - {"message"},
        secrets=frozenset(),  # ALWAYS_SECRET covers the names providers use
        env={},
        rate=OTHER_RATE,
    )


def transport_for(kind: str) -> Transport:
    found = kind_of(kind)
    return generic.send if found is None else found.send


def required_options(kind: str) -> set[str]:
    """Options a channel of this kind must set (the message is pulsehook's to give)."""
    found = kind_of(kind)
    return set() if found is None else set(found.required)
