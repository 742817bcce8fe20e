"""What every transport takes and returns, and what makes a kind of channel.

A transport is a plain synchronous function ``send(channel, message) ->
SendResult``; the dispatcher runs it in a worker thread (notifiers is
synchronous) and decides from the result whether to retry, park or record
success. What a channel answers, and a network that does not, are data here,
never exceptions: an exception out of a transport is a bug, which the
dispatcher logs with its traceback and parks the notice on (retrying runs the
same code again).

A kind of channel (``ChannelKind``) is one object, defined beside its transport
and listed in ``notify/registry.py``: everything else that differs by kind
(which options it needs, which are credentials, the channel the environment
alone configures, the hint when none is, its pace) is read from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# Option names that are credentials in a channel of any kind, notifiers' providers
# included (webhook URLs are bearer credentials). A channel's secret options are
# these, its kind's own ``secrets``, and every option whose value came from ${VAR}.
ALWAYS_SECRET = frozenset(
    {"webhook_url", "webhook", "password", "routing_key", "token", "bot_token", "api_key"}
)


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
    subject: str = ""  # an email's subject, under 80 characters; empty: the title, cut
    context: str = ""  # Slack mrkdwn line under the body: severity, since when, the rule
    # The channel's own id of the message this one follows up ("<channel id> <ts>" of
    # a Slack app's firing notice): set by the dispatcher just before sending, not stored.
    thread: str | None = None


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
    # The channel's own id of the message posted ("<channel id> <ts>" for a Slack app),
    # for later notices of the same alert to follow up on.
    posted: str | None = None


class Transport(Protocol):
    def __call__(self, channel: ChannelConfig, message: Message) -> SendResult: ...


@dataclass(frozen=True, eq=False)
class ChannelKind:
    """One kind of channel: its transport and its configuration."""

    name: str  # as ``kind = ...`` names it
    send: Transport
    required: frozenset[str]  # options a channel of this kind must set
    secrets: frozenset[str]  # its options that are credentials, wherever their value came from
    # option -> environment variable: the channel named after the kind that the
    # environment alone configures (no rule file needed)
    env: Mapping[str, str]
    rate: float  # sends per second its provider accepts (a channel's ``rate`` overrides it)
    # the environment's strings -> the options as the transport takes them
    read_env: Callable[[dict[str, str]], dict[str, Any]] = dict
    # a group is one incident: its notices merge only with the same group's, and each
    # says whether the group still fires (PagerDuty's dedup_key)
    incident: bool = False
    # Whether a channel of this kind, so configured, threads an alert's later notices
    # under its first (the dispatcher then keeps what ``SendResult.posted`` says).
    threads: Callable[[ChannelConfig], bool] | None = None
    # option -> the required option it stands in for (a Slack bot token for the webhook URL)
    instead: Mapping[str, str] = field(default_factory=dict)

    @property
    def hint(self) -> str:
        """What to do when a rule names this kind's channel and nothing configured it."""
        needed = [self.env[option] for option in sorted(self.required) if option in self.env]
        if needed:
            return "set " + " and ".join(needed)
        return f"configure a channel of kind {self.name!r} in the rules directory"
