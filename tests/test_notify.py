"""Transports against real edges: a loopback HTTP stand-in for Slack/Discord/PagerDuty,
and a real SMTP server (aiosmtpd). notifiers itself is not patched."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from typing import Any

import notifiers
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pulsehook.notify import discord, generic, pagerduty, slack
from pulsehook.notify import email as email_transport
from pulsehook.notify.base import ChannelConfig, Message
from pulsehook.notify.registry import KNOWN_KINDS, required_options, transport_for

from .conftest import free_port, live

TOKEN = "XyZsecretT0KEN"  # the secret part of a webhook URL
ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"

MESSAGE = Message(
    title="FIRING build_failure — octo/repo: CI failed on main",
    text="CI failed on main\nhttps://ci.example/run/1",
    markdown="*CI failed* on `main` <https://ci.example/run/1|run 1>",
    discord="**CI failed** on `main` [run 1](https://ci.example/run/1)",
    html="<p><b>CI failed</b> on main</p>",
    url="https://ci.example/run/1",
    severity="critical",
    dedup_key="octo/repo:build_failure:main",
    source="octo/repo",
    details={"branch": "main", "run": 1},
)


# --- the HTTP stand-in -------------------------------------------------------------


@dataclass
class Hooks:
    url: str
    received: list[tuple[str, Any]] = field(default_factory=list)

    def hook(self, code: int) -> str:
        return f"{self.url}/hook/{code}/T000/{TOKEN}"


async def _hook(request: Request) -> Response:
    code = int(request.path_params["code"])
    body = await request.json()
    request.app.state.received.append((request.url.path, body))
    if code == 204:
        return Response(status_code=204)
    if code == 202:  # PagerDuty's answer
        return JSONResponse({"status": "success", "dedup_key": body.get("dedup_key")}, 202)
    if code == 400:  # echoes the request, as some APIs do: secrets in it must not leak
        return JSONResponse({"errors": [f"invalid event {json.dumps(body)}"]}, 400)
    headers = {"Retry-After": "7"} if code == 429 else {}
    return PlainTextResponse("ok" if code < 400 else f"err {code}", code, headers=headers)


@pytest.fixture(scope="module")
def _server() -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    app = Starlette(routes=[Route("/hook/{code}/{rest:path}", _hook, methods=["POST"])])
    app.state.received = []
    with live(app) as server:
        yield server.url, app.state.received


@pytest.fixture
def hooks(_server: tuple[str, list[tuple[str, Any]]]) -> Hooks:
    url, received = _server
    received.clear()
    return Hooks(url, received)


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}/hook/200/T000/{TOKEN}"


# --- Slack ---------------------------------------------------------------------------


def _slack(url: str, **options: Any) -> ChannelConfig:
    return ChannelConfig("slack", "slack", {"webhook_url": url, **options})


def test_slack_posts_the_mrkdwn_line_as_blocks_said_once(hooks: Hooks) -> None:
    shown = replace(MESSAGE, context="severity *critical* · rule `build_failure`")
    result = slack.send(_slack(hooks.hook(200), username="pulsehook"), shown)
    assert result.ok and result.status == 200 and result.response == "ok"
    [(path, body)] = hooks.received
    assert path.endswith(TOKEN)
    assert body["username"] == "pulsehook"
    # Shown: the line, then its context; no attachment repeats the title.
    assert "attachments" not in body
    assert [b["type"] for b in body["blocks"]] == ["section", "context"]
    assert body["blocks"][0]["text"] == {"type": "mrkdwn", "text": MESSAGE.markdown}
    assert body["blocks"][1]["elements"][0]["text"] == shown.context
    # The notification's fallback says the same, for those who only see that.
    assert body["text"].startswith(MESSAGE.markdown) and shown.context in body["text"]


@pytest.mark.parametrize(
    ("code", "permanent", "retry_after"),
    [
        (404, True, None),
        (400, True, None),
        (403, True, None),
        (500, False, None),
        (503, False, None),
        (408, False, None),
        (429, False, 7.0),
    ],
)
def test_slack_http_errors_are_classified(
    hooks: Hooks, code: int, permanent: bool, retry_after: float | None
) -> None:
    result = slack.send(_slack(hooks.hook(code)), MESSAGE)
    assert not result.ok and result.status == code
    assert result.permanent is permanent and result.retry_after == retry_after
    assert result.error and TOKEN not in result.error and hooks.url not in result.error


def test_slack_unreachable_is_transient_and_scrubbed() -> None:
    url = closed_url()
    result = slack.send(_slack(url), MESSAGE)
    assert not result.ok and not result.permanent and result.status is None
    assert result.error and TOKEN not in result.error and url not in result.error


def test_slack_without_webhook_is_permanent() -> None:
    result = slack.send(ChannelConfig("slack", "slack", {}), MESSAGE)
    assert not result.ok and result.permanent and "webhook_url" in (result.error or "")


def test_malformed_webhook_url_is_permanent() -> None:
    # requests fails before connecting; notifiers reports that like a network error.
    result = slack.send(_slack(f"hooks.slack.com/services/{TOKEN}"), MESSAGE)
    assert not result.ok and result.permanent and TOKEN not in (result.error or "")


# --- Discord -------------------------------------------------------------------------


def test_discord_is_a_notifiers_provider_via_entry_point() -> None:
    assert isinstance(notifiers.get_notifier("discord"), discord.Discord)
    assert "discord" in notifiers.all_providers()


def test_discord_posts_content(hooks: Hooks) -> None:
    channel = ChannelConfig("d", "discord", {"webhook_url": hooks.hook(204), "username": "ph"})
    result = discord.send(channel, MESSAGE)
    assert result.ok and result.status == 204
    [(_, body)] = hooks.received
    assert body["content"] == MESSAGE.discord and body["username"] == "ph"
    assert body["allowed_mentions"] == {"parse": []}


def test_discord_without_a_discord_form_sends_the_text_made_literal(hooks: Hooks) -> None:
    channel = ChannelConfig("d", "discord", {"webhook_url": hooks.hook(204)})
    slack_only = Message(title="t", text="*CI* [x](https://a.example) @here", markdown="*CI*")
    assert discord.send(channel, slack_only).ok
    [(_, body)] = hooks.received
    assert body["content"] == "\\*CI\\* \\[x\\]\\(https://a.example\\) @\u200bhere"


def test_discord_truncates_long_content(hooks: Hooks) -> None:
    long = Message(
        title="t",
        text="t",
        markdown="",
        discord="\n".join(f"line {i}" for i in range(900)),
        url="https://ci.example/run/2",
    )
    channel = ChannelConfig("d", "discord", {"webhook_url": hooks.hook(204)})
    assert discord.send(channel, long).ok
    content = hooks.received[0][1]["content"]
    assert len(content) <= 2000 and content.endswith("…\nhttps://ci.example/run/2")
    assert content.startswith("line 0\nline 1\n")
    fence = discord.fit("```\n" + "x\n" * 1500, None)
    assert len(fence) <= 2000 and fence.count("```") == 2


def test_discord_rate_limited(hooks: Hooks) -> None:
    result = discord.send(ChannelConfig("d", "discord", {"webhook_url": hooks.hook(429)}), MESSAGE)
    assert not result.ok and not result.permanent and result.retry_after == 7.0


# --- PagerDuty -----------------------------------------------------------------------


def _pd(url: str) -> ChannelConfig:
    return ChannelConfig(
        "oncall",
        "pagerduty",
        {"routing_key": ROUTING_KEY, "events_url": url},
        secret_keys=frozenset({"routing_key"}),
    )


def test_pagerduty_trigger_then_resolve(hooks: Hooks) -> None:
    channel = _pd(f"{hooks.url}/hook/202/v2/enqueue")
    assert pagerduty.send(channel, MESSAGE).ok
    resolved = Message(
        title="RESOLVED",
        text="",
        markdown="",
        state="resolved",
        severity="warning",
        dedup_key=MESSAGE.dedup_key,
        source="octo/repo",
    )
    result = pagerduty.send(channel, resolved)
    assert result.ok and result.status == 202
    (path1, trigger), (path2, resolve) = hooks.received
    assert path1 == path2 == "/hook/202/v2/enqueue"
    assert trigger["routing_key"] == ROUTING_KEY and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == resolve["dedup_key"] == MESSAGE.dedup_key
    assert trigger["payload"] == {
        "summary": MESSAGE.title,
        "source": "octo/repo",
        "severity": "critical",
        "custom_details": MESSAGE.details,
    }
    assert trigger["links"] == [{"href": MESSAGE.url, "text": "Details"}]
    assert resolve["event_action"] == "resolve"


@pytest.mark.parametrize(
    ("severity", "state", "expected"),
    [
        ("warning", "firing", "warning"),
        ("low", "repeat", "info"),
        ("bogus", "firing", "error"),
        ("critical", "digest", "info"),
        ("critical", "test", "info"),
    ],
)
def test_pagerduty_severity(severity: str, state: str, expected: str) -> None:
    data = pagerduty.event(_pd("x"), Message("t", "t", "t", severity=severity, state=state))
    assert data["severity"] == expected and data["event_action"] == "trigger"


def test_pagerduty_limits() -> None:
    msg = Message("T" * 2000, "", "", dedup_key="k" * 400)
    data = pagerduty.event(_pd("x"), msg)
    assert len(data["message"]) == 1024 and len(data["dedup_key"]) == 255
    assert (
        data["dedup_key"]
        != pagerduty.event(_pd("x"), Message("", "", "", dedup_key="k" * 401))["dedup_key"]
    )


def test_pagerduty_errors_never_show_routing_key(hooks: Hooks) -> None:
    result = pagerduty.send(_pd(f"{hooks.url}/hook/400/v2/enqueue"), MESSAGE)
    assert not result.ok and result.permanent and result.status == 400
    assert "invalid event" in (result.error or "")
    assert ROUTING_KEY not in (result.error or "") + (result.response or "")
    down = pagerduty.send(_pd(f"http://127.0.0.1:{free_port()}/v2/{ROUTING_KEY}"), MESSAGE)
    assert not down.ok and not down.permanent and ROUTING_KEY not in (down.error or "")


# --- Email ---------------------------------------------------------------------------


class Collector:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if address.startswith("nobody@"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


def _deny(*args: Any) -> AuthResult:
    # handled=False: aiosmtpd then answers 535 itself (handled=True would leave it silent).
    return AuthResult(success=False, handled=False)


@pytest.fixture
def smtpd() -> Iterator[tuple[int, Collector]]:
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, handler
    finally:
        controller.stop()


def _mail(port: int, to: Any, **options: Any) -> ChannelConfig:
    return ChannelConfig(
        "team-email",
        "email",
        {"host": "127.0.0.1", "port": port, "to": to, "from": "pulsehook@example.org", **options},
        secret_keys=frozenset({"password"}),
    )


@pytest.mark.parametrize("to", [["a@example.org", "b@example.org"], "a@example.org, b@example.org"])
def test_email_to_two_recipients_with_html(smtpd: tuple[int, Collector], to: Any) -> None:
    port, handler = smtpd
    result = email_transport.send(_mail(port, to), MESSAGE)
    assert result.ok, result
    [envelope] = handler.envelopes
    assert sorted(envelope.rcpt_tos) == ["a@example.org", "b@example.org"]
    assert isinstance(envelope.content, bytes)
    mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    assert mail["Subject"] == MESSAGE.title and mail.get_content_type() == "multipart/alternative"
    # SMTP transports CRLF line endings.
    parts = {
        p.get_content_type(): p.get_content().replace("\r\n", "\n").strip()
        for p in mail.iter_parts()
    }
    assert parts == {"text/plain": MESSAGE.text, "text/html": MESSAGE.html}


def test_email_plain_only(smtpd: tuple[int, Collector]) -> None:
    port, handler = smtpd
    msg = Message(title="digest", text="all quiet", markdown="all quiet", state="digest")
    assert email_transport.send(_mail(port, "a@example.org"), msg).ok
    content = handler.envelopes[0].content
    assert isinstance(content, bytes)
    mail = email.message_from_bytes(content)
    assert [p.get_content_type() for p in mail.walk()][1:] == ["text/plain"]


def test_email_refused_recipient_is_permanent(smtpd: tuple[int, Collector]) -> None:
    port, _ = smtpd
    result = email_transport.send(_mail(port, ["nobody@example.org"]), MESSAGE)
    assert not result.ok and result.permanent and "RecipientsRefused" in (result.error or "")


def test_email_auth_failure_is_permanent_and_scrubbed() -> None:
    controller = Controller(
        Collector(),
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=_deny,
        auth_require_tls=False,
    )
    controller.start()
    try:
        channel = _mail(controller.port, "a@example.org", username="u", password="hunter2-pw")
        result = email_transport.send(channel, MESSAGE)
    finally:
        controller.stop()
    assert not result.ok and result.permanent and "Authentication" in (result.error or "")
    assert "hunter2-pw" not in (result.error or "")


def test_email_unreachable_is_transient() -> None:
    result = email_transport.send(_mail(free_port(), "a@example.org", timeout=2), MESSAGE)
    assert not result.ok and not result.permanent and result.error


def test_email_bad_address_is_permanent() -> None:
    result = email_transport.send(_mail(25, "not-an-address"), MESSAGE)
    assert not result.ok and result.permanent and "email" in (result.error or "")


# --- generic and registry ------------------------------------------------------------


def test_generic_unknown_provider_is_permanent() -> None:
    result = generic.send(ChannelConfig("x", "no-such-thing", {}), MESSAGE)
    assert not result.ok and result.permanent
    assert result.error == "unknown notifiers provider 'no-such-thing'"


def test_generic_invalid_options_are_permanent_and_scrubbed() -> None:
    # notifiers' validation messages quote the offending value: it must be scrubbed.
    channel = ChannelConfig("g", "gmail", {"to": "private-list"}, secret_keys=frozenset({"to"}))
    result = generic.send(channel, MESSAGE)
    assert not result.ok and result.permanent and "is not a 'email'" in (result.error or "")
    assert "private-list" not in (result.error or "")


def test_registry() -> None:
    assert transport_for("slack") is slack.send
    assert transport_for("discord") is discord.send
    assert transport_for("email") is email_transport.send
    assert transport_for("pagerduty") is pagerduty.send
    assert transport_for("telegram") is generic.send
    assert {"slack", "discord", "email", "pagerduty", "telegram", "pushover"} <= KNOWN_KINDS
    assert "no-such-thing" not in KNOWN_KINDS
    assert required_options("slack") == required_options("discord") == {"webhook_url"}
    assert required_options("email") == {"host", "to"}
    assert required_options("pagerduty") == {"routing_key"}
    assert required_options("telegram") == {"chat_id", "token"}
    assert required_options("no-such-thing") == set()
