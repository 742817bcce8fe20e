"""Webhook signature check (sans-I/O): bytes and secrets in, verdict out.

``Signature`` is fed the body chunk by chunk as it arrives, so the check needs
no copy of the body and is ready the moment its last byte is read.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from ..errors import SignatureInvalid

PREFIX = "sha256="
_LENGTH = len(PREFIX) + 2 * hashlib.sha256().digest_size


def sign(body: bytes, secret: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def malformed(signature: str | None) -> str | None:
    """Why ``signature`` cannot match any body, or None if it might.

    Known before a byte of the body is read, so such a request costs nothing.
    """
    if not signature:
        return "missing X-Hub-Signature-256 header"
    if not signature.startswith(PREFIX):
        return "X-Hub-Signature-256 must start with 'sha256='"
    if len(signature) != _LENGTH:
        return "X-Hub-Signature-256 must be 'sha256=' and 64 hexadecimal digits"
    return None


class Signature:
    """The HMAC-SHA256 of a body under every configured secret, fed as it streams.

    A body that comes in one chunk (most deliveries) is hashed in one call at
    the end, OpenSSL's fastest path; from a second chunk on, every chunk goes
    into one running HMAC per secret, so no copy of the body is needed.
    """

    __slots__ = ("_first", "_macs", "_secrets")

    def __init__(self, secrets: Iterable[bytes]) -> None:
        self._secrets = list(secrets)
        self._first: bytes | None = None
        self._macs: list[hmac.HMAC] | None = None

    def update(self, chunk: bytes) -> None:
        if self._macs is None:
            if self._first is None:
                self._first = chunk
                return
            # "sha256" by name: OpenSSL's HMAC, not the pure-Python one.
            self._macs = [hmac.new(s, self._first, "sha256") for s in self._secrets]
            self._first = None
        for mac in self._macs:
            mac.update(chunk)

    def _digests(self) -> list[bytes]:
        if self._macs is not None:
            return [mac.digest() for mac in self._macs]
        body = self._first or b""
        return [hmac.digest(secret, body, "sha256") for secret in self._secrets]

    def matches(self, signature: str | None) -> bool:
        """Whether ``signature`` is the body's under any secret.

        Every secret is compared in constant time and all of them are tried, so
        the time taken does not tell which one (if any) nearly matched.
        """
        if signature is None or malformed(signature) is not None:
            return False
        given = signature[len(PREFIX) :].encode("latin-1", "replace")
        matched = False
        for digest in self._digests():
            matched |= hmac.compare_digest(digest.hex().encode(), given)
        return matched

    def check(self, signature: str | None) -> None:
        """Raise SignatureInvalid unless ``signature`` matches."""
        problem = malformed(signature)
        if problem is not None:
            raise SignatureInvalid(problem)
        if not self.matches(signature):
            raise SignatureInvalid("signature does not match the body under any configured secret")


def verify(body: bytes, signature: str | None, secrets: Iterable[bytes]) -> None:
    """Raise SignatureInvalid unless ``signature`` matches ``body`` under any secret."""
    check = Signature(secrets)
    check.update(body)
    check.check(signature)
