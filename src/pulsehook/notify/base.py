"""What every transport takes and returns.

A transport is a plain synchronous function ``send(channel, message) ->
SendResult``; the dispatcher runs it in a worker thread (notifiers is
synchronous) and decides from the result whether to retry, park or record
success. Errors are data here, never exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    """One notification, rendered once, readable in every channel."""

    # Each form is built by its producer with every payload string escaped for it
    # (notify/escape.py); transports send them as they are.
    title: str  # one line, plain: "FIRING build_failure — octo/repo: CI failed on main"
    text: str  # plain text body
    markdown: str  # Slack mrkdwn body
    html: str | None = None  # email alternative part (digests)
    url: str | None = None  # the run, the advisory... (http or https only)
    severity: str = "error"  # critical | error | warning | info
    state: str = "firing"  # firing | repeat | resolved | digest | test
    dedup_key: str = ""  # stable per alert: PagerDuty correlates trigger and resolve
    source: str = "pulsehook"  # PagerDuty's "source": the repository
    details: dict[str, Any] = field(default_factory=dict)
    discord: str = ""  # Discord markdown body; empty: Discord gets the text, escaped


@dataclass(frozen=True)
class ChannelConfig:
    """A configured channel. ``options`` hold the resolved values (secrets included)."""

    name: str  # as rules refer to it: "slack", "oncall", "team-email"
    kind: str  # slack | discord | email | pagerduty | any other notifiers provider
    options: dict[str, Any] = field(default_factory=dict)
    secret_keys: frozenset[str] = frozenset()  # options that came from ${VAR}: never shown
    rate: float | None = None  # sends per second it accepts (notify/pace.py); None: unpaced

    def public(self) -> dict[str, Any]:
        """The options safe to show in the API and logs."""
        return {k: ("***" if k in self.secret_keys else v) for k, v in self.options.items()}


@dataclass(frozen=True)
class SendResult:
    ok: bool
    permanent: bool = False  # don't retry: 4xx other than 408/429, invalid configuration
    status: int | None = None  # HTTP status, when there was one
    retry_after: float | None = None  # seconds, from Retry-After
    error: str | None = None  # what went wrong, secrets scrubbed
    response: str | None = None  # the provider's answer (short)


class Transport(Protocol):
    def __call__(self, channel: ChannelConfig, message: Message) -> SendResult: ...
