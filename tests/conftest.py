"""Shared fixtures: real settings in a temp dir, the app on uvicorn over loopback."""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import uvicorn
from hypothesis import settings as hypothesis_settings
from psycopg import sql
from pydantic import SecretStr
from starlette.types import ASGIApp

from pulsehook.github.backfill import StoreLedger
from pulsehook.github.verify import sign
from pulsehook.settings import Settings
from pulsehook.store.db import SqliteReaders, SqliteWriter
from pulsehook.store.postgres import PostgresWriter

from . import postgres

# CI runs the same examples every time (a red build is then never luck); developers'
# runs keep exploring new ones.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

PAYLOADS = Path(__file__).parent / "payloads"
SECRET = "test-secret"
API_TOKEN = "test-api-token-0123456789"
# What a test's client sends to read the API (reads need the token by default).
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def payload(name: str) -> dict[str, Any]:
    """A real GitHub example payload from tests/payloads/."""
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    def __init__(self, app: ASGIApp) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def live(app: ASGIApp) -> Iterator[LiveServer]:
    server = LiveServer(app)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# Read before the hermetic environment clears every PULSEHOOK_ variable.
TEST_DATABASE_URL = os.environ.get(postgres.ENV_URL)
# The store the suite runs on: "sqlite" (the default) or "postgresql", where every
# test's service gets a fresh migrated PostgreSQL database (scripts/test runs both).
TEST_BACKEND = os.environ.get("PULSEHOOK_TEST_BACKEND", "sqlite")
if TEST_BACKEND not in ("sqlite", "postgresql"):
    raise RuntimeError(f"PULSEHOOK_TEST_BACKEND must be sqlite or postgresql, not {TEST_BACKEND!r}")
SUITE_DATABASE = f"pulsehook_suite_{os.getpid()}"  # runs may share a server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(reason): a test of the SQLite file itself, skipped on PostgreSQL"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TEST_BACKEND != "postgresql":
        return
    for item in items:
        if (mark := item.get_closest_marker("sqlite_only")) is not None:
            reason = mark.args[0] if mark.args else "a test of the SQLite store"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for the run: the configured one, or a throwaway cluster."""
    try:
        with postgres.cluster(TEST_DATABASE_URL) as server:
            _make_suite_database(server.url)
            try:
                yield server.url
            finally:
                with psycopg.connect(server.url, autocommit=True) as conn:
                    conn.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(SUITE_DATABASE))
                    )
    except FileNotFoundError as exc:
        pytest.skip(f"no PostgreSQL to test against: {exc}")


def _database(server: str, name: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


def _make_suite_database(server: str) -> None:
    """A database migrated once, emptied for each test that wants a store."""
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(SUITE_DATABASE)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SUITE_DATABASE)))
    PostgresWriter(_database(server, SUITE_DATABASE)).close()


@contextmanager
def _fresh_database(server: str) -> Iterator[str]:
    name = f"pulsehook_test_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped after the test."""
    with _fresh_database(postgres_server) as url:
        yield url


@pytest.fixture
def postgres_store(postgres_server: str) -> str:
    """The suite's database with pulsehook's schema, emptied for this test.

    One database emptied per test, not one made per test: a TRUNCATE of every
    table takes a tenth of a copy of the template.
    """
    url = _database(postgres_server, SUITE_DATABASE)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")  # a test that left a transaction open
        tables = [
            sql.Identifier(r[0])
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                " AND tablename != 'schema_version'"
            )
        ]
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(sql.SQL(", ").join(tables))
        )
    return url


@pytest.fixture(autouse=True)
def hermetic_environment(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Tests see no configuration from the machine they run on (but the store under test)."""
    for name in list(os.environ):
        if name.startswith(("PULSEHOOK_", "NOTIFIERS_")) or name in (
            "DATABASE_URL",
            "GITHUB_TOKEN",
            "PULSE_SCAN_INTERVAL",
            "SLACK_WEBHOOK_URL",
            "DISCORD_WEBHOOK_URL",
            "DEFAULT_PULSEOX_URL",
        ):
            monkeypatch.delenv(name, raising=False)
    if TEST_BACKEND == "postgresql" and request.node.get_closest_marker("sqlite_only") is None:
        monkeypatch.setenv("PULSEHOOK_DATABASE_URL", request.getfixturevalue("postgres_store"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        rules_dir=tmp_path / "rules",
        webhook_secret=SecretStr(SECRET),
        api_token=SecretStr(API_TOKEN),
    )


def signed_headers(
    body: bytes, event: str, guid: str | None = None, secret: str = SECRET, **extra: str
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": guid or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, secret.encode()),
        **extra,
    }


def deliver(
    client: httpx.Client,
    event: str,
    data: Any,
    guid: str | None = None,
    secret: str = SECRET,
    **extra: str,
) -> httpx.Response:
    body = json.dumps(data).encode()
    return client.post(
        "/webhooks/github", content=body, headers=signed_headers(body, event, guid, secret, **extra)
    )


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) for background processing to reach a state."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def drained(client: httpx.Client) -> bool:
    counts = client.get("/api/v1/status", headers=AUTH).json()["deliveries"]
    return bool(counts["pending"] == 0)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[StoreLedger]:
    """The scan's memory in a real store: a fresh database per test."""
    path = tmp_path / "ledger.db"
    writer = SqliteWriter(path)  # creates and migrates the database
    readers = SqliteReaders(path)
    try:
        yield StoreLedger(writer, readers)
    finally:
        writer.close()
        readers.close()
