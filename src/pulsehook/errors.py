"""The one exception tree of pulsehook.

::

    PulsehookError
    ├── ConfigError              settings or startup refused (missing secret, bad value)
    │   ├── RulesInvalid         rules/ cannot be used; lists every problem (rules/load.py)
    │   └── DatabaseMissing      no database where one must already be (also FileNotFoundError)
    ├── ConditionError           one rule condition refused at load (rules/evaluate.py)
    ├── StorageUnavailable       the database cannot take a write now (locked, disk full)
    ├── GitHubError              the GitHub API answered with an error (github/api.py)
    │   └── RateLimited          ... a rate limit that cannot be waited out here
    ├── UnknownRepository        EcosystemMonitor: no such repository (monitor.py)
    ├── WebhookRejected          a delivery refused at the door; carries status and code
    │   ├── SignatureInvalid     401
    │   ├── BadRequest           400 (missing header, invalid JSON)
    │   ├── PayloadTooLarge      413
    │   ├── UnsupportedMediaType 415
    │   └── InputInvalid         422 (read, but breaks its model: web/models.py)
    └── UnsupportedEvent         normalization has nothing to say about this payload

Each web-facing error knows its HTTP status and a short machine code, so the
web layer renders every error in the one shape ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from pathlib import Path


class PulsehookError(Exception):
    """Base of every error pulsehook raises on purpose."""


class ConfigError(PulsehookError):
    """The service cannot start (or a command cannot run) with this configuration."""


class DatabaseMissing(ConfigError, FileNotFoundError):
    """No pulsehook database at the path given, where only an existing one will do.

    Reading or changing a store that is not there would otherwise create an empty
    one: a silence added to it, or a report read from it, acts on the wrong thing.
    """

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path  # not OSError's ``filename``: setting it rewrites str(exc)


class StorageUnavailable(PulsehookError):
    """A write could not be committed; callers must not acknowledge it."""


class WebhookRejected(PulsehookError):
    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SignatureInvalid(WebhookRejected):
    status = 401
    code = "invalid_signature"


class BadRequest(WebhookRejected):
    status = 400
    code = "bad_request"


class PayloadTooLarge(WebhookRejected):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(WebhookRejected):
    status = 415
    code = "unsupported_media_type"


class InputInvalid(WebhookRejected):
    status = 422
    code = "invalid"


class UnsupportedEvent(PulsehookError):
    """Raised by normalization for events (or shapes) it does not turn into facts.

    This is the only exception normalization raises on any JSON input.
    """
