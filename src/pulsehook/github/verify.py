"""Webhook signature check (sans-I/O): bytes and secrets in, verdict out."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from ..errors import SignatureInvalid

PREFIX = "sha256="


def sign(body: bytes, secret: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str | None, secrets: Iterable[bytes]) -> None:
    """Raise SignatureInvalid unless ``signature`` matches ``body`` under any secret.

    Every secret is compared in constant time and all of them are tried, so the
    time taken does not tell which one (if any) nearly matched.
    """
    if not signature:
        raise SignatureInvalid("missing X-Hub-Signature-256 header")
    if not signature.startswith(PREFIX):
        raise SignatureInvalid("X-Hub-Signature-256 must start with 'sha256='")
    given = signature.encode("ascii", "replace")
    matched = False
    for secret in secrets:
        expected = PREFIX.encode() + hmac.digest(secret, body, "sha256").hex().encode()
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureInvalid("signature does not match the body under any configured secret")
