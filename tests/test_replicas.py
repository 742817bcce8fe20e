"""Several real ``pulsehook serve`` processes on one PostgreSQL database.

Each replica receives, processes and sends; every notice goes out once, and
when one replica is killed (SIGKILL: no goodbye), the others take its work,
its leases and, if it led, the lead.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from pulsehook.store.replicas import LEADER, lock_key

from .conftest import API_TOKEN, AUTH, SECRET, deliver, free_port, payload, wait_for
from .standins import Receiver, receiver

RULES = """\
[channels.slack]
webhook_url = "${SLACK_WEBHOOK_URL}"
rate = "off"

[[rule]]
name = "build_failure"
condition = "build.status == 'failure' and build.default_branch"
channels = ["slack"]
frequency = "immediate"
group = false
"""
WF = re.compile(r"\bwf-(\d+)\b")


@dataclass
class Replica:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        return False


@dataclass
class Cluster:
    tmp: Path
    url: str
    slack: Receiver
    replicas: dict[str, Replica]

    def start(self, name: str) -> Replica:
        data = self.tmp / name
        data.mkdir(exist_ok=True)
        port = free_port()
        log = self.tmp / f"{name}.log"
        env = {
            **os.environ,
            "PULSEHOOK_DATABASE_URL": self.url,
            "PULSEHOOK_WEBHOOK_SECRET": SECRET,
            "PULSEHOOK_API_TOKEN": API_TOKEN,
            "SLACK_WEBHOOK_URL": f"{self.slack.url}/hook/main",
            "PULSEHOOK_FLAP_INTERVAL": "0s",
        }
        rules = self.tmp / "rules"
        command = [sys.executable, "-m", "pulsehook", "serve", "--port", str(port)]
        command += ["--data-dir", str(data), "--rules-dir", str(rules)]
        with log.open("ab") as out:
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        replica = Replica(name, port, proc, log)
        self.replicas[name] = replica
        wait_for(replica.up, timeout=30)
        return replica

    def kill(self, name: str) -> None:
        replica = self.replicas.pop(name)
        replica.proc.send_signal(signal.SIGKILL)
        replica.proc.wait(timeout=10)

    def terminate(self, name: str) -> int:
        """Stop ``name`` as a supervisor would (SIGTERM); its exit code."""
        replica = self.replicas.pop(name)
        replica.proc.send_signal(signal.SIGTERM)
        return replica.proc.wait(timeout=30)

    def stop(self) -> None:
        for replica in self.replicas.values():
            replica.proc.send_signal(signal.SIGTERM)
        for replica in self.replicas.values():
            try:
                replica.proc.wait(timeout=20)
            finally:
                if replica.proc.poll() is None:
                    replica.proc.kill()
                    replica.proc.wait(timeout=10)
        self.replicas.clear()

    def leader_pid(self) -> int | None:
        key = lock_key(LEADER)
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s"
                " AND l.objid::bigint = %s",
                (key >> 32, key & 0xFFFFFFFF),
            ).fetchone()
        return int(row[0]) if row else None

    def stored(self, guids: list[str]) -> int:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM deliveries WHERE guid = ANY(%s)", (guids,)
            ).fetchone()
        return int(row[0]) if row else 0


@pytest.fixture
def cluster(tmp_path: Path, postgres_store: str) -> Iterator[Cluster]:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "alerts.toml").write_text(RULES)
    with receiver() as slack:
        group = Cluster(tmp_path, postgres_store, slack, {})
        try:
            yield group
        finally:
            group.stop()


def failed_run(n: int) -> dict[str, Any]:
    """A failed default-branch run of a workflow of its own (``wf-N``): a new alert."""
    data = copy.deepcopy(payload("workflow_run.completed"))
    data["repository"]["default_branch"] = "main"
    data["workflow_run"].update(
        id=10_000 + n,
        workflow_id=20_000 + n,
        name=f"wf-{n}",
        head_branch="main",
        conclusion="failure",
        updated_at="2026-01-01T10:00:00Z",
    )
    if "workflow" in data:
        data["workflow"].update(id=20_000 + n, name=f"wf-{n}")
    return data


def received(slack: Receiver) -> Counter[int]:
    found: Counter[int] = Counter()
    for body in slack.delivered("main"):
        for n in set(WF.findall(json.dumps(body))):
            found[int(n)] += 1
    return found


def send(cluster: Cluster, numbers: range, guids: list[str]) -> None:
    """Each delivery to the next replica in turn, as a load balancer would."""
    names = sorted(cluster.replicas)
    for i, n in enumerate(numbers):
        replica = cluster.replicas[names[i % len(names)]]
        guid = f"replica-{n}"
        with httpx.Client(base_url=replica.url, headers=AUTH, timeout=10) as client:
            assert deliver(client, "workflow_run", failed_run(n), guid=guid).status_code == 202
        guids.append(guid)


def test_replicas_send_each_notice_once_and_survive_a_kill(cluster: Cluster) -> None:
    for name in ("a", "b", "c"):
        cluster.start(name)
    wait_for(lambda: cluster.leader_pid() is not None, timeout=10)
    guids: list[str] = []
    send(cluster, range(30), guids)
    wait_for(lambda: set(received(cluster.slack)) == set(range(30)), timeout=30)
    # Every replica serves the summary, the leader's or not.
    for replica in cluster.replicas.values():
        summary = httpx.get(f"{replica.url}/summary.md", headers=AUTH, timeout=10)
        assert summary.status_code == 200 and "# ERROR" in summary.text, replica.name
    # The leader dies; another takes the lead, and the work goes on on the rest.
    leader = next(
        name for name, r in cluster.replicas.items() if "leading the replicas" in r.log.read_text()
    )
    cluster.kill(leader)
    started = time.monotonic()
    wait_for(lambda: cluster.leader_pid() is not None, timeout=10)
    took_over = time.monotonic() - started
    send(cluster, range(30, 60), guids)
    wait_for(lambda: set(received(cluster.slack)) == set(range(60)), timeout=30)
    time.sleep(0.5)  # a duplicate would come now, if it came
    counts = received(cluster.slack)
    assert [n for n, c in counts.items() if c > 1] == []
    assert cluster.stored(guids) == len(guids)  # everything answered 2xx was stored
    assert took_over < 5


def test_a_dead_replicas_leased_notice_is_sent_by_another_within_seconds(
    cluster: Cluster,
) -> None:
    cluster.start("a")
    # A notice leased for an hour by a replica whose session is gone.
    with psycopg.connect(cluster.url) as conn:
        conn.execute(
            "INSERT INTO outbox (channel, kind, message, status, next_attempt_at, created_at,"
            " leased_by) VALUES ('slack', 'test', %s, 'pending', '2999-01-01T00:00:00Z',"
            " '2026-01-01T00:00:00Z', '1-deadbeef0000')",
            (json.dumps({"title": "left by wf-7", "text": "left by wf-7", "markdown": "wf-7"}),),
        )
    started = time.monotonic()
    wait_for(lambda: received(cluster.slack)[7] == 1, timeout=15)
    assert time.monotonic() - started < 10


def test_a_replica_stopped_mid_send_finishes_it_and_nobody_sends_it_again(
    cluster: Cluster,
) -> None:
    cluster.slack.delay = 4.0  # every send stays in flight for 4 s
    cluster.start("a")
    send(cluster, range(500, 501), [])
    wait_for(lambda: received(cluster.slack)[500] == 1, timeout=15)  # a is sending it
    cluster.start("b")  # would take the notice over if a left it unrecorded
    cluster.terminate("a")
    time.sleep(2 * 2.0 + 1)  # past b's next look for a dead replica's leases
    assert received(cluster.slack)[500] == 1
    with psycopg.connect(cluster.url) as conn:
        assert conn.execute("SELECT status FROM outbox").fetchall() == [("sent",)]
