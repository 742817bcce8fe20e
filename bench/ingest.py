"""Ingest benchmark: pulsehook against a bare ceiling and a naive durable receiver.

    .venv/bin/python bench/ingest.py            # full run (~5-8 min)
    .venv/bin/python bench/ingest.py --quick    # smoke run (< 2 min)

Receivers run as uvicorn processes pinned to CPU 0; this process (the load
generator) pins itself to CPU 1. See ``--help`` for the knobs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loadgen import Result, Target, build_body, line, ms, percentile, run_load
from pulsehook.github.verify import sign
from receivers import (
    NAIVE_DB,
    PROJECT_DIR,
    Receiver,
    count_rows,
    installed,
    process_ticks,
    source_fingerprint,
    ticks_since,
)

NAMES = ("bare", "naive", "pulsehook")
OTHER_CPU_WARN = 0.10
P99_TARGET_MS, BURST_MAX_TARGET_MS, SPEEDUP_TARGET, RSS_GROWTH_TARGET = 20.0, 100.0, 1.5, 0.20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s, small tests")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per receiver per round")
    p.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    p.add_argument("--client", choices=("auto", "raw", "httpx"), default="auto")
    p.add_argument("--burst", type=int, default=5000, help="burst deliveries")
    p.add_argument("--burst-connections", type=int, default=64)
    p.add_argument("--memory-count", type=int, default=100_000)
    p.add_argument("--memory-every", type=int, default=10_000, help="RSS sample interval")
    p.add_argument("--memory-time-limit", type=float, default=180.0)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument(
        "--flood",
        type=float,
        default=60.0,
        help="seconds of sustained load past the processing lag limit (0: skip)",
    )
    p.add_argument("--flood-window", type=float, default=5.0, help="flood sample interval")
    p.add_argument(
        "--synchronous",
        choices=("normal", "full"),
        default="normal",
        help="naive and pulsehook both: normal (survives a killed process) or full (power loss)",
    )
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.burst = 1, 2.0, 500
        args.memory_count, args.memory_every = 5000, 500
        args.flood = 0.0
    return args


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


class Bench:
    def __init__(self, args: argparse.Namespace, runner: asyncio.Runner) -> None:
        self.args = args
        self.runner = runner
        self.body, self.body_note = build_body()
        self.secret = secrets.token_hex(32)
        self.signature = sign(self.body, self.secret.encode())
        self.receivers: dict[str, Receiver] = {}
        self.client = args.client
        self.ph_ok = 0  # 2xx answers from pulsehook, all phases
        self.naive_ok = 0
        self.summary: list[str] = []
        self.other_max = 0.0  # most CPU seen used by processes not the bench's

    def target(self, name: str) -> Target:
        return Target(port=self.receivers[name].port, body=self.body, signature=self.signature)

    def own_pids(self) -> set[int]:
        return {os.getpid(), *(r.pid for r in self.receivers.values() if r.proc)}

    def load(self, name: str, connections: int, seconds: float, **kw: Any) -> Result:
        """One load run against ``name``, with the CPU use seen meanwhile."""
        rec, client = self.receivers[name], kw.pop("client", self.client)
        others, srv = process_ticks(self.own_pids()), rec.cpu_seconds()
        r = self.runner.run(
            run_load(
                self.target(name), client=client, connections=connections, seconds=seconds, **kw
            )
        )
        if r.elapsed:
            r.server_cpu = (rec.cpu_seconds() - srv) / r.elapsed
            r.other_cpu = ticks_since(others, process_ticks(self.own_pids())) / r.elapsed
            self.other_max = max(self.other_max, r.other_cpu if r.elapsed >= 1.0 else 0.0)
        return r

    def calibrate(self) -> None:
        if self.client != "auto":
            print(f"client: {self.client} (forced)")
            return
        seconds = 1.0 if self.args.quick else 2.0
        rates: dict[str, float] = {}
        for client in ("httpx", "raw"):
            result = self.load("bare", self.args.connections, seconds, client=client)
            rates[client] = result.rate
            print(f"calibrate {line('bare/' + client, result)}")
        self.client = max(rates, key=lambda c: rates[c])
        print(f"client: {self.client} (faster against bare)")

    def rounds(self) -> dict[str, list[Result]]:
        a = self.args
        results: dict[str, list[Result]] = {n: [] for n in NAMES}
        print(f"\n== throughput: {a.rounds} round(s) x {a.seconds:g} s, {a.connections} conns ==")
        for rnd in range(1, a.rounds + 1):
            for name in NAMES:
                for rec in self.receivers.values():
                    rec.wait_idle()
                r = self.load(name, a.connections, a.seconds)
                results[name].append(r)
                print(f"round {rnd} {line(name, r)}")
                if name == "pulsehook":
                    self.ph_ok += r.ok
                    print(f"          {self.receivers['pulsehook'].drain()}")
                elif name == "naive":
                    self.naive_ok += r.ok
        return results

    def report_rounds(self, results: dict[str, list[Result]]) -> None:
        print("\n== throughput summary (req/s: median of rounds; latency: all rounds pooled) ==")
        rate: dict[str, float] = {}
        p99: dict[str, float] = {}
        header = f"{'receiver':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        rows = [header]
        for name in NAMES:
            pooled = [x for r in results[name] for x in r.latencies]
            rate[name] = statistics.median(r.rate for r in results[name])
            p99[name] = ms(percentile(pooled, 99))
            errors = sum(r.errors for r in results[name])
            p50 = ms(percentile(pooled, 50))
            rows.append(f"{name:<10} {rate[name]:>9,.0f} {p50:>8.2f} {p99[name]:>8.2f} {errors:>7}")
        print("\n".join(rows))
        vs_naive = rate["pulsehook"] / rate["naive"] if rate["naive"] else 0.0
        vs_bare = rate["pulsehook"] / rate["bare"] if rate["bare"] else 0.0
        print(f"pulsehook/naive = {vs_naive:.2f}x   pulsehook/bare = {vs_bare:.2f}x")
        self.summary += rows
        self.summary.append(
            f"ratios: pulsehook/naive {vs_naive:.2f}x, pulsehook/bare {vs_bare:.2f}x"
        )
        self.summary.append(
            f"{verdict(vs_naive >= SPEEDUP_TARGET)}  pulsehook throughput >= "
            f"{SPEEDUP_TARGET}x naive ({vs_naive:.2f}x)"
        )
        self.summary.append(
            f"{verdict(p99['pulsehook'] < P99_TARGET_MS)}  pulsehook p99 < {P99_TARGET_MS:g} ms"
            f" ({p99['pulsehook']:.2f} ms)"
        )
        print("\n".join(self.summary[-2:]))

    def burst(self) -> None:
        a, ph = self.args, self.receivers["pulsehook"]
        print(f"\n== burst: {a.burst:,} deliveries over {a.burst_connections} conns ==")
        r = self.load("pulsehook", a.burst_connections, 60.0, count=a.burst)
        self.ph_ok += r.ok
        print(line("pulsehook", r))
        worst = ms(max(r.latencies, default=0.0))
        ok = r.errors == 0 and r.answered == a.burst and worst < BURST_MAX_TARGET_MS
        text = (
            f"{verdict(ok)}  burst {r.answered:,}/{a.burst:,} answered, errors {r.errors}"
            f" (target 0), max latency {worst:.2f} ms (target < {BURST_MAX_TARGET_MS:g} ms)"
        )
        print(text)
        self.summary.append(text)
        print(f"          {ph.drain()}")

    def memory(self) -> None:
        a, ph = self.args, self.receivers["pulsehook"]
        print(
            f"\n== memory: {a.memory_count:,} deliveries, RSS every {a.memory_every:,}"
            f" (time limit {a.memory_time_limit:g} s) =="
        )
        start_rss = ph.rss_kib()
        samples: list[tuple[int, int]] = []
        backlog: list[int] = []

        def sample(n: int) -> None:
            samples.append((n, ph.rss_kib()))
            backlog.append(ph.statuses().get("pending", 0))

        r = self.load(
            "pulsehook",
            a.connections,
            a.memory_time_limit,
            count=a.memory_count,
            every=a.memory_every,
            on_every=sample,
        )
        self.ph_ok += r.ok
        stop = " (stopped by the time limit)" if r.timed_out else ""
        print(f"sent {r.answered:,} of {a.memory_count:,} in {r.elapsed:.1f} s{stop}")
        print(line("pulsehook", r))
        print(f"RSS before: {start_rss / 1024:.1f} MiB")
        for (n, kib), pending in zip(samples, backlog, strict=True):
            print(
                f"RSS after {n:>7,}: {kib / 1024:6.1f} MiB   (worker backlog {pending:,} pending)"
            )
        print(f"          {ph.drain()}")
        print(f"RSS after the worker drained: {ph.rss_kib() / 1024:.1f} MiB")
        if len(samples) < 2:
            text = "FAIL  memory: fewer than 2 RSS samples, no verdict"
        else:
            (n0, base), (n1, last) = samples[1], samples[-1]
            growth = (last - base) / base
            text = (
                f"{verdict(growth < RSS_GROWTH_TARGET)}  RSS growth {n0:,} -> {n1:,}: "
                f"{growth * 100:+.1f}% ({base / 1024:.1f} -> {last / 1024:.1f} MiB, target < "
                f"{RSS_GROWTH_TARGET * 100:.0f}%), sent {r.answered:,}, errors {r.errors}"
            )
        print(text)
        self.summary.append(text)

    def flood(self) -> None:
        """Sustained load: receiving alone at first, then sharing with processing.

        Informational (no target): processing yields to receiving until it is
        PULSEHOOK_PROCESSING_LAG_LIMIT (30 s) behind, then shares the CPU.
        """
        a, ph = self.args, self.receivers["pulsehook"]
        print(f"\n== flood: {a.flood:g} s of sustained load, {a.connections} conns ==")
        windows: list[tuple[float, float, int]] = []  # (end s, req/s, pending)
        elapsed, sent = 0.0, 0
        while elapsed < a.flood:
            r = self.load("pulsehook", a.connections, min(a.flood_window, a.flood - elapsed))
            self.ph_ok += r.ok
            sent += r.answered
            elapsed += r.elapsed
            pending = ph.statuses().get("pending", 0)
            windows.append((elapsed, r.rate, pending))
            print(f"flood {elapsed:5.0f} s  {line('pulsehook', r)}  pending {pending:,}")
        early = [rate for end, rate, _ in windows if end <= 30.0]
        late = [rate for end, rate, _ in windows if end > 35.0]
        processed = sent - windows[-1][2] if windows else 0
        text = (
            f"INFO  flood {elapsed:.0f} s: {sent:,} received, {processed:,} processed meanwhile;"
            f" receiving {statistics.median(early) if early else 0:,.0f} req/s in the first"
            f" 30 s, {statistics.median(late) if late else 0:,.0f} req/s once processing shares"
        )
        print(text)
        self.summary.append(text)
        print(f"          {ph.drain(limit=300.0)}")

    def durability(self) -> None:
        print("\n== durability ==")
        ph = self.receivers["pulsehook"]
        ph.stop(signal.SIGKILL)  # a crash: only what was committed may count
        rows = count_rows(ph.data_dir / "pulsehook.db")
        text = (
            f"{verdict(rows == self.ph_ok)}  pulsehook rows after SIGKILL {rows:,}"
            f" == 2xx answers {self.ph_ok:,}"
        )
        naive_rows = count_rows(self.receivers["naive"].data_dir / NAIVE_DB)
        print(text)
        print(f"      (naive: rows {naive_rows:,}, 2xx answers {self.naive_ok:,})")
        self.summary.append(text)

    def run(self) -> None:
        a = self.args
        print(f"payload: {len(self.body):,} bytes; {self.body_note}")
        print(f"synchronous: {a.synchronous} (naive and pulsehook)")
        print(
            f"python {sys.version.split()[0]}; server loop "
            f"{'uvloop' if installed('uvloop') else 'asyncio'}, http "
            f"{'httptools' if installed('httptools') else 'h11'}; wrk: "
            f"{shutil.which('wrk') or 'not installed (asyncio generator used)'}"
        )
        before = process_ticks({os.getpid()})
        time.sleep(1.0)
        quiet = ticks_since(before, process_ticks({os.getpid()}))
        print(f"before start, other processes used {quiet:.0%} of a CPU (1 s sample)")
        with tempfile.TemporaryDirectory(prefix="pulsehook-bench-") as root:
            try:
                for name in NAMES:
                    rec = Receiver(
                        name,
                        secret=self.secret,
                        cpu=a.server_cpu,
                        root=Path(root),
                        synchronous=a.synchronous,
                    )
                    self.receivers[name] = rec
                    rec.start()
                    print(f"{name}: pid {rec.pid}, port {rec.port}, CPUs {rec.pinned_cpus()}")
                print(f"pulsehook: cwd {PROJECT_DIR}, so its rules_dir is the shipped rules/")
                print(f"pulsehook source: {source_fingerprint()}")
                print(f"load generator: pid {os.getpid()}, CPUs {sorted(os.sched_getaffinity(0))}")
                self.calibrate()
                self.report_rounds(self.rounds())
                self.burst()
                if not a.skip_memory:
                    self.memory()
                if a.flood > 0:
                    self.flood()
                self.durability()
            finally:
                for rec in self.receivers.values():
                    rec.stop()
        print("\n== summary ==")
        print(
            f"payload {len(self.body):,} bytes, client {self.client}, server CPU {a.server_cpu},"
            f" synchronous {a.synchronous}"
        )
        print("\n".join(self.summary))
        if self.other_max > OTHER_CPU_WARN:
            print(
                f"WARNING: other processes used up to {self.other_max:.0%} of a CPU during a"
                " run: another workload shared the machine; rerun"
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.sched_setaffinity(0, {args.client_cpu})
    loop_factory = None
    if installed("uvloop"):
        import uvloop

        loop_factory = uvloop.new_event_loop
    started = time.monotonic()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        Bench(args, runner).run()
    print(f"total time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
