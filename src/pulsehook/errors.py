"""The one exception tree of pulsehook.

::

    PulsehookError
    ├── ConfigError              settings or startup refused (missing secret, bad value)
    │   ├── RulesInvalid         rules/ cannot be used; lists every problem (rules/load.py)
    │   └── DatabaseMissing      no database where one must already be (also FileNotFoundError)
    ├── ConditionError           one rule condition refused at load (rules/evaluate.py)
    ├── StorageUnavailable       the database cannot take the work now (locked, disk full): a 503
    ├── StorageError             the database refused a statement: a bug (SQL, schema), a 500
    │   └── StorageRefused       ... for the data of one row (a constraint, a value it cannot hold)
    ├── SilenceInvalid           a silence that cannot hold as asked (alerts/silences.py)
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
        └── NormalizerFailed     ... because its normalizer raised: a bug, kept as an error

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
    """The database cannot take the work now: locked or busy past the wait, the disk
    full or failing, the file unopenable or read-only, memory exhausted. A write was
    not committed; callers must not acknowledge it, and may try again later."""


class StorageError(PulsehookError):
    """The database refused a statement for what it is (SQL that does not fit the
    schema, a driver misuse): a fault of pulsehook, and trying again will not help.
    The driver's error is the cause."""


class StorageRefused(StorageError):
    """The database refused the data of a row (a constraint, a value it cannot
    hold): that row's fault, not the store's; the others of its write may go."""


class SilenceInvalid(PulsehookError):
    """A silence asked for without what it needs: a target, an end, a window's length.

    ``field`` is the one field at fault, when it is one, and ``detail`` what is
    wrong with its value (the message without the field's name).
    """

    def __init__(self, message: str, *, field: str | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.field = field
        self.detail = detail or message


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
    """Raised by normalization for events (or payloads) it does not turn into facts.

    Normalization raises nothing else on any JSON input; a normalizer's own
    failure comes as the subclass ``NormalizerFailed``.
    """


class NormalizerFailed(UnsupportedEvent):
    """A normalizer raised on a payload: a bug of pulsehook, never the payload's fault.

    Normalization has nothing to say about the payload (hence an UnsupportedEvent
    to whoever only asks for facts), but processing keeps the delivery as an
    ``error``, with this message, and tries it again at the next start.
    """
