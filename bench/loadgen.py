"""An asyncio load generator: N keep-alive connections, a deadline, per-request latency.

Two clients share one driver: ``raw`` writes hand-built HTTP/1.1 requests on
asyncio streams; ``httpx`` uses ``httpx.AsyncClient``. Every request carries a
fresh ``X-GitHub-Delivery``. Every loop stops at a deadline, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PATH = "/webhooks/github"
PAYLOAD = Path(__file__).resolve().parents[1] / "tests/payloads/workflow_run.completed.json"
TARGET_BODY = 7 * 1024
PADDING_KEY = "_bench_padding"
Send = Callable[[], Awaitable[int]]


@dataclass(frozen=True)
class Target:
    port: int
    body: bytes
    signature: str
    event: str = "workflow_run"
    host: str = "127.0.0.1"

    def headers(self, guid: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/bench",
            "X-GitHub-Event": self.event,
            "X-GitHub-Delivery": guid,
            "X-Hub-Signature-256": self.signature,
        }

    def raw_head(self, guid: str) -> bytes:
        lines = [f"POST {PATH} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in self.headers(guid).items()]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


@dataclass
class Result:
    ok: int = 0  # 2xx answers
    errors: int = 0  # non-2xx answers and failed connections/requests
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, answered requests
    statuses: Counter[int] = field(default_factory=Counter)
    timed_out: bool = False  # the time limit stopped a count-bounded run
    server_cpu: float = 0.0  # CPUs used by the receiver meanwhile (1.0 = one core)
    other_cpu: float = 0.0  # CPUs used by other user-space processes (another workload)

    @property
    def answered(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.answered / self.elapsed if self.elapsed else 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (q in 0..100); 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def build_body() -> tuple[bytes, str]:
    """The real example, compact as GitHub sends it; padded to ~7 KB only if smaller."""
    data = json.loads(PAYLOAD.read_text())
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) >= TARGET_BODY:
        return body, f"{PAYLOAD.name} as-is (compact JSON), no padding: larger than ~7 KB"
    filler = TARGET_BODY - len(body) - len(f',"{PADDING_KEY}":""')
    data[PADDING_KEY] = "x" * max(0, filler)
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return body, f"{PAYLOAD.name} padded to ~7 KB with an extra key {PADDING_KEY!r}"


def ms(seconds: float) -> float:
    return seconds * 1000.0


def line(name: str, r: Result) -> str:
    p50, p99 = ms(percentile(r.latencies, 50)), ms(percentile(r.latencies, 99))
    worst = ms(max(r.latencies, default=0.0))
    return (
        f"{name:<10} {r.rate:>9,.0f} req/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"
        f"  max {worst:7.2f} ms  n {r.answered:,}  err {r.errors}"
        f"  cpu: server {r.server_cpu:4.0%} others {r.other_cpu:4.0%}"
    )


class RawConnection:
    """One keep-alive HTTP/1.1 connection with hand-written requests."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.target.host, self.target.port
            )
        assert self.reader is not None
        self.writer.write(self.target.raw_head(str(uuid.uuid4())))
        self.writer.write(self.target.body)
        await self.writer.drain()
        status, close = await read_response(self.reader)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, server asked to close) of one response; its body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked, close = 0, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            close = value == b"close"
    if chunked:
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    elif length:
        await reader.readexactly(length)
    return status, close


async def run_load(
    target: Target,
    *,
    client: str,
    connections: int,
    seconds: float,
    count: int | None = None,
    every: int = 0,
    on_every: Callable[[int], None] | None = None,
) -> Result:
    """Load ``target`` until ``seconds`` pass or, if given, ``count`` requests are sent.

    ``on_every(n)`` is called after each ``every``-th answer (n answers so far).
    """
    result = Result()
    issued = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def drive(send: Send, reset: Callable[[], None]) -> None:
        nonlocal issued
        while time.perf_counter() < deadline and (count is None or issued < count):
            issued += 1
            began = time.perf_counter()
            try:
                status = await send()
            except (OSError, asyncio.IncompleteReadError, ValueError, httpx.HTTPError):
                result.errors += 1
                result.statuses[0] += 1
                reset()
                await asyncio.sleep(0.01)
                continue
            result.latencies.append(time.perf_counter() - began)
            result.statuses[status] += 1
            if 200 <= status < 300:
                result.ok += 1
            else:
                result.errors += 1
            if every and on_every is not None and result.answered % every == 0:
                on_every(result.answered)

    async with contextlib.AsyncExitStack() as stack:
        drivers: list[Awaitable[None]] = []
        if client == "httpx":
            limits = httpx.Limits(
                max_connections=connections, max_keepalive_connections=connections
            )
            http = await stack.enter_async_context(
                httpx.AsyncClient(limits=limits, timeout=30.0, http1=True)
            )
            url = f"http://{target.host}:{target.port}{PATH}"

            async def post() -> int:
                headers = target.headers(str(uuid.uuid4()))
                response = await http.post(url, content=target.body, headers=headers)
                return response.status_code

            drivers = [drive(post, lambda: None) for _ in range(connections)]
        else:
            conns = [RawConnection(target) for _ in range(connections)]
            for conn in conns:
                stack.callback(conn.close)
            drivers = [drive(conn.send, conn.close) for conn in conns]
        tasks = [asyncio.ensure_future(d) for d in drivers]
        # In-flight requests get a grace period after the deadline, then are cancelled.
        _, pending = await asyncio.wait(tasks, timeout=seconds + 15.0)
        for task in pending:
            task.cancel()
        result.errors += len(pending)
        await asyncio.gather(*pending, return_exceptions=True)
        result.elapsed = time.perf_counter() - start
    result.timed_out = count is not None and issued < count
    return result
