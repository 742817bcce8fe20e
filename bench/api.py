"""Read side at scale: 1,000 repositories and 100,000 builds in the store.

    .venv/bin/python bench/api.py [--repos 1000] [--builds 100000] [--requests 200]

Prints, in one run: p50/p99 of ``GET /api/v1/repos`` and of the dashboard's
overview page against a bare baseline (``GET /healthz`` on the same server),
the time of a full score recomputation for every repository, and the daily
rescore as the service runs it (chunks of ``SWEEP_SECONDS``, each its own writer
turn): its total time and its longest turn.
Targets: /api/v1/repos p99 < 100 ms, one repository p99 < 10 ms, overview p99 <
200 ms, recomputation < 10 s, no rescore turn > 50 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import live
from pulsehook.app import create_app
from pulsehook.clock import iso
from pulsehook.schedule.runner import SWEEP_SECONDS
from pulsehook.settings import Settings
from pulsehook.store.db import open_database, transaction, wrap
from pulsehook.store.health import recompute_batch
from pulsehook.store.migrations import WORKFLOW_STATE_SQL

NOW = datetime.now(UTC)
TOKEN = "bench-api-token-0123456789"
CONCLUSIONS = ["success"] * 8 + ["failure", "cancelled", "skipped", "timed_out"]


def fill(path: Path, repos: int, builds: int, rng: random.Random) -> None:
    db = wrap(open_database(path))
    seen = iso(NOW)

    def job(d: object) -> None:
        conn = db.conn
        conn.executemany(
            "INSERT INTO repositories (id, full_name, owner, default_branch, archived,"
            " first_seen_at, last_seen_at, last_activity_at, readme, api_docs, dependabot)"
            " VALUES (?, ?, 'org', 'main', ?, ?, ?, ?, ?, ?, 1)",
            [
                (
                    i,
                    f"org/repo{i:04d}",
                    int(i % 97 == 0),
                    seen,
                    seen,
                    iso(NOW - timedelta(days=rng.randint(0, 400))),
                    rng.random() < 0.9,
                    rng.random() < 0.5,
                )
                for i in range(1, repos + 1)
            ],
        )
        rows = []
        for n in range(builds):
            repo = rng.randint(1, repos)
            at = iso(NOW - timedelta(minutes=n))
            rows.append(
                (
                    "workflow_run",
                    n,
                    "",
                    repo,
                    rng.choice(["CI", "Lint", "Deploy"]),
                    "main" if rng.random() < 0.8 else "dev",
                    1,
                    rng.choice(CONCLUSIONS),
                    "push",
                    1,
                    f"https://github.com/org/repo{repo}/actions/runs/{n}",
                    at,
                    at,
                    at,
                )
            )
        conn.executemany(
            "INSERT INTO builds (source, run_id, job, repo_id, workflow, branch,"
            " default_branch, status, event, attempt, url, started_at, completed_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("UPDATE builds SET default_branch = (branch = 'main')")
        conn.executemany(
            "INSERT INTO vulnerabilities (repo_id, number, state, severity, package,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    rng.randint(1, repos),
                    n,
                    rng.choice(["open", "fixed"]),
                    rng.choice(["low", "medium", "high", "critical"]),
                    f"pkg{n % 50}",
                    seen,
                )
                for n in range(repos * 2)
            ],
        )
        conn.executemany(
            "INSERT INTO coverage (repo_id, branch, value, at, source)"
            " VALUES (?, 'main', ?, ?, 'status')",
            [(i, rng.uniform(40, 95), seen) for i in range(1, repos + 1)],
        )

    transaction(db, job)
    # Loaded behind the ingest path's back: derive the current state it would keep.
    transaction(db, lambda d: d.execute(WORKFLOW_STATE_SQL))
    db.conn.close()


def recompute_everything(db: Any) -> None:
    """Every repository scored in one transaction: the floor the sweep is held to."""
    after = 0
    while True:
        after, done, _ = recompute_batch(db, after_id=after, now=NOW)
        if not done:
            return


def timed(client: httpx.Client, path: str, count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        answer = client.get(path)
        out.append(time.perf_counter() - start)
        assert answer.status_code == 200, (path, answer.status_code)
    return sorted(out)


def line(name: str, values: list[float]) -> str:
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return (
        f"{name:<22} p50 {statistics.median(values) * 1000:7.1f} ms"
        f"  p99 {p99 * 1000:7.1f} ms  (n {len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--builds", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            rules_dir=Path(tmp) / "none",
            webhook_secret=SecretStr("s"),
            api_token=SecretStr(TOKEN),
        )
        start = time.perf_counter()
        fill(settings.db_path, args.repos, args.builds, rng)
        print(
            f"store: {args.repos} repositories, {args.builds} builds"
            f" (filled in {time.perf_counter() - start:.1f} s)"
        )
        db = wrap(open_database(settings.db_path))
        times = []
        for _ in range(3):
            start = time.perf_counter()
            transaction(db, recompute_everything)
            times.append(time.perf_counter() - start)
        # The daily rescore as the service runs it: chunks of SWEEP_SECONDS, each
        # its own writer turn (intake and processing take theirs in between).
        turns: list[float] = []
        after, start = 0, time.perf_counter()
        while True:
            turn = time.perf_counter()
            after, done, _ = transaction(
                db,
                lambda d, a=after: recompute_batch(d, after_id=a, now=NOW, budget=SWEEP_SECONDS),
            )
            turns.append(time.perf_counter() - turn)
            if not done:
                break
        swept = time.perf_counter() - start
        db.conn.close()
        longest = max(turns)
        print(
            f"daily rescore in {len(turns)} writer turns: {swept * 1000:.0f} ms in all,"
            f" longest turn {longest * 1000:.1f} ms"
            f"  {'PASS' if swept < 10 and longest < 0.05 else 'FAIL'} (< 10 s, turns < 50 ms)"
        )
        recompute = statistics.median(times)
        print(
            f"full score recomputation: {recompute * 1000:.0f} ms (median of 3)"
            f"  {'PASS' if recompute < 10 else 'FAIL'} (< 10 s)"
        )
        with (
            live(create_app(settings)) as server,
            httpx.Client(
                base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as client,
        ):
            timed(client, "/api/v1/repos", 5)  # warm caches
            baseline = timed(client, "/healthz", args.requests)
            repos = timed(client, "/api/v1/repos", args.requests)
            by_score = timed(client, "/api/v1/repos?sort=-score&limit=100", args.requests)
            # A page deep in the list: continued by key, it costs what the first does.
            # (Half-way into a store of fewer than 2,000: the first 1,000 would be all of it.)
            skip = min(1000, args.repos // 2)
            deep = client.get("/api/v1/repos", params={"limit": skip}).json()["next_cursor"]
            later = timed(client, f"/api/v1/repos?limit=100&cursor={deep}", args.requests)
            overview = timed(client, "/", args.requests)
            table = timed(client, "/repos?sort=coverage&order=desc&page=50", args.requests)
            page = timed(client, "/repos/org/repo0500", args.requests)
            one = timed(client, "/api/v1/repos/org/repo0500", args.requests)
        print(line("GET /healthz (bare)", baseline))
        print(line("GET /api/v1/repos", repos))
        print(line("  ...?sort=-score", by_score))
        print(line("  ...a page after 1,000", later))
        print(line("GET /api/v1/repos/{one}", one))
        print(line("GET / (overview page)", overview))
        print(line("GET /repos (a page)", table))
        print(line("GET /repos/{one} (page)", page))
        p99 = max(v[int(len(v) * 0.99) - 1] for v in (repos, by_score, later))
        print(f"/api/v1/repos pages p99 < 100 ms: {'PASS' if p99 < 0.1 else 'FAIL'}")
        p99 = one[int(len(one) * 0.99) - 1]
        print(f"one repository p99 < 10 ms: {'PASS' if p99 < 0.01 else 'FAIL'}")
        p99 = overview[int(len(overview) * 0.99) - 1]
        print(f"overview page p99 < 200 ms: {'PASS' if p99 < 0.2 else 'FAIL'}")
        p99 = table[int(len(table) * 0.99) - 1]
        print(f"repositories table page p99 < 200 ms: {'PASS' if p99 < 0.2 else 'FAIL'}")


if __name__ == "__main__":
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    main()
