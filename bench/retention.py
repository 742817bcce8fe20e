"""The database file under a steady stream, with and without retention.

    .venv/bin/python bench/retention.py [--days 12] [--per-day 1200] [--rate 300] [--keep 3]

The real service (``create_app`` with a frozen clock, on uvicorn, in a process of
its own pinned to CPU 0) receives signed deliveries from this process (CPU 1) —
GitHub's example payloads as new runs, jobs, pushes and Codecov statuses across 20
repositories — at a fixed open-loop rate. After each ``--per-day`` deliveries the
service's clock moves a day on (SIGUSR1). Run twice on fresh stores: the bare
baseline keeps everything; the other prunes past ``--keep`` days: at each simulated
day's start a retention run begins on the service's writer and takes its turns of
the scheduler's ``SWEEP_SECONDS`` (as the service's scheduler does once it is given
``retention_days``) while that day's stream flows.

Not ``pulsehook serve``: the clock must be injected to make days pass in seconds.

Prints, per day, the database file's size (and the pages in use) in both runs;
webhook answer p50/p99/max in the baseline and, with retention, while a run goes
on and outside; the retention turns' lengths and the runs'. Targets: the file stops
growing once past the retention; webhook p99 < 20 ms while a run goes on (DESIGN
§2); no retention turn near 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import percentile
from pulsehook.app import create_app
from pulsehook.clock import FrozenClock, iso
from pulsehook.github.verify import sign
from pulsehook.schedule.runner import SWEEP_SECONDS
from pulsehook.settings import Settings
from pulsehook.store.db import NORMAL, open_database
from pulsehook.store.retention import Pruner
from receivers import free_port

SECRET = "bench-retention-secret"
PAYLOADS = Path(__file__).resolve().parent.parent / "tests" / "payloads"
START = datetime(2026, 1, 1, tzinfo=UTC)
REPOS = 20
MIB = 1024 * 1024


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


class Bodies:
    """What 20 repositories send: runs (most, 22 KB each), jobs, pushes, statuses."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.run = example("workflow_run.completed")
        self.job = example("workflow_job.completed")
        self.push = example("push")
        self.status = example("status")
        self.n = 0

    def repo(self, base: dict[str, Any], at: str) -> dict[str, Any]:
        r = self.rng.randrange(REPOS)
        data = copy.deepcopy(base)
        data.update(id=900 + r, full_name=f"org/repo{r:02d}", name=f"repo{r:02d}")
        data.update(default_branch="main", updated_at=at)
        return data

    def next(self, day: int) -> tuple[str, bytes]:
        self.n += 1
        at = iso(START + timedelta(days=day, seconds=self.n % 86_000))
        pick = self.rng.random()
        if pick < 0.6:
            event, data = "workflow_run", copy.deepcopy(self.run)
            data["workflow_run"].update(
                id=10_000_000 + self.n,
                html_url=f"https://github.com/org/repo/actions/runs/{10_000_000 + self.n}",
                head_branch=self.rng.choice(["main", "main", "feature"]),
                conclusion=self.rng.choice(["success"] * 4 + ["failure"]),
                updated_at=at,
            )
            data["workflow"]["name"] = self.rng.choice(["CI", "Lint", "Nightly"])
        elif pick < 0.75:
            event, data = "workflow_job", copy.deepcopy(self.job)
            data["workflow_job"].update(
                id=20_000_000 + self.n,
                run_id=10_000_000 + self.n,
                html_url=f"https://github.com/org/repo/actions/runs/{self.n}/job/{self.n}",
            )
        elif pick < 0.9:
            event, data = "push", copy.deepcopy(self.push)
            data["after"] = f"{self.n:040x}"
            data["head_commit"].update(id=data["after"], timestamp=at)
        else:
            event, data = "status", copy.deepcopy(self.status)
            data.update(
                context="codecov/project",
                description=f"{self.rng.uniform(60, 95):.2f}% (+0.10%) compared to abc1234",
                updated_at=at,
                sha=f"{self.n:040x}",
            )
        data["repository"] = self.repo(data["repository"], at)
        return event, json.dumps(data).encode()


# --- the service's side (a process of its own) ----------------------------------------


def serve(data: Path, port: int, keep: int) -> None:
    """The service with a frozen clock that SIGUSR1 moves a day on; with ``keep``,
    each day begins a retention run, its turns taken as the scheduler takes them.
    At exit, the turns' lengths and the runs' go to ``data/sweep.json``."""
    clock = FrozenClock(START)
    settings = Settings(
        data_dir=data,
        rules_dir=data / "no-rules",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr("bench-retention-token-0123456789"),
        port=port,
        log_level="warning",
    )
    app = create_app(settings, clock=clock)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    days = threading.Semaphore(0)
    sweep: dict[str, Any] = {"turns": [], "runs": [], "counts": []}

    def next_day(*_: Any) -> None:
        clock.advance(timedelta(days=1))
        days.release()

    signal.signal(signal.SIGUSR1, next_day)

    async def retention() -> None:
        while not server.started:
            await asyncio.sleep(0.01)
        writer, pruner = app.state.runtime.writer, Pruner()
        while not server.should_exit:
            if not days.acquire(blocking=False):
                await asyncio.sleep(0.01)
                continue
            now = clock.now()

            def begin(db: Any, now: datetime = now) -> bool:
                return pruner.begin(db, days=keep, now=now)

            def turn(db: Any, now: datetime = now) -> bool:
                t = time.perf_counter()
                more = pruner.step(db, now=now, budget=SWEEP_SECONDS)
                sweep["turns"].append(time.perf_counter() - t)
                return more

            if not await writer.run(begin, NORMAL):
                continue
            (data / "sweeping").touch()
            began = time.perf_counter()
            while await writer.run(turn, NORMAL):
                pass
            (data / "sweeping").unlink()
            sweep["runs"].append(time.perf_counter() - began)
            sweep["counts"].append(pruner.counts.line())
            # Written after each run: uvicorn ends the process with the signal that stopped it.
            (data / "sweep.json").write_text(json.dumps(sweep))

    async def main() -> None:
        tasks = [asyncio.create_task(retention())] if keep else []
        await server.serve()
        for task in tasks:
            task.cancel()

    asyncio.run(main())


# --- the load's side --------------------------------------------------------------


def pending(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'").fetchone()
    return int(row[0])


def sizes(db: Path) -> tuple[int, int, int]:
    """(file bytes, bytes of pages in use, deliveries stored)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        pages, free, size = (
            int(conn.execute(f"PRAGMA {p}").fetchone()[0])
            for p in ("page_count", "freelist_count", "page_size")
        )
        stored = int(conn.execute("SELECT count(*) FROM deliveries").fetchone()[0])
    return os.path.getsize(db), (pages - free) * size, stored


Sample = tuple[float, int, bool]  # answer time, status, whether a retention run went on


def run(
    args: argparse.Namespace, root: Path, *, keep: int
) -> tuple[list[tuple[int, int, int]], list[Sample], dict[str, Any]]:
    data = root / ("retention" if keep else "baseline")
    data.mkdir()
    db = data / "pulsehook.db"
    open_database(db).close()
    port = free_port()
    pin = (
        ["taskset", "-c", "0"]
        if (os.cpu_count() or 1) > 1 and Path("/usr/bin/taskset").exists()
        else []
    )
    proc = subprocess.Popen(
        [*pin, sys.executable, __file__, "--serve", str(data), str(port), str(keep)],
        stderr=subprocess.DEVNULL,
    )
    bodies = Bodies(random.Random(7))
    samples: list[Sample] = []
    per_day: list[tuple[int, int, int]] = []
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
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        with httpx.Client(base_url=url, timeout=30) as client:
            for day in range(args.days):
                if day:
                    proc.send_signal(signal.SIGUSR1)  # the next day: its retention run begins
                    time.sleep(0.1)
                start = time.perf_counter()
                for n in range(args.per_day):
                    due = start + n / args.rate
                    if (wait := due - time.perf_counter()) > 0:
                        time.sleep(wait)
                    event, body = bodies.next(day)
                    headers = {
                        "Content-Type": "application/json",
                        "X-GitHub-Event": event,
                        "X-GitHub-Delivery": str(uuid.uuid4()),
                        "X-Hub-Signature-256": sign(body, SECRET.encode()),
                    }
                    began = time.perf_counter()
                    answer = client.post("/webhooks/github", content=body, headers=headers)
                    took = time.perf_counter() - began
                    samples.append((took, answer.status_code, (data / "sweeping").exists()))
                deadline = time.monotonic() + 60
                while pending(db) and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(0.3)  # idle: the writer checkpoints the log into the file
                per_day.append(sizes(db))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    sweep = json.loads((data / "sweep.json").read_text()) if (data / "sweep.json").exists() else {}
    return per_day, samples, sweep


def line(name: str, samples: list[Sample]) -> str:
    times = [s[0] for s in samples]
    if not times:
        return f"{name:<34} n      0"
    bad = sum(1 for s in samples if not 200 <= s[1] < 300)
    return (
        f"{name:<34} n {len(times):>6}  p50 {percentile(times, 50) * 1000:5.1f} ms"
        f"  p99 {percentile(times, 99) * 1000:5.1f} ms  max {max(times) * 1000:6.1f} ms"
        f"  non-2xx {bad}"
    )


def main() -> int:
    if sys.argv[1:2] == ["--serve"]:
        serve(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--per-day", type=int, default=1200, help="deliveries per simulated day")
    parser.add_argument("--rate", type=float, default=300.0, help="deliveries per second")
    parser.add_argument("--keep", type=int, default=3, help="retention, in (simulated) days")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base_sizes, base_samples, _ = run(args, Path(tmp), keep=0)
        kept_sizes, kept_samples, sweep = run(args, Path(tmp), keep=args.keep)
    print(
        f"{args.days} days x {args.per_day} deliveries at {args.rate:.0f}/s, retention"
        f" {args.keep} days; {time.perf_counter() - began:.0f} s in all"
    )
    print("day  baseline file   retention file (in use)   deliveries kept")
    for day, ((b, _, bn), (k, used, kn)) in enumerate(zip(base_sizes, kept_sizes, strict=True)):
        print(
            f"{day + 1:>3}  {b / MIB:9.1f} MiB   {k / MIB:9.1f} MiB ({used / MIB:5.1f})"
            f"   {kn:>6} of {bn}"
        )
    print(line("baseline (no retention)", base_samples))
    print(line("retention: while a run goes on", [s for s in kept_samples if s[2]]))
    print(line("retention: between runs", [s for s in kept_samples if not s[2]]))
    turns, runs = sweep.get("turns", []), sweep.get("runs", [])
    if turns and runs:
        print(
            f"retention runs: {len(runs)}, {min(runs):.1f}-{max(runs):.1f} s each;"
            f" {len(turns)} turns, p99 {percentile(turns, 99) * 1000:.1f} ms,"
            f" longest {max(turns) * 1000:.1f} ms"
        )
        print(f"last run: {sweep['counts'][-1]}")
    # Levelled off: over the last days the retention file grows by less than a tenth
    # of what the baseline's does.
    tail = max(2, args.days - args.keep - 2)
    grew = kept_sizes[-1][0] - kept_sizes[-tail][0]
    base_grew = base_sizes[-1][0] - base_sizes[-tail][0]
    during = [s[0] for s in kept_samples if s[2]]
    p99 = percentile(during, 99) if during else float("inf")
    longest = max(turns, default=float("inf"))
    ok = grew < 0.1 * base_grew and p99 < 0.020 and longest < 0.020
    print(
        f"file over the last {tail - 1} days: +{grew / MIB:.1f} MiB"
        f" (baseline +{base_grew / MIB:.1f}); p99 while pruning {p99 * 1000:.1f} ms;"
        f" longest turn {longest * 1000:.1f} ms: {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
