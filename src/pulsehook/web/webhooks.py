"""``POST /webhooks/github``: read bytes, check them, hand them to intake.

The hottest path of the service, so it is a plain ASGI app (no Request/Response
objects): headers read once from the scope, the body read in chunks with the
size cap enforced and the HMAC computed while reading, the signature checked
before anything is parsed, and the answer sent only after the delivery's group
commit (or once the wait for it is too long for GitHub).

An unauthenticated sender costs at most a chunk of memory: a signature that
cannot match is refused before a byte is read, a body past ``LARGE_BODY``
waits in an unlinked file in the data directory until its signature is known
(then read back once), and only ``max_large_bodies`` such bodies are read at a
time. It learns nothing but "too
large", "busy" or "bad signature".
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from typing import IO, Any, cast
from urllib.parse import unquote_to_bytes

import orjson
import simdjson
from starlette.types import Receive, Scope, Send

from ..clock import iso
from ..errors import (
    BadRequest,
    PayloadTooLarge,
    SignatureInvalid,
    StorageUnavailable,
    UnsupportedMediaType,
    WebhookRejected,
)
from ..events import Topic
from ..github.verify import Signature, malformed
from ..logs import note
from ..settings import Settings
from ..store.deliveries import Delivery
from ..telemetry import event_label

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
BOM = b"\xef\xbb\xbf"  # UTF-8's byte-order mark: simdjson skips it, processing refuses it
LARGE_BODY = 1024 * 1024  # a body past this needs a large-body slot to be read
SLOT_WAIT_SECONDS = 1.0  # how long a large body waits for a slot before 503 busy
RETRY_AFTER_SECONDS = 5  # slots free as large bodies in flight are read and committed
MAX_HOOK_ID = 2**63 - 1  # SQLite's INTEGER
_NO_BOM = "(not valid JSON on the wire, RFC 8259)"
_JSON_HEADERS = [(b"content-type", b"application/json")]
_NO_HEADERS: list[tuple[bytes, bytes]] = []
_BUSY = (
    503,
    {"error": {"code": "busy", "message": "too many large bodies in flight; retry shortly"}},
    [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())],
)
Answer = tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]
# A body read in several chunks stays in the bytearray it was read into: a copy
# to bytes would double what every large body costs.
Body = bytes | bytearray


class LargeBodies:
    """Slots for reading large bodies: at most ``n`` at once, the next wait briefly."""

    def __init__(self, n: int) -> None:
        self._slots = asyncio.Semaphore(n)
        self.free = n  # slots not held, for tests and diagnostics

    async def take(self, wait: float) -> bool:
        """True once a slot is held (give it back); False if none came within ``wait``."""
        try:
            async with asyncio.timeout(wait):
                await self._slots.acquire()
        except TimeoutError:
            return False
        self.free -= 1
        return True

    def give(self) -> None:
        self.free += 1
        self._slots.release()


def declared_length(value: str | None, limit: int) -> int:
    """The Content-Length declared (0 if none); PayloadTooLarge past ``limit``."""
    if value is None or not (value.isascii() and value.isdigit()):
        return 0  # chunked, or refused by the server's parser already
    digits = value.lstrip("0")
    # int() of thousands of digits is slow (and refused past 4300).
    if len(digits) > len(str(limit)):
        raise PayloadTooLarge(f"declared body exceeds the {limit}-byte limit")
    declared = int(digits or "0")
    if declared > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the {limit}-byte limit")
    return declared


def hook_id(value: str | None) -> int | None:
    """``X-GitHub-Hook-ID`` as a number (None if absent); BadRequest unless 1..2**63-1.

    Not covered by the signature, so it is checked here, where it is read:
    ``isdigit()`` alone takes "²" and full-width digits, which ``int()`` refuses
    or reads, and a value past 64 bits fails the INSERT.
    """
    if not value:
        return None
    digits = value.lstrip("0")
    if value.isascii() and value.isdigit() and 0 < len(digits) <= 19:
        number = int(digits)
        if number <= MAX_HOOK_ID:
            return number
    raise BadRequest(f"X-GitHub-Hook-ID must be a whole number from 1 to {MAX_HOOK_ID}")


def _form_bytes(field: bytes) -> bytes:
    """A form field's exact bytes: ``+`` is a space, ``%XX`` the byte it names."""
    return unquote_to_bytes(field.replace(b"+", b" "))


def payload_document(body: Body, content_type: str) -> Body:
    """The JSON document inside the body (for form-encoded bodies, the ``payload`` field).

    The form field is decoded to the bytes it stands for, then checked as UTF-8
    JSON like a JSON body: decoding it as text first would mangle what is not
    Latin-1.
    """
    if content_type == JSON_TYPE:
        return body
    if content_type == FORM_TYPE:
        if body.startswith(BOM):
            raise BadRequest(f"body starts with a byte-order mark {_NO_BOM}")
        for field in body.split(b"&"):
            name, _, value = field.partition(b"=")
            if name == b"payload" or _form_bytes(bytes(name)) == b"payload":
                document = _form_bytes(bytes(value))
                if document.startswith(BOM):
                    raise BadRequest(f"the 'payload' field starts with a byte-order mark {_NO_BOM}")
                return document
        raise BadRequest("form-encoded body has no 'payload' field")
    raise UnsupportedMediaType(
        f"content type {content_type or '(none)'!r} is not supported; "
        f"use {JSON_TYPE} or {FORM_TYPE}"
    )


def validate_document(document: Body) -> tuple[str | None, str | None]:
    """Check ``document`` is JSON in UTF-8; its (action, repository full name), best effort.

    simdjson validates the whole document without building Python objects (five
    times faster than a full parse on a real payload); the two fields that
    list deliveries are read from it lazily. A fresh parser per call: a parser
    refuses a new document while values of the last one are alive. It skips a
    byte-order mark that processing refuses, so that is refused here.
    """
    if document.startswith(BOM):
        raise BadRequest(f"body starts with a byte-order mark {_NO_BOM}")
    try:
        data = simdjson.Parser().parse(document)
    except (ValueError, RuntimeError) as exc:  # RuntimeError: integers past 64 bits
        raise BadRequest(f"body is not valid JSON (UTF-8): {exc}") from exc
    if not isinstance(data, simdjson.Object):
        return None, None
    action = data.get("action")
    repo = data.get("repository")
    name = repo.get("full_name") if isinstance(repo, simdjson.Object) else None
    return (action if isinstance(action, str) else None, name if isinstance(name, str) else None)


async def _answer(
    send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] = _NO_HEADERS
) -> None:
    content = orjson.dumps(body)
    # With a length, the answer goes out in one piece rather than chunked.
    headers = [*_JSON_HEADERS, (b"content-length", str(len(content)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


async def _error(send: Send, status: int, code: str, message: str) -> None:
    await _answer(send, status, {"error": {"code": code, "message": message}})


def _report(
    scope: Scope, headers: dict[str, str], status: int, outcome: str, reason: str | None
) -> None:
    """One log line and one count per delivery answered (never a header's secret:
    only the event, the delivery id and the repository are named)."""
    event = headers.get("x-github-event")
    svc = scope["app"].state.runtime
    svc.telemetry.deliveries.labels(event_label(event), outcome).inc()
    if status >= 500:
        svc.events.publish(Topic.REFUSED)  # recovery asks GitHub again once it is over
    note(
        log,
        logging.INFO if status < 400 else logging.WARNING,
        f"delivery {status} {outcome}",
        event=event,
        delivery=headers.get("x-github-delivery"),
        hook=headers.get("x-github-hook-id"),
        reason=reason,
    )


class WebhookEndpoint:
    """The ASGI app behind ``POST /webhooks/github``."""

    def __init__(self, settings: Settings, *, large_body_wait: float = SLOT_WAIT_SECONDS) -> None:
        # Read once: the request path should not re-parse configuration.
        self.secrets = settings.secrets()
        self.signed = bool(self.secrets) or not settings.insecure
        self.max_body = settings.max_body_bytes
        self.answer_timeout = settings.answer_timeout_seconds
        self.large = LargeBodies(settings.max_large_bodies)
        self.large_body_wait = large_body_wait
        self.spool_dir = settings.data_dir  # large bodies wait here, not in memory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] != "POST":
            await _error(send, 405, "method_not_allowed", "use POST")
            return
        try:
            status, body, extra = await self.receive(scope, receive, headers)
        except WebhookRejected as exc:
            _report(scope, headers, exc.status, exc.code, exc.message)
            await _error(send, exc.status, exc.code, exc.message)
            return
        except StorageUnavailable as exc:
            _report(scope, headers, 503, "storage_unavailable", str(exc))
            await _error(send, 503, "storage_unavailable", str(exc))
            return
        except Exception:
            # A fault of this service, not of the input: still the one error shape.
            log.exception("webhook delivery could not be handled")
            _report(scope, headers, 500, "internal_error", None)
            await _error(send, 500, "internal_error", "the delivery could not be handled")
            return
        error = body.get("error")
        if isinstance(error, dict):
            _report(scope, headers, status, str(error.get("code")), str(error.get("message")))
        else:
            _report(scope, headers, status, str(body.get("status")), None)
        await _answer(send, status, body, extra)

    # The endpoint's contract, one branch per status code, in the order they are decided.
    async def receive(  # noqa: C901
        self, scope: Scope, receive: Receive, headers: dict[str, str]
    ) -> Answer:
        declared = declared_length(headers.get("content-length"), self.max_body)
        signature = headers.get("x-hub-signature-256")
        check: Signature | None = None
        if self.signed:
            problem = malformed(signature)
            if problem is not None:
                raise SignatureInvalid(problem)
            check = Signature(self.secrets)
        held = declared > LARGE_BODY
        if held and not await self.large.take(self.large_body_wait):
            return _BUSY
        try:
            # One copy of the body: a body in one chunk is that chunk, a longer
            # one grows a single buffer (no list of chunks joined at the end).
            body: Body = b""
            buffer: bytearray | None = None
            spool: IO[bytes] | None = None
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise BadRequest("client disconnected before the body was complete")
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    raise PayloadTooLarge(f"body exceeds the {self.max_body}-byte limit")
                if size > LARGE_BODY and not held:  # undeclared (chunked), found large
                    if not await self.large.take(self.large_body_wait):
                        return _BUSY
                    held = True
                if check is not None:
                    check.update(chunk)
                more = message.get("more_body", False)
                if spool is None and size > LARGE_BODY:
                    # Past a chunk's worth, the body waits on disk until its
                    # signature is known: an unsigned sender costs no memory.
                    spool = tempfile.TemporaryFile(dir=self.spool_dir)  # noqa: SIM115 - closed below
                    if buffer is not None:
                        spool.write(buffer)
                        buffer = None
                    elif body:
                        spool.write(body)
                        body = b""
                if spool is not None:
                    spool.write(chunk)
                elif buffer is not None:
                    buffer += chunk
                elif more:
                    buffer = bytearray(chunk)
                else:
                    body = chunk
                if not more:
                    break
            if check is not None and not check.matches(signature):
                raise SignatureInvalid(
                    "signature does not match the body under any configured secret"
                )
            if spool is not None:
                spool.seek(0)
                body = spool.read()  # the one copy, for a sender whose signature matched
            elif buffer is not None:
                body = buffer  # never changed from here on
            return await self.store(scope, headers, body)
        finally:
            if spool is not None:
                spool.close()
            if held:
                self.large.give()

    async def store(self, scope: Scope, headers: dict[str, str], body: Body) -> Answer:
        svc = scope["app"].state.runtime
        event = headers.get("x-github-event")
        guid = headers.get("x-github-delivery")
        if not event or not guid:
            missing = [
                h for h, v in (("X-GitHub-Event", event), ("X-GitHub-Delivery", guid)) if not v
            ]
            raise BadRequest(f"missing header(s): {', '.join(missing)}")
        hook = hook_id(headers.get("x-github-hook-id"))
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        document = payload_document(body, content_type)
        action, repo = validate_document(document)
        delivery = Delivery(
            guid=guid,
            event=event,
            # Bytes-like is all storing needs (zstd reads any buffer).
            payload=cast(bytes, document),
            content_type=content_type,
            received_at=iso(svc.clock.now()),
            action=action,
            hook_id=hook,
            repo=repo,
            hook_target=headers.get("x-github-hook-installation-target-type") or None,
        )
        if not await svc.intake.submit(delivery, timeout=self.answer_timeout):
            return 200, {"delivery": guid, "status": "duplicate"}, _NO_HEADERS
        if event == "ping":
            return 200, {"delivery": guid, "status": "pong"}, _NO_HEADERS
        return 202, {"delivery": guid, "status": "accepted"}, _NO_HEADERS
