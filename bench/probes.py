"""Health probes and metrics at a million deliveries: they cost the same at any size.

    .venv/bin/python bench/probes.py [--deliveries 1000000] [--requests 200]

Fills a store with ``--deliveries`` processed deliveries (payloads included, as
the service keeps them; a few hundred pending and failed ones and a backlog of
notices beside), serves it, and prints p50/p99 of ``GET /healthz``, ``/readyz``
and ``/metrics``, against a bare baseline in the same run: a Starlette app on the
same loopback that answers ``{"status": "ok"}`` and does nothing else.
Targets: ``/healthz`` p99 < 5 ms; ``/readyz`` and ``/metrics`` p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import live
from pulsehook.app import create_app
from pulsehook.clock import iso
from pulsehook.settings import Settings
from pulsehook.store.db import open_database
from pulsehook.store.deliveries import encode_payload

TOKEN = "bench-probes-token-0123456789"
NOW = datetime.now(UTC)
BATCH = 20_000


def fill(path: Path, count: int) -> None:
    conn = open_database(path)
    body = encode_payload(b'{"zen":"Keep it logically awesome.","hook_id":1}')
    start = NOW - timedelta(days=30)
    for first in range(0, count, BATCH):
        rows = range(first, min(count, first + BATCH))
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO deliveries (id, guid, event, content_type, received_at, status,"
            " processed_at, repo) VALUES (?, ?, 'push', 'application/json', ?, ?, ?, 'o/r')",
            [
                (
                    n + 1,
                    f"bench-{n}",
                    iso(start + timedelta(seconds=n * 2)),
                    "pending" if n >= count - 300 else "error" if n % 5000 == 0 else "processed",
                    iso(start + timedelta(seconds=n * 2)),
                )
                for n in rows
            ],
        )
        conn.executemany(
            "INSERT INTO delivery_payloads (delivery_id, payload) VALUES (?, ?)",
            [(n + 1, body) for n in rows],
        )
        conn.execute("COMMIT")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO outbox (channel, kind, message, status, next_attempt_at, created_at)"
        " VALUES (?, 'firing', '{}', ?, ?, ?)",
        [
            (f"chan{n % 4}", "parked" if n % 3 == 0 else "sent", iso(NOW), iso(NOW))
            for n in range(50_000)
        ],
    )
    conn.execute("COMMIT")
    conn.close()


def timed(client: httpx.Client, path: str, n: int) -> list[float]:
    client.get(path).raise_for_status()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        client.get(path)
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def line(name: str, values: list[float]) -> float:
    p99 = pct(values, 99)
    print(f"{name:<24} p50 {statistics.median(values):7.2f} ms  p99 {p99:7.2f} ms")
    return p99


async def ok(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        started = time.perf_counter()
        fill(data / "pulsehook.db", args.deliveries)
        size = (data / "pulsehook.db").stat().st_size
        print(
            f"store: {args.deliveries} deliveries, {size / 2**20:.0f} MiB"
            f" (filled in {time.perf_counter() - started:.1f} s)"
        )
        settings = Settings(
            data_dir=data,
            rules_dir=Path(tmp) / "none",
            webhook_secret=SecretStr("bench-secret"),
            api_token=SecretStr(TOKEN),
            worker=False,  # the pending deliveries stay pending: lag is measured, not cured
        )
        bare = Starlette(routes=[Route("/healthz", ok)])
        with live(bare) as srv, httpx.Client(base_url=srv.url) as client:
            base = line("bare GET /healthz", timed(client, "/healthz", args.requests))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with (
            live(create_app(settings)) as srv,
            httpx.Client(base_url=srv.url, headers=auth) as client,
        ):
            health = line("GET /healthz", timed(client, "/healthz", args.requests))
            ready = line("GET /readyz", timed(client, "/readyz", args.requests))
            metrics = line("GET /metrics", timed(client, "/metrics", args.requests))
            print("readyz says:", client.get("/readyz").text[:200])
    verdicts = [
        ("/healthz p99 < 5 ms", health < 5),
        ("/readyz p99 < 50 ms", ready < 50),
        ("/metrics p99 < 50 ms", metrics < 50),
    ]
    print(f"(bare baseline p99 {base:.2f} ms)")
    for name, passed in verdicts:
        print(f"{name}: {'PASS' if passed else 'FAIL'}")
    return 0 if all(p for _, p in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
