"""Sending never blocks receiving: a burst of deliveries that fire alerts while the
Slack webhook hangs (accepts connections, never answers).

    .venv/bin/python bench/alert_burst.py [--burst 5000] [--connections 64]

pulsehook (uvicorn, pinned to CPU 0) runs the seed rules with SLACK_WEBHOOK_URL
pointing at a stand-in on loopback. Each delivery is a real workflow_run example
turned into a failed run on ``main`` of one of 200 repositories, so every
repository fires ``build_failure`` and its notice goes to the outbox. Measured in
one run: the webhook's p99 idle (one connection, paced), in a burst with a
healthy Slack, and in the same burst with a hanging Slack. Target: the hanging
burst's p99 within twice the healthy burst's (and the idle figure for scale).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from loadgen import percentile, read_response
from receivers import PROJECT_DIR, free_port

SECRET = b"bench-secret"
REPOS = 200


def bodies() -> list[bytes]:
    base = json.loads((PROJECT_DIR / "tests/payloads/workflow_run.completed.json").read_text())
    out = []
    for n in range(REPOS):
        data = copy.deepcopy(base)
        data["repository"].update(
            id=900000 + n, name=f"svc{n}", full_name=f"org/svc{n}", default_branch="main"
        )
        data["workflow_run"].update(id=5000000 + n, head_branch="main", conclusion="failure")
        out.append(json.dumps(data, separators=(",", ":")).encode())
    return out


def request(port: int, body: bytes) -> bytes:
    signature = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    head = (
        f"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nX-GitHub-Event: workflow_run\r\n"
        f"X-GitHub-Delivery: {uuid.uuid4()}\r\nX-Hub-Signature-256: {signature}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def burst(
    port: int, payloads: list[bytes], count: int, connections: int, pace: float = 0.0
) -> list[float]:
    latencies: list[float] = []
    issued = 0
    deadline = time.monotonic() + 120

    async def worker() -> None:
        nonlocal issued
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while issued < count and time.monotonic() < deadline:
                data = request(port, payloads[issued % len(payloads)])
                issued += 1
                start = time.perf_counter()
                writer.write(data)
                await writer.drain()
                status, _ = await read_response(reader)
                latencies.append(time.perf_counter() - start)
                assert 200 <= status < 300, status
                if pace:
                    await asyncio.sleep(pace)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return sorted(latencies)


async def slack_standin(port: int, hang: bool) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                await reader.readexactly(length)
                if hang:
                    await asyncio.Event().wait()  # accepted, never answered
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


def start_pulsehook(root: Path, slack_port: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    data = root / f"data-{port}"
    rules = root / "rules"
    if not rules.exists():
        shutil.copytree(PROJECT_DIR / "rules", rules)
    env = {
        **os.environ,
        "BENCH_DATA_DIR": str(data),
        "BENCH_SECRET": SECRET.decode(),
        "PULSEHOOK_RULES_DIR": str(rules),
        "PULSEHOOK_LOG_LEVEL": "error",
        "SLACK_WEBHOOK_URL": f"http://127.0.0.1:{slack_port}/hook",
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "receivers:pulsehook_app",
        "--factory",
        "--app-dir",
        str(PROJECT_DIR / "bench"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--no-access-log",
    ]
    proc = subprocess.Popen(
        ["taskset", "-c", "0", *command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("pulsehook did not start")


def outbox(root: Path, port: int) -> dict[str, int]:
    import sqlite3

    with sqlite3.connect(root / f"data-{port}" / "pulsehook.db") as conn:
        return dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY status"))


def p99(values: list[float]) -> float:
    return percentile(values, 99) * 1000


async def scenario(
    root: Path, hang: bool, count: int, connections: int, payloads: list[bytes]
) -> tuple[list[float], list[float], dict[str, int]]:
    slack_port = free_port()
    server = await slack_standin(slack_port, hang)
    proc, port = start_pulsehook(root, slack_port)
    try:
        idle = await burst(port, payloads, 200, 1, pace=0.01)
        loaded = await burst(port, payloads, count, connections)
        await asyncio.sleep(3)  # let the dispatcher try
        return idle, loaded, outbox(root, port)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})
    payloads = bodies()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        idle, healthy, sent = asyncio.run(
            scenario(root, False, args.burst, args.connections, payloads)
        )
        _, hanging, stuck = asyncio.run(
            scenario(root, True, args.burst, args.connections, payloads)
        )
    print(
        f"{REPOS} repositories firing build_failure; burst {args.burst} over"
        f" {args.connections} connections"
    )
    print(
        f"idle (1 connection, paced): p50 {percentile(idle, 50) * 1000:6.2f} ms"
        f"  p99 {p99(idle):6.2f} ms"
    )
    print(
        f"burst, Slack healthy:       p50 {percentile(healthy, 50) * 1000:6.2f} ms"
        f"  p99 {p99(healthy):6.2f} ms  outbox {sent}"
    )
    print(
        f"burst, Slack hanging:       p50 {percentile(hanging, 50) * 1000:6.2f} ms"
        f"  p99 {p99(hanging):6.2f} ms  outbox {stuck}"
    )
    print(
        f"hanging burst p99 / idle p99: {p99(hanging) / p99(idle):.1f}x (a 64-connection"
        " burst queues: its latency is connections / throughput)"
    )
    ratio = p99(hanging) / p99(healthy)
    print(f"hanging / healthy p99: {ratio:.2f}x  {'PASS' if ratio <= 2 else 'FAIL'} (<= 2x)")


if __name__ == "__main__":
    main()
