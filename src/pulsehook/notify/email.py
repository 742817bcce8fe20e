"""Email over SMTP through notifiers' SMTP provider, with an HTML alternative.

The subject is a notice's short subject (under 80 characters), payload strings
included: it is made one line with no control character before it becomes a
header, so no line break in a branch name adds a header and the email library
has nothing to refuse. The HTML part comes escaped from its producer.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from notifiers.core import Response
from notifiers.providers.email import SMTP, SMTPSchema
from pydantic import Field

from . import escape
from .base import ChannelConfig, ChannelKind, Message, SendResult
from .forms import SUBJECT_LIMIT, cut
from .result import attempt, scrub

# Channel options handed to the provider ("from_" is normalised to "from" by notifiers).
PASSTHROUGH = [
    "host",
    "port",
    "username",
    "password",
    "from",
    "from_",
    "cc",
    "bcc",
    "tls",
    "ssl",
    "login",
    "timeout",
]


class _Schema(SMTPSchema):  # type: ignore[misc]
    html_message: str | None = Field(None, description="HTML alternative of the message")
    timeout: float = Field(30.0, gt=0, description="seconds for connect and each command")


class PulsehookSMTP(SMTP):  # type: ignore[misc]
    """SMTP with a text+HTML body, a timeout, and the exception kept for classification."""

    schema_model = _Schema

    def __init__(self) -> None:
        super().__init__()
        self.exception: Exception | None = None
        self.refused: dict[str, tuple[int, bytes]] = {}

    @staticmethod
    def _build_email(data: dict[str, Any]) -> EmailMessage:
        email = EmailMessage()
        email["To"] = data["to"]
        for header in ("cc", "bcc"):  # smtplib sends to these too, and drops Bcc from the copy
            if data.get(header):
                value = data[header]
                email[header.title()] = ", ".join(value) if isinstance(value, list) else value
        email["From"] = data["from"]
        # Cleaned here too, for callers going through notifiers directly.
        email["Subject"] = escape.header(data["subject"])
        email["Date"] = formatdate(localtime=True)
        email.add_alternative(data["message"], subtype="plain")  # -> multipart/alternative
        if data.get("html_message"):
            email.add_alternative(data["html_message"], subtype="html")
        return email

    def _connect_to_server(self, data: dict[str, Any]) -> None:
        # As the base class, plus a timeout: smtplib would otherwise block forever.
        cls = smtplib.SMTP_SSL if data["ssl"] else smtplib.SMTP
        self.smtp_server = cls(data["host"], data["port"], timeout=data["timeout"])
        if data["tls"] and not data["ssl"]:
            self.smtp_server.ehlo()
            self.smtp_server.starttls()
        if data["login"] and data.get("username"):
            self.smtp_server.login(data["username"], data["password"])

    def _send_notification(self, data: dict[str, Any]) -> Response:
        # One connection per send, closed after: no cached connection shared across threads.
        try:
            self._connect_to_server(data)
            try:
                self.refused = self.smtp_server.send_message(self._build_email(data))
            finally:
                try:
                    self.smtp_server.quit()
                except (smtplib.SMTPException, OSError):
                    self.smtp_server.close()
        except (smtplib.SMTPException, OSError) as e:
            self.exception = e
            return self.create_response(data, errors=[str(e)])
        return self.create_response(data)


def recipients(value: Any) -> list[str]:
    """A list of addresses, or one string of comma-separated addresses."""
    items = value if isinstance(value, list | tuple) else str(value or "").split(",")
    return [str(a).strip() for a in items if str(a).strip()]


def classify(e: Exception) -> bool:
    """Whether an SMTP failure is permanent (retrying would fail the same way)."""
    if isinstance(e, smtplib.SMTPAuthenticationError | smtplib.SMTPNotSupportedError):
        return True
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        return any(code >= 500 for code, _ in e.recipients.values())
    if isinstance(e, smtplib.SMTPResponseException):  # sender refused, data refused...
        return bool(e.smtp_code >= 500)
    # Bad certificate is configuration; refused/reset/timeouts/DNS are worth retrying.
    return isinstance(e, ssl.SSLCertVerificationError)


def send(channel: ChannelConfig, message: Message) -> SendResult:
    provider = PulsehookSMTP()  # fresh per send: the base class caches its connection

    def call() -> SendResult:
        options = {k: channel.options[k] for k in PASSTHROUGH if channel.options.get(k) is not None}
        rsp = provider.notify(
            message=message.text,
            html_message=message.html,
            # Short enough to read in a list of mail; the title, cut, for older notices.
            subject=escape.header(message.subject or cut(message.title, SUBJECT_LIMIT)),
            to=recipients(channel.options.get("to")),
            **options,
        )
        if rsp.ok:
            refused = ", ".join(sorted(provider.refused))
            return SendResult(ok=True, response=f"refused: {refused}" if refused else "sent")
        exc = provider.exception
        permanent = exc is not None and classify(exc)
        error = f"{type(exc).__name__}: {exc}" if exc else "; ".join(rsp.errors)
        return SendResult(ok=False, permanent=permanent, error=scrub(error, channel))

    return attempt(channel, call)


def from_env(values: dict[str, str]) -> dict[str, Any]:
    """The options as the environment gives them (strings) -> as ``send`` takes them."""
    options: dict[str, Any] = dict(values)
    for flag in ("tls", "ssl"):
        if flag in options:
            options[flag] = options[flag].lower() in ("1", "true", "yes", "on")
    if "to" in options:
        options["to"] = recipients(options["to"])
    return options


KIND = ChannelKind(
    name="email",
    send=send,
    required=frozenset({"host", "to"}),
    secrets=frozenset({"password"}),
    env={
        "host": "PULSEHOOK_SMTP_HOST",
        "port": "PULSEHOOK_SMTP_PORT",
        "username": "PULSEHOOK_SMTP_USERNAME",
        "password": "PULSEHOOK_SMTP_PASSWORD",
        "from": "PULSEHOOK_SMTP_FROM",
        "to": "PULSEHOOK_SMTP_TO",
        "tls": "PULSEHOOK_SMTP_STARTTLS",
        "ssl": "PULSEHOOK_SMTP_SSL",
    },
    read_env=from_env,
    rate=1.0,  # SMTP servers set their own; one a second is accepted everywhere
)
