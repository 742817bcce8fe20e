"""Webhooks while the daily rescore runs, at 10,000 repositories.

    .venv/bin/python bench/rescore.py [--repos 10000] [--builds 200000] [--rate 100]

Fills a store (as bench/api.py does), then starts ``pulsehook serve`` on it
(pinned to CPU 0): its first start begins the day's rescore of every repository,
as a sweep of short writer turns. Meanwhile this process (CPU 1) sends signed
``workflow_run`` deliveries at a fixed open-loop rate and times each answer,
until the sweep has finished (read from its ``sweeps`` row); then the same for
as long again with nothing else going on: the baseline. Prints p50, p99 and max
of both windows. Target: p99 < 20 ms while the rescore runs (DESIGN §2), every
delivery answered 2xx.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api import fill
from loadgen import percentile
from pulsehook.github.verify import sign
from receivers import free_port

SECRET = "bench-rescore-secret"
TOKEN = "bench-rescore-token-0123456789"
PAYLOAD = (
    Path(__file__).resolve().parent.parent / "tests" / "payloads" / "workflow_run.completed.json"
)


def swept(db: Path) -> bool:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT finished_at FROM sweeps WHERE name = 'rescore'").fetchone()
    return row is not None and row[0] is not None


def send(
    url: str, rate: float, stop: threading.Event, times: list[float], codes: list[int]
) -> None:
    """Open loop: request i at start + i / rate, each on the shared keep-alive client."""
    body = json.dumps(json.loads(PAYLOAD.read_text())).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "workflow_run",
        "X-Hub-Signature-256": sign(body, SECRET.encode()),
    }
    start, n = time.perf_counter(), 0
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            due = start + n / rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            began = time.perf_counter()
            answer = client.post(
                "/webhooks/github",
                content=body,
                headers={**headers, "X-GitHub-Delivery": str(uuid.uuid4())},
            )
            times.append(time.perf_counter() - began)
            codes.append(answer.status_code)
            n += 1


def window(name: str, times: list[float], codes: list[int]) -> tuple[float, bool]:
    ok = all(200 <= c < 300 for c in codes)
    p99 = percentile(times, 99) if times else float("inf")
    print(
        f"{name:<26} n {len(times):>6}  p50 {percentile(times, 50) * 1000:6.1f} ms"
        f"  p99 {p99 * 1000:6.1f} ms  max {max(times, default=0) * 1000:7.1f} ms"
        f"  non-2xx {sum(1 for c in codes if not 200 <= c < 300)}"
    )
    return p99, ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--builds", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=100.0, help="deliveries per second")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        db = data / "pulsehook.db"
        started = time.perf_counter()
        fill(db, args.repos, args.builds, random.Random(11))
        print(
            f"store: {args.repos} repositories, {args.builds} builds"
            f" (filled in {time.perf_counter() - started:.1f} s)"
        )
        port = free_port()
        env = {
            **os.environ,
            "PULSEHOOK_WEBHOOK_SECRET": SECRET,
            "PULSEHOOK_API_TOKEN": TOKEN,
            "PULSEHOOK_DATA_DIR": str(data),
            "PULSEHOOK_RULES_DIR": str(Path(tmp) / "rules"),
            "PULSEHOOK_PORT": str(port),
            "PULSEHOOK_LOG_LEVEL": "warning",
        }
        pin = (
            ["taskset", "-c", "0"]
            if (os.cpu_count() or 1) > 1 and os.path.exists("/usr/bin/taskset")
            else []
        )
        proc = subprocess.Popen(
            [*pin, sys.executable, "-m", "pulsehook", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    print("server did not start")
                    return 1
                time.sleep(0.05)
            during: tuple[list[float], list[int]] = ([], [])
            stop = threading.Event()
            sender = threading.Thread(target=send, args=(url, args.rate, stop, *during))
            began = time.perf_counter()
            sender.start()
            limit = time.monotonic() + 300
            while not swept(db) and time.monotonic() < limit:
                time.sleep(0.1)
            stop.set()
            sender.join(timeout=60)
            sweep = time.perf_counter() - began
            after: tuple[list[float], list[int]] = ([], [])
            stop = threading.Event()
            sender = threading.Thread(target=send, args=(url, args.rate, stop, *after))
            sender.start()
            time.sleep(max(5.0, sweep))
            stop.set()
            sender.join(timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        print(f"rescore of {args.repos} repositories finished {sweep:.1f} s after the start")
        p99, ok = window("during the rescore", *during)
        window("after it (baseline)", *after)
        met = p99 < 0.020 and ok and swept(db)
        verdict = "PASS" if met else "FAIL"
        print(f"webhook p99 < 20 ms during the rescore, every delivery 2xx: {verdict}")
        return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
