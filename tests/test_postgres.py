"""The PostgreSQL the tests run against: real, on loopback only, one fresh database each."""

from __future__ import annotations

import psycopg
import pytest

from .conftest import TEST_DATABASE_URL


def test_each_test_gets_an_empty_database_of_its_own(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        conn.execute("CREATE TABLE scratch (x int)")  # gone with the database after the test
    assert version is not None and int(version[0]) >= 150000
    assert tables == (0,)


def test_the_throwaway_cluster_listens_on_loopback_only(postgres_server: str) -> None:
    if TEST_DATABASE_URL:
        pytest.skip("a server given by PULSEHOOK_TEST_DATABASE_URL is its operator's to set up")
    with psycopg.connect(postgres_server) as conn:
        listen = conn.execute("SHOW listen_addresses").fetchone()
        fsync = conn.execute("SHOW fsync").fetchone()
    assert listen == ("127.0.0.1",)
    assert fsync == ("off",)  # a test cluster: speed over durability, nothing outlives it
