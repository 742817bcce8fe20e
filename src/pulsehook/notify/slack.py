"""Slack: incoming webhooks through slack-sdk's ``WebhookClient``, or, with a bot
token, the Web API (``chat.postMessage``), threading an alert's later notices.

slack-sdk is Slack's own client; its clients post with the standard library's
urllib, a quarter of the CPU of notifiers' requests-based provider (measured:
0.38 against 1.5 ms a notice, most of it requests reading the proxy settings from
the environment on every call). That matters when a broken shared workflow makes
hundreds of notices at once.

A notice is Block Kit: its one mrkdwn line as a section, and a context line under
it (severity, rule, since when). ``text`` is only the notification's fallback
(the same body), which Slack does not show beside blocks: the message says each
thing once, and no attachment repeats its title. Both
come escaped from their producer (payload strings cannot mention, ping or link);
the fallback's plain title is escaped here.

App mode (``bot_token`` and ``channel``): the firing notice's ``ts`` is answered
as ``SendResult.posted``, the dispatcher keeps it per alert, and hands it back as
``Message.thread`` for the alert's later notices: they reply in its thread, and
the resolved one also edits the original to say so.
"""

from __future__ import annotations

import functools
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock
from slack_sdk.webhook import WebhookClient

from .base import ChannelConfig, ChannelKind, Message, SendResult
from .escape import single_line, slack_escape
from .result import attempt, bad_url, from_status, scrub

TIMEOUT = 20  # seconds per request; the dispatcher bounds the whole send as well
API_URL = "https://slack.com/api/"
SECTION_LIMIT = 3000  # characters of a section block's text (Slack's limit)
BLOCK_LIMIT = 50  # blocks in one message
# Channel options passed through to Slack (anything else is pulsehook's own).
PASSTHROUGH = ("channel", "username", "icon_emoji", "icon_url", "unfurl_links")
# Web API errors that a later attempt may not meet (others are configuration).
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def _chunks(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at a line break, else
    after a comma or a space (so no link or entity is cut in two where it can be helped)."""
    pieces: list[str] = []
    while len(text) > limit:
        at = max(text.rfind(sep, 0, limit) for sep in ("\n", ", ", " "))
        at = limit if at <= 0 else at
        pieces.append(text[:at].rstrip())
        text = text[at:].lstrip("\n, ")
    if text.strip():
        pieces.append(text)
    return pieces


def fallback(message: Message) -> str:
    """The notification's text (Slack shows the blocks, not this): the body and its
    context line, else the plain title, escaped."""
    if not message.markdown:
        return slack_escape(single_line(message.title))
    return message.markdown + (f"\n{message.context}" if message.context else "")


def blocks(message: Message) -> list[dict[str, Any]]:
    """The body as sections (one, unless a grouped notice is long), then the context."""
    body = _chunks(message.markdown) or [slack_escape(single_line(message.title))]
    out = [SectionBlock(text=MarkdownTextObject(text=piece)).to_dict() for piece in body]
    out = out[: BLOCK_LIMIT - 1]
    if message.context:
        context = message.context[:SECTION_LIMIT]
        out.append(ContextBlock(elements=[MarkdownTextObject(text=context)]).to_dict())
    return out


def body(message: Message) -> dict[str, Any]:
    return {"text": fallback(message), "blocks": blocks(message)}


@functools.lru_cache(maxsize=256)
def _client(url: str) -> WebhookClient:
    # One per webhook URL: the client keeps no per-message state.
    return WebhookClient(url, timeout=TIMEOUT)


@functools.lru_cache(maxsize=64)
def _api(token: str, base_url: str) -> WebClient:
    # One per token and API URL: the client keeps no per-message state.
    return WebClient(token=token, base_url=base_url, timeout=TIMEOUT)


def app_mode(channel: ChannelConfig) -> bool:
    """Posting as a Slack app (Web API, threads) rather than through a webhook."""
    return bool(channel.options.get("bot_token"))


def _api_failure(exc: SlackApiError, channel: ChannelConfig) -> SendResult:
    rsp = exc.response
    error = str(rsp.get("error") or "") if isinstance(rsp.data, dict) else ""
    if rsp.status_code != 200 or not error:
        text = rsp.data if isinstance(rsp.data, str) else error or None
        return from_status(rsp.status_code, text, rsp.headers.get("Retry-After"), channel)
    return SendResult(
        ok=False,
        permanent=error not in TRANSIENT_ERRORS,
        status=rsp.status_code,
        error=scrub(f"Slack API: {error}", channel),
    )


def _post_app(channel: ChannelConfig, message: Message) -> SendResult:
    options = channel.options
    if not options.get("channel"):
        return SendResult(ok=False, permanent=True, error="a bot token needs the channel option")
    if invalid := bad_url(channel, "base_url"):
        return invalid
    client = _api(str(options["bot_token"]), str(options.get("base_url") or API_URL))
    extra = {k: options[k] for k in PASSTHROUGH if options.get(k) is not None}
    where, ts = (message.thread or "").partition(" ")[::2]
    if where and ts:
        extra |= {"channel": where, "thread_ts": ts}
    try:
        rsp = client.chat_postMessage(**extra, **body(message))
    except SlackApiError as exc:
        return _api_failure(exc, channel)
    posted = f"{rsp.get('channel')} {rsp.get('ts')}"
    if not (where and ts and message.state == "resolved"):
        return SendResult(ok=True, status=rsp.status_code, response="posted", posted=posted)
    try:
        # The original says so too, so a reader of the channel sees it is over.
        client.chat_update(channel=where, ts=ts, **body(message))
    except SlackApiError as exc:
        # The reply is in: a retry would post it again. The edit is what is missing.
        failed = _api_failure(exc, channel).error
        return SendResult(ok=True, status=rsp.status_code, response=f"replied; edit: {failed}")
    return SendResult(ok=True, status=rsp.status_code, response="replied, original edited")


def send(channel: ChannelConfig, message: Message) -> SendResult:
    def call() -> SendResult:
        if app_mode(channel):
            return _post_app(channel, message)
        url = channel.options.get("webhook_url")
        if not url:
            return SendResult(ok=False, permanent=True, error="webhook_url is not set")
        if invalid := bad_url(channel, "webhook_url"):
            return invalid
        sent = {k: channel.options[k] for k in PASSTHROUGH if channel.options.get(k) is not None}
        rsp = _client(str(url)).send_dict(sent | body(message))
        return from_status(rsp.status_code, rsp.body, rsp.headers.get("Retry-After"), channel)

    return attempt(channel, call)


KIND = ChannelKind(
    name="slack",
    send=send,
    required=frozenset({"webhook_url"}),
    secrets=frozenset({"webhook_url", "bot_token"}),  # each is the credential
    env={
        "webhook_url": "SLACK_WEBHOOK_URL",
        "bot_token": "SLACK_BOT_TOKEN",
        "channel": "PULSEHOOK_SLACK_CHANNEL",
    },
    rate=1.0,  # Slack: incoming webhooks post about one message per second
    threads=app_mode,
    instead={"bot_token": "webhook_url"},
)
