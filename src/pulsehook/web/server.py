"""The HTTP server's bounds: what a connection may cost before anyone is authenticated.

uvicorn's httptools protocol reads request lines and headers of any size for any
time, and holds a socket that sends nothing forever; its ``timeout_keep_alive``
only covers the gap between two requests. :class:`BoundedHttpToolsProtocol`
adds, per connection and with one timer re-armed lazily:

* a cap on the request line and headers together (431, then close);
* a header deadline counted from the connection's opening or from the previous
  answer (408 if part of a request came, else a silent close);
* an idle-gap limit while a body arrives (the connection is cut; the app sees
  ``http.disconnect``);
* an early 503 and close for connections past ``limit_concurrency``, so idle
  sockets cannot use up the file descriptors that ``accept()`` needs.

Everything else (keep-alive, pipelining, flow control) is uvicorn's own.

Why these numbers:

* ``MAX_HEADER_BYTES`` 64 KiB: GitHub's deliveries carry about 1 KiB of headers
  and a browser with the session cookie a few KiB; nginx's default is 32 KiB and
  Node's 16 KiB, so 64 KiB leaves room for proxies' forwarding headers while a
  connection's header memory stays small.
* ``HEADER_TIMEOUT_SECONDS`` 10 s: GitHub writes its headers at once and gives a
  whole delivery 10 s, so a request whose headers take longer has failed on
  GitHub's side anyway; it is a total, so a byte every few seconds (slow loris)
  does not extend it.
* ``BODY_IDLE_TIMEOUT_SECONDS`` 30 s: a gap without a byte, not a total, so a
  25 MiB delivery on a slow but moving link always passes; 30 s without a byte
  means the peer is gone or stalling on purpose. Time in which the server itself
  stopped reading (flow control, a slow app) does not count.
* ``MAX_OPEN_FILES`` 65,536: the soft ``RLIMIT_NOFILE`` is raised to the hard
  limit, at most this; a tenth of it (at least ``MIN_RESERVED_FILES``) stays for
  the database, logs and outgoing connections, the rest bounds connections.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

LINGER_SECONDS = 2.0  # a refused client's time to read the answer before the close
LINGER_BYTES = 64 * 1024 * 1024  # ... and what it may still send meanwhile (discarded, never kept)
MAX_HEADER_BYTES = 64 * 1024
HEADER_TIMEOUT_SECONDS = 10.0
BODY_IDLE_TIMEOUT_SECONDS = 30.0
MAX_OPEN_FILES = 65_536
MIN_RESERVED_FILES = 128
LOW_OPEN_FILES = 4096  # below this, `serve` says the limit is low

# What the connection's timer watches.
_NOTHING = 0  # the app is answering, or the connection is done
_HEAD = 1  # waiting for a request line and headers: a total deadline
_BODY = 2  # reading a request body: an idle-gap deadline


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded header size, header time and body stalls.

    The bounds are class attributes; :func:`bounded_protocol` makes a subclass
    with other values. Per request the cost is a few attribute updates and two
    clock reads: the one timer of a connection is re-armed only when it fires, or
    when a deadline comes earlier than the one it is set for.
    """

    max_header_bytes: int = MAX_HEADER_BYTES
    header_timeout: float = HEADER_TIMEOUT_SECONDS
    body_idle_timeout: float = BODY_IDLE_TIMEOUT_SECONDS

    # Per-connection state, as class defaults: no __init__ override on the hot path.
    _in_head = True  # the parser is between requests or inside a request line/headers
    _began = False  # ... and a request has begun (its first byte came)
    _head_bytes = 0  # bytes received since the current request's head began
    _watch = _NOTHING
    _since = 0.0  # loop time the watched phase started (head) or last saw a byte (body)
    _timer: asyncio.TimerHandle | None = None
    _timer_at = 0.0
    _lingering: asyncio.TimerHandle | None = None  # refused: reading to discard, then close
    _discarded = 0

    # --- connection ---------------------------------------------------------------

    def connection_made(  # type: ignore[override]  # uvicorn's own signature: a stream transport
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        limit = self.limit_concurrency
        if limit is not None and len(self.connections) > limit:
            # Refused now rather than at its headers: an idle socket past the limit
            # would otherwise hold a file descriptor until its header deadline.
            self._refuse(503, "busy", "too many connections; try again shortly")
            return
        self._watch_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._watch = _NOTHING
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lingering is not None:
            self._lingering.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            if self._lingering is not None:
                self._discard(data)
                return
            room = self.max_header_bytes - self._head_bytes
            if len(data) > room:
                self._feed_past_cap(data, room)
                return
            self._head_bytes += len(data)
        elif self._watch == _BODY:
            self._since = self.loop.time()
        HttpToolsProtocol.data_received(self, data)

    def _feed_past_cap(self, data: bytes, room: int) -> None:
        """Feed a read that would take the head past the cap: only up to the cap,
        and the rest only if the head was complete by then. (The copies happen once
        per such read, typically the first read of a large body.)"""
        super().data_received(data[:room])
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # a parse error was answered, or the connection was upgraded
        if self._in_head:
            self._refuse(431, "headers_too_large", "request line and headers exceed 64 KiB")
            return
        # The rest is the body, or a next request: through the same count.
        self.data_received(data[room:])

    def handle_websocket_upgrade(self) -> None:
        # The websocket protocol takes the transport over, with its own timeouts.
        self._watch = _NOTHING
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().handle_websocket_upgrade()

    # --- parser callbacks -----------------------------------------------------------
    # These and data_received run for every request: they call the base class
    # directly, as super() builds a proxy object on each call (Python 3.11).

    def on_message_begin(self) -> None:
        self._began = True
        HttpToolsProtocol.on_message_begin(self)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._watch = _BODY
        self._since = now = self.loop.time()
        due = now + self.body_idle_timeout
        if self._timer is None or self._timer_at > due:  # (inlined: once per request)
            self._wake_by(due)
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        # A next request's bytes later in this same read go uncounted: its head
        # may pass the cap by at most one read (the transport's read size).
        self._in_head, self._began, self._head_bytes = True, False, 0
        if self._watch == _BODY:
            # The app answers now; when the answer was already sent (say a 413),
            # the head deadline armed by it runs on.
            self._watch = _NOTHING
        HttpToolsProtocol.on_message_complete(self)

    def on_response_complete(self) -> None:
        HttpToolsProtocol.on_response_complete(self)
        # uvicorn arms its keep-alive timer exactly when the connection waits for
        # a next request (open, nothing pipelined): the head deadline starts too.
        if self.timeout_keep_alive_task is not None:
            self._watch = _HEAD
            self._since = now = self.loop.time()
            due = now + self.header_timeout
            if self._timer is None or self._timer_at > due:  # (inlined: once per request)
                self._wake_by(due)

    # --- the timer ------------------------------------------------------------------

    def _watch_head(self) -> None:
        self._watch = _HEAD
        now = self.loop.time()
        self._since = now
        self._wake_by(now + self.header_timeout)

    def _wake_by(self, due: float) -> None:
        """Make sure the timer fires no later than ``due``."""
        timer = self._timer
        if timer is not None:
            if self._timer_at <= due:
                return  # it fires earlier and re-arms for what is watched then
            timer.cancel()
        self._timer_at = due
        self._timer = self.loop.call_at(due, self._expire)

    def _expire(self) -> None:
        self._timer = None
        watch = self._watch
        if watch == _NOTHING or self.transport.is_closing():
            return
        now = self.loop.time()
        if watch == _BODY:
            if self.flow.read_paused:
                self._since = now  # the server stopped reading, not the client
            due = self._since + self.body_idle_timeout
        else:
            due = self._since + self.header_timeout
        if now < due:
            self._wake_by(due)
            return
        self._watch = _NOTHING
        if watch == _HEAD and self._in_head and self._began:
            self._refuse(408, "request_timeout", "the request headers did not arrive in time")
        else:
            self.transport.close()  # an idle socket, or a stalled body (the app sees a disconnect)

    def send_400_response(self, msg: str) -> None:
        # A request the parser cannot read (a bad Content-Length, a NUL in a
        # header): answered in the one error shape like every other error.
        self._refuse(400, "bad_request", f"malformed HTTP request: {msg[:200]}")

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` in the one error shape and close; only close while an
        answer is being written."""
        self._watch = _NOTHING
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            body = orjson.dumps({"error": {"code": code, "message": message}})
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head += [
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
                body,
            ]
            self.transport.write(b"".join(head))
        self._linger()

    def _linger(self) -> None:
        """Close after the client has read the answer: closing with its request
        still unread would reset the connection, and a reset can wipe the answer
        before the client reads it (RFC 9112 §9.6). So: half-close, discard what
        still comes for a bounded time and amount, then close."""
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.flow.resume_reading()
        self._lingering = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _discard(self, data: bytes) -> None:
        self._discarded += len(data)
        if self._discarded > LINGER_BYTES:
            self.transport.close()


def bounded_protocol(
    *, max_header_bytes: int, header_timeout: float, body_idle_timeout: float
) -> type[BoundedHttpToolsProtocol]:
    """A protocol class for uvicorn's ``http=`` with these bounds."""
    header_cap, head_time, body_idle = max_header_bytes, header_timeout, body_idle_timeout

    class Bounded(BoundedHttpToolsProtocol):
        max_header_bytes = header_cap
        header_timeout = head_time
        body_idle_timeout = body_idle

    return Bounded


def raise_open_file_limit(cap: int = MAX_OPEN_FILES) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (at most ``cap``); the soft
    limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return cap if soft == resource.RLIM_INFINITY else soft


def concurrency_limit(open_files: int) -> int:
    """Connections served at once with ``open_files`` descriptors; the rest get 503."""
    usable = min(open_files, MAX_OPEN_FILES)
    return max(1, usable - max(MIN_RESERVED_FILES, usable // 10))


def low_limit_warning(open_files: int) -> str | None:
    """One line for the operator when the open-file limit is low, else None."""
    if open_files >= LOW_OPEN_FILES:
        return None
    return (
        f"WARNING: the open-file limit (RLIMIT_NOFILE) is {open_files}; at most "
        f"{concurrency_limit(open_files)} connections are served at once, the rest get 503. "
        "Raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) to serve more."
    )


def uvicorn_options(
    *,
    open_files: int,
    max_header_bytes: int,
    header_timeout: float,
    body_idle_timeout: float,
) -> dict[str, Any]:
    """The keyword arguments ``uvicorn.run`` takes for these bounds."""
    return {
        "http": bounded_protocol(
            max_header_bytes=max_header_bytes,
            header_timeout=header_timeout,
            body_idle_timeout=body_idle_timeout,
        ),
        "limit_concurrency": concurrency_limit(open_files),
    }
