"""Summary regeneration: 10,000 items, a burst of 1,000 changes, the idle deadline timer.

    .venv/bin/python bench/summary.py [--items 10000] [--burst 1000]

Prints, in one run: the time of one full regeneration of N items against a bare
baseline (reading the same rows and joining their paths: the floor), how many
regenerations a burst of changes costs in the running service, and the CPU the
service uses while idle with deadlines pending.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

from pulsehook.alerts.engine import Policy
from pulsehook.app import create_app
from pulsehook.clock import iso
from pulsehook.rules.evaluate import Evaluator
from pulsehook.rules.model import RuleSet
from pulsehook.settings import Settings
from pulsehook.store.db import open_database, transaction, wrap
from pulsehook.summary import items
from pulsehook.summary.service import Target, regenerate

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def fill(path: Path, count: int) -> None:
    db = wrap(open_database(path))

    def job(d: object) -> None:
        for i in range(count):
            schedule = ["PT10M", "PT1H", "0 3 * * *", None][i % 4]
            report = "BAD" if i % 10 == 0 else "GOOD"
            items.record_report(
                db,
                path=f"org/repo{i % 500}/jobs/job{i}.md",
                owner="org",
                repo=f"repo{i % 500}",
                kind="heartbeat",
                report=report,
                note=f"run {i}",
                at=NOW - timedelta(minutes=i % 90),
                link=None,
                now=NOW,
                tz="UTC",
            )
            if schedule:
                db.execute(
                    "UPDATE summary_items SET schedule = ?, grace_s = 60 WHERE path = ?",
                    (schedule, f"org/repo{i % 500}/jobs/job{i}.md"),
                )

    transaction(db, job)
    # Deadlines for the schedules just set.
    transaction(
        db,
        lambda d: [
            items._refresh_due(d, r["path"], "UTC")
            for r in list(d.query("SELECT path FROM summary_items"))
        ],
    )
    db.conn.close()


def regeneration(path: Path, count: int, rounds: int = 5) -> None:
    db = wrap(open_database(path))
    target = Target(owner="pulsehook", repo="summary", tz="Europe/Berlin")
    times, floors = [], []
    for r in range(rounds):
        start = time.perf_counter()
        moment = NOW + timedelta(minutes=r)
        generated = transaction(
            db,
            lambda d, moment=moment: regenerate(
                d, RuleSet(), now=moment, target=target, evaluator=Evaluator(), policy=Policy()
            ),
        )
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        rows = list(db.query("SELECT * FROM summary_items ORDER BY path"))
        "\n".join(f"- [{row['path']}]({row['path']}) {row['note']}" for row in rows)
        floors.append(time.perf_counter() - start)
    median = statistics.median(times) * 1000
    print(
        f"regenerate {count} items: median {median:.0f} ms over {rounds} rounds"
        f" (md {len(generated.md) // 1024} KiB, json {len(generated.json) // 1024} KiB);"
        f" bare read+join baseline {statistics.median(floors) * 1000:.0f} ms"
    )
    print(f"target < 200 ms: {'PASS' if median < 200 else 'FAIL'}")


async def burst(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            rules_dir=Path(tmp) / "none",
            webhook_secret=SecretStr("s"),
            heartbeat_tokens=SecretStr("t"),
        )
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
        ):
            svc = app.state.runtime
            await asyncio.sleep(0.5)
            before = svc.summarizer.regenerations
            start = time.perf_counter()
            for i in range(count):
                r = await client.post(
                    f"/api/v1/heartbeats/org/repo/jobs/j{i % 50}.md",
                    json={"report": "GOOD" if i % 7 else "BAD"},
                    headers={"Authorization": "Bearer t"},
                )
                assert r.status_code == 202
            sent = time.perf_counter() - start
            deadline = time.monotonic() + 10
            body = ""
            while time.monotonic() < deadline:
                body = (await client.get("/summary.md")).text
                if "org/repo/jobs/j49.md" in body:
                    break
                await asyncio.sleep(0.05)
            behind = time.perf_counter() - start - sent
            regenerations = svc.summarizer.regenerations - before
            print(
                f"burst of {count} heartbeats in {sent:.2f} s: {regenerations} regenerations;"
                f" summary current {behind:.2f} s after the last one"
            )
            bound = max(5, int(sent) * 4 + 4)
            ok = regenerations <= bound and behind < 1.5
            print(
                f"target: a handful of regenerations (<= {bound}), <= ~1 s behind: "
                f"{'PASS' if ok else 'FAIL'}"
            )
            # Idle with deadlines pending: the timer sleeps until the next one.
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu0 = usage.ru_utime + usage.ru_stime
            regen0 = svc.summarizer.regenerations
            await asyncio.sleep(3)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu = usage.ru_utime + usage.ru_stime - cpu0
            print(
                f"idle 3 s: {cpu * 1000:.1f} ms CPU, {svc.summarizer.regenerations - regen0}"
                f" regenerations; next deadline in"
                f" {await svc.summarizer.seconds_to_deadline():.0f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=1_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        fill(path, args.items)
        regeneration(path, args.items)
    asyncio.run(burst(args.burst))
    print(f"(measured at {iso(datetime.now(UTC))})")


if __name__ == "__main__":
    main()
