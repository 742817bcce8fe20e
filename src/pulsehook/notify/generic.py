"""Any other notifiers provider, by name: the channel's options are its arguments."""

from __future__ import annotations

from . import providers
from .base import ChannelConfig, Message, SendResult
from .result import attempt, from_response


def send(channel: ChannelConfig, message: Message) -> SendResult:
    def call() -> SendResult:
        # strict=True raises NoSuchNotifierError, which attempt() makes permanent.
        provider = providers.provider(channel.kind)
        rsp = provider.notify(**{**channel.options, "message": message.text})
        return from_response(rsp, channel)

    return attempt(channel, call)
