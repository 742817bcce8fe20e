"""What a connection may cost before it is authenticated: header size, header and
body read time, idle sockets and open files (web/server.py), over raw sockets.

The timing tests serve the real app in-process with short bounds; the file-limit
tests run the real ``pulsehook serve`` as a subprocess with a low RLIMIT_NOFILE.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pulsehook.app import create_app
from pulsehook.settings import Settings
from pulsehook.web.server import (
    LOW_OPEN_FILES,
    bounded_protocol,
    concurrency_limit,
    low_limit_warning,
)

from .conftest import SECRET, free_port, payload, signed_headers, wait_for

HEAD_TIMEOUT = 0.5
BODY_IDLE = 0.5
HEAD_CAP = 8 * 1024
CLOSE_WITHIN = 5.0  # bound on waiting for the server to act, well past the bounds above

# `pulsehook serve` with a shorter header deadline: the command itself, with the one
# module constant `_serve` hands to uvicorn changed before it runs.
SHORT_DEADLINE_SERVE = (
    "import sys\n"
    "import pulsehook.web.server as server\n"
    "server.HEADER_TIMEOUT_SECONDS = float(sys.argv[1])\n"
    "from pulsehook.cli import main\n"
    "main(sys.argv[2:])\n"
)


# --- raw HTTP over sockets ---------------------------------------------------------


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=CLOSE_WITHIN)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def delivery(data: Any, event: str = "push") -> bytes:
    body = json.dumps(data).encode()
    return request("POST", "/webhooks/github", body, signed_headers(body, event))


def read_response(sock: socket.socket, buffer: bytearray) -> int:
    """Read one response (status line, headers, Content-Length body) from ``sock``;
    its status. What follows it stays in ``buffer``."""
    deadline = time.monotonic() + CLOSE_WITHIN
    while b"\r\n\r\n" not in buffer:
        assert time.monotonic() < deadline, "no response in time"
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {bytes(buffer)!r}"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
    length = int(fields.get(b"content-length", b"0"))
    while len(rest) < length:
        assert time.monotonic() < deadline, "no response body in time"
        chunk = sock.recv(65536)
        assert chunk, "closed inside a response body"
        rest += chunk
    buffer[:] = rest[length:]
    return int(head.split(b" ", 2)[1])


def read_until_closed(sock: socket.socket, within: float = CLOSE_WITHIN) -> bytes:
    """Everything the server sends until it closes; fails if it does not close in time."""
    deadline = time.monotonic() + within
    data = b""
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data  # closed with our unread bytes in its buffer: a reset
        except TimeoutError:
            raise AssertionError(f"still open after {within} s; got {data!r}") from None
        if not chunk:
            return data
        data += chunk


def send_all(sock: socket.socket, data: bytes) -> None:
    """Send, tolerating the server closing before it has read everything."""
    with suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def pace(seconds: float) -> None:
    """A slow client's pause between writes (pacing the client, not waiting for a result)."""
    time.sleep(seconds)


# --- servers -----------------------------------------------------------------------


def recording(app: ASGIApp, seen: list[str]) -> ASGIApp:
    """``app``, noting the type of every message it receives."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def noted() -> Message:
            message = await receive()
            seen.append(message["type"])
            return message

        await app(scope, noted, send)

    return wrapped


@contextmanager
def bounded_server(app: ASGIApp) -> Iterator[int]:
    """``app`` on uvicorn in this process, with the protocol and short bounds; its port."""
    port = free_port()
    protocol = bounded_protocol(
        max_header_bytes=HEAD_CAP, header_timeout=HEAD_TIMEOUT, body_idle_timeout=BODY_IDLE
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", http=protocol
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive())
        assert server.started, "server did not start"
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def app_port(settings: Settings) -> Iterator[int]:
    with bounded_server(create_app(settings)) as port:
        yield port


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, stderr: Path) -> None:
        self.proc, self.port, self.stderr = proc, port, stderr
        self.url = f"http://127.0.0.1:{port}"

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


@contextmanager
def serve(
    tmp_path: Path, *, nofile: tuple[int, int], header_timeout: float | None = None
) -> Iterator[Served]:
    """``pulsehook serve`` as a subprocess with this RLIMIT_NOFILE; stopped by its PID."""
    port = free_port()
    args = ["serve", "--port", str(port), "--log-level", "warning"]
    args += ["--data-dir", str(tmp_path / "data"), "--rules-dir", str(tmp_path / "rules")]
    if header_timeout is None:
        command = [sys.executable, "-m", "pulsehook", *args]
    else:
        command = [sys.executable, "-c", SHORT_DEADLINE_SERVE, str(header_timeout), *args]
    env = dict(os.environ, PULSEHOOK_WEBHOOK_SECRET=SECRET)
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile),
        )
    served = Served(proc, port, err)
    try:

        def up() -> bool:
            assert proc.poll() is None, err.read_text()
            try:
                return httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=30)
        yield served
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


@pytest.fixture
def many_files() -> Iterator[None]:
    """This process may open a few thousand sockets for the length of a test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if wanted < 2048:
        pytest.skip(f"the hard open-file limit ({hard}) is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle(port: int, count: int, stack: ExitStack) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=CLOSE_WITHIN)
        stack.callback(sock.close)
        sockets.append(sock)
    return sockets


def closed_by_server(sockets: list[socket.socket], within: float) -> dict[socket.socket, bytes]:
    """Wait (bounded) until the server has closed every one of ``sockets``; what each got."""
    got: dict[socket.socket, bytes] = {s: b"" for s in sockets}
    open_ = set(sockets)
    deadline = time.monotonic() + within
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, sock)
        while open_:
            left = deadline - time.monotonic()
            assert left > 0, f"{len(open_)} of {len(sockets)} sockets still open after {within} s"
            for key, _ in selector.select(timeout=min(left, 0.5)):
                ready: socket.socket = key.data
                try:
                    chunk = ready.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                except BlockingIOError:
                    continue
                if chunk:
                    got[ready] += chunk
                else:
                    selector.unregister(ready)
                    open_.discard(ready)
    return got


def deliver_fresh(url: str, count: int) -> list[int]:
    """``count`` signed deliveries, each on a new connection (each one needs an accept)."""
    statuses = []
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=url, timeout=10, limits=limits) as client:
        for i in range(count):
            body = json.dumps({**payload("push"), "after": f"{i:040x}"}).encode()
            answer = client.post(
                "/webhooks/github", content=body, headers=signed_headers(body, "push")
            )
            statuses.append(answer.status_code)
    return statuses


# --- header size -------------------------------------------------------------------


def test_serve_answers_431_to_a_1_mib_header_and_closes(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with serve(tmp_path, nofile=(soft, hard)) as served:
        with connect(served.port) as sock:
            send_all(sock, request("GET", "/healthz", headers={"X-Padding": "a" * (1024 * 1024)}))
            answer = read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
        assert b"connection: close" in answer
        # Others are still served, a large delivery included (its first read
        # carries the headers and more than the cap of body).
        assert httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200
        big = {**payload("push"), "padding": "x" * (2 * 1024 * 1024)}
        with connect(served.port) as sock:
            sock.sendall(delivery(big))
            assert read_response(sock, bytearray()) == 202


def test_headers_up_to_the_cap_pass_and_past_it_get_431(app_port: int) -> None:
    with connect(app_port) as sock:
        sock.sendall(request("GET", "/healthz", headers={"X-Padding": "a" * (HEAD_CAP - 200)}))
        assert read_response(sock, bytearray()) == 200
    with connect(app_port) as sock:
        send_all(sock, request("GET", "/healthz", headers={"X-Padding": "a" * HEAD_CAP}))
        assert read_until_closed(sock).startswith(b"HTTP/1.1 431 ")


def test_a_header_trickled_in_small_reads_is_capped_too(app_port: int) -> None:
    with connect(app_port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Padding: ")
        deadline = time.monotonic() + CLOSE_WITHIN
        try:
            # Each send a read of its own on the server (NODELAY, paced).
            for _ in range(HEAD_CAP // 1024 + 2):
                assert time.monotonic() < deadline
                sock.sendall(b"a" * 1024)
                pace(0.01)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert read_until_closed(sock).startswith(b"HTTP/1.1 431 ")


def test_a_body_larger_than_the_cap_in_one_read_is_not_mistaken_for_headers(
    app_port: int,
) -> None:
    with connect(app_port) as sock:
        buffer = bytearray()
        # Two deliveries in one write: headers, 100 KiB body, then the next request.
        one = delivery({**payload("push"), "padding": "x" * (100 * 1024)})
        two = delivery(payload("push"))
        sock.sendall(one + two)
        assert read_response(sock, buffer) == 202
        assert read_response(sock, buffer) == 202


# --- header time -------------------------------------------------------------------


def test_half_a_request_line_gets_408_after_the_header_timeout(app_port: int) -> None:
    with connect(app_port) as sock:
        sock.sendall(b"POST /webhooks/gi")
        started = time.monotonic()
        answer = read_until_closed(sock)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert HEAD_TIMEOUT * 0.8 <= waited < CLOSE_WITHIN


def test_a_silent_connection_is_closed_without_an_answer(app_port: int) -> None:
    with connect(app_port) as sock:
        started = time.monotonic()
        assert read_until_closed(sock) == b""
        assert time.monotonic() - started >= HEAD_TIMEOUT * 0.8


def test_headers_trickled_a_byte_at_a_time_are_cut_at_the_deadline(app_port: int) -> None:
    """The header deadline is a total: bytes that keep coming do not extend it."""
    head = request("GET", "/healthz", headers={"X-Slow": "a" * 200})
    started = time.monotonic()
    with connect(app_port) as sock:
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            for byte in head:
                assert time.monotonic() - started < CLOSE_WITHIN, "never cut off"
                if selector.select(timeout=0.02):
                    break  # the server answered (and closes)
                send_all(sock, bytes([byte]))
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert time.monotonic() - started < HEAD_TIMEOUT + CLOSE_WITHIN / 2


def test_keep_alive_gets_a_fresh_header_deadline_after_each_answer(app_port: int) -> None:
    with connect(app_port) as sock:
        buffer = bytearray()
        started = time.monotonic()
        for _ in range(4):  # together past the header timeout, each well within it
            sock.sendall(request("GET", "/healthz"))
            assert read_response(sock, buffer) == 200
            pace(HEAD_TIMEOUT / 2.5)
        assert time.monotonic() - started > HEAD_TIMEOUT
        # Pipelined: three requests in one write, three answers in order.
        sock.sendall(request("GET", "/healthz") * 3)
        assert [read_response(sock, buffer) for _ in range(3)] == [200, 200, 200]
        # Then idle: closed at the header deadline (uvicorn's keep-alive is 5 s).
        assert read_until_closed(sock, within=HEAD_TIMEOUT + 2) == b""


# --- body time ---------------------------------------------------------------------


def test_a_stalled_body_is_cut_off_and_the_app_sees_a_disconnect(settings: Settings) -> None:
    seen: list[str] = []
    with bounded_server(recording(create_app(settings), seen)) as port, connect(port) as sock:
        body = json.dumps(payload("push")).encode()
        whole = delivery(payload("push"))
        head = whole[: len(whole) - len(body)]
        sock.sendall(head + body[:100])
        started = time.monotonic()
        read_until_closed(sock)
        assert time.monotonic() - started >= BODY_IDLE * 0.8
        wait_for(lambda: "http.disconnect" in seen, timeout=CLOSE_WITHIN)


def test_a_slow_body_that_keeps_moving_is_read_whole(app_port: int) -> None:
    """The body limit is an idle gap, not a total: this one takes several times it."""
    whole = delivery({**payload("push"), "padding": "x" * 4000})
    size = len(whole) // 12 + 1
    started = time.monotonic()
    with connect(app_port) as sock:
        pieces = [whole[i : i + size] for i in range(0, len(whole), size)]
        sock.sendall(pieces[0] + pieces[1])  # headers complete, then the body drips
        for piece in pieces[2:]:
            pace(BODY_IDLE / 3)
            sock.sendall(piece)
        assert read_response(sock, bytearray()) == 202
    assert time.monotonic() - started > 3 * BODY_IDLE


# --- open files --------------------------------------------------------------------


def test_concurrency_leaves_room_for_the_process_own_files() -> None:
    assert concurrency_limit(1024) == 1024 - 128
    assert concurrency_limit(65_536) == 65_536 - 6553
    assert concurrency_limit(1_048_576) == concurrency_limit(65_536)
    assert low_limit_warning(LOW_OPEN_FILES) is None
    warning = low_limit_warning(1024)
    assert warning is not None and "1024" in warning and "\n" not in warning


@pytest.mark.usefixtures("many_files")
def test_idle_sockets_do_not_starve_deliveries(tmp_path: Path) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    idle_count, deadline = 1100, 4.0
    # Started with a soft limit of 1024, as on a stock system: serve raises it.
    with (
        serve(tmp_path, nofile=(1024, hard), header_timeout=deadline) as served,
        ExitStack() as stack,
    ):
        idle = open_idle(served.port, idle_count, stack)
        wait_for(lambda: served.open_files() > idle_count, timeout=deadline / 2)
        statuses = deliver_fresh(served.url, 100)
        assert all(200 <= s < 300 for s in statuses), sorted(set(statuses))
        got = closed_by_server(idle, within=deadline + CLOSE_WITHIN)
        assert set(got.values()) == {b""}  # idle sockets are closed without an answer
        assert served.stderr.read_text().count("WARNING: the open-file limit") == 0


@pytest.mark.usefixtures("many_files")
def test_past_a_low_file_limit_connections_get_503_at_once(tmp_path: Path) -> None:
    limit = concurrency_limit(1024)
    with serve(tmp_path, nofile=(1024, 1024)) as served, ExitStack() as stack:
        warnings = [
            line for line in served.stderr.read_text().splitlines() if "open-file limit" in line
        ]
        assert len(warnings) == 1 and "1024" in warnings[0]
        idle = open_idle(served.port, limit + 50, stack)
        refused = closed_by_server(idle[limit:], within=CLOSE_WITHIN)
        assert all(answer.startswith(b"HTTP/1.1 503 ") for answer in refused.values())
        for sock in idle[:limit]:
            sock.close()
        # The process kept its own files: it serves again once the flood is gone.
        wait_for(lambda: served.open_files() < 100, timeout=CLOSE_WITHIN)
        assert deliver_fresh(served.url, 5) == [202] * 5


def test_a_refused_client_still_sending_reads_its_answer(app_port: int) -> None:
    """A client that sends its whole (too large) request before it reads, as
    simple clients do, gets its 431: the server half-closes and discards what
    still comes for a while, instead of resetting the connection under it."""
    with connect(app_port) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: ")
        # Raises if the server resets the connection while we are still sending.
        for _ in range(32 * 16):
            sock.sendall(b"a" * 65536)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]


@pytest.mark.parametrize(
    "head",
    [
        b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",
        b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
    ],
)
def test_a_request_the_parser_refuses_gets_the_one_error_shape(app_port: int, head: bytes) -> None:
    with connect(app_port) as sock:
        send_all(sock, head)
        answer = read_until_closed(sock)
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 400 "), answer[:80]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["error"]["code"] == "bad_request" and "malformed" in body["error"]["message"]
