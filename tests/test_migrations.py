"""Upgrades: released migrations stay as released, and every database a user
could have, made by any sequence of releases, upgrades to a fresh database's
schema with its rows kept. Migrations run once when processes start together.

Adding migration N: append it to ``MIGRATIONS``, run this file with
``WRITE_SCHEMA_SNAPSHOTS=1`` to write ``tests/schema/vN.sql`` (review it), add its
fingerprint to ``RELEASED``, and to ``CHOSEN`` any value a new table's
constraints need that the generic ones do not give.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pulsehook.ingest import process_chunk
from pulsehook.store.db import connect, open_database, transaction, wrap
from pulsehook.store.deliveries import Delivery, decode_payload, encode_payload, insert_batch
from pulsehook.store.migrations import MIGRATIONS, Migration, migrate

from .conftest import payload

SCHEMA = Path(__file__).parent / "schema"
LATEST = len(MIGRATIONS)

# Each released migration's fingerprint. A migration is never edited once
# released: ``user_version`` cannot tell its texts apart, so a database made from
# the earlier text would never get the change.
RELEASED = {
    1: "bc6ab204e948e07a",
    2: "dd37e143802c5375",
    3: "3155c827c5da928b",
    4: "095d515e8dce0403",
    5: "3cb46be22a73b365",
    6: "d714b4a35481a3b6",
    7: "5f8960bcf094f709",
    8: "50dd4ff01ef56df9",
    9: "00ca2760beb0ee54",
    10: "729c9bbf6bbae2b2",
    11: "9107cc932205a7ee",
    12: "9967b582ba68051e",
    13: "98972a3bf99016ff",
    14: "b22921c45d776b5a",
    15: "07aac8454f6d9d7a",
    16: "7a23e927c4b60d06",
    17: "acad8081f53ca691",
}

# Every release that created or migrated a database, oldest first: its commit,
# how many migrations it had, and which of them it had in an earlier text
# (tests/schema/released/N-commit.sql, as released); the others it had as now.
RELEASES: list[tuple[str, int, dict[int, str]]] = [
    ("c9c68b8", 1, {1: "1-c9c68b8"}),
    ("07d9129", 2, {1: "1-c9c68b8"}),
    ("48b0de4", 3, {1: "1-c9c68b8", 3: "3-48b0de4"}),
    ("e24ac87", 3, {1: "1-c9c68b8"}),
    ("28ee492", 4, {1: "1-c9c68b8", 4: "4-28ee492"}),
    ("6fb812f", 4, {1: "1-c9c68b8", 4: "4-6fb812f"}),
    ("d225a55", 4, {1: "1-c9c68b8", 4: "4-d225a55"}),
    ("f7982cf", 4, {1: "1-f7982cf", 4: "4-d225a55"}),
    ("e1e4525", 4, {4: "4-d225a55"}),  # and migration 1 as now but for a comment
    ("655560a", 4, {}),  # so too
    ("bbdec55", 4, {}),
    ("fc3fae6", 5, {}),
    ("b0a7d79", 6, {}),
    ("a23957b", 7, {}),
    ("4d3e45a", 8, {}),
    ("614100a", 9, {}),
]

PAYLOAD = '{"zen": "Keep it logically awesome.", "hook_id": 1}'
# Values the generic ones would break: CHECK constraints, and the one build
# that workflow_state counts.
CHOSEN: dict[tuple[str, str], Any] = {
    ("deliveries", "status"): "processed",
    ("outbox", "status"): "sent",
    ("alerts", "state"): "firing",
    ("summary_items", "kind"): "workflow",
    ("builds", "default_branch"): 1,
}


# -- the schema, normalised ---------------------------------------------------

_TOKEN = re.compile(
    r"""\s+|--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]"""
    r"""|[\w$]+(?:\.[\w$]+)*|.""",
    re.DOTALL,
)


def _tokens(sql: str) -> Iterator[str]:
    for token in _TOKEN.findall(sql):
        if token.isspace() or token.startswith(("--", "/*")):
            continue
        # Renaming a table quotes its name in the stored text.
        if token[0] in '"`[' and re.fullmatch(r"[A-Za-z_]\w*", token[1:-1]):
            token = token[1:-1]
        yield token


def normalise(sql: str) -> str:
    """SQL without comments, its spacing canonical; a table's columns one a line."""
    table = re.match(r"\s*CREATE\s+TABLE\b", sql, re.IGNORECASE) is not None
    parts: list[str] = []
    glue, depth = "", 0
    for token in _tokens(sql):
        if token == ")":
            depth -= 1
            glue = "\n" if table and depth == 0 else ""
        elif token in (",", ";"):
            glue = ""
        parts += [glue, token]
        glue = " "
        if token == "(":
            depth += 1
            glue = "\n    " if table and depth == 1 else ""
        elif token == "," and table and depth == 1:
            glue = "\n    "
    return "".join(parts).strip()


def schema(conn: sqlite3.Connection) -> str:
    """sqlite_master, normalised: each table followed by its indexes and triggers."""
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL"
    ).fetchall()
    rows.sort(key=lambda r: (r[2], r[0] != "table", r[1]))
    return "".join(f"{normalise(sql)};\n" for _, _, _, sql in rows)


def layout(conn: sqlite3.Connection) -> dict[str, Any]:
    """What SQLite makes of the schema: columns, keys and indexes of each table."""
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    found: dict[str, Any] = {}
    for table in sorted(tables):
        indexes = []
        for index in conn.execute(f"PRAGMA index_list({table})").fetchall():
            keys = conn.execute(f"PRAGMA index_xinfo({index[1]})").fetchall()
            indexes.append((tuple(index)[1:], [tuple(k) for k in keys]))
        found[table] = {
            "columns": [tuple(c) for c in conn.execute(f"PRAGMA table_xinfo({table})")],
            "foreign keys": [tuple(f) for f in conn.execute(f"PRAGMA foreign_key_list({table})")],
            "indexes": sorted(indexes),
        }
    return found


def fingerprint(migration: Migration) -> str:
    """A migration's text without comments and spacing, or a function's code."""
    if isinstance(migration, str):
        text = " ".join(_tokens(migration))
    else:
        tree = ast.parse(textwrap.dedent(inspect.getsource(migration)))
        for node in ast.walk(tree):  # docstrings read like comments
            body = getattr(node, "body", None)
            if (
                isinstance(body, list)
                and body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
            ):
                body.pop(0)
        text = ast.dump(tree)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def built(path: Path, migrations: list[Migration]) -> sqlite3.Connection:
    conn = connect(path)
    assert migrate(conn, migrations) == len(migrations)
    return conn


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    conn = open_database(tmp_path_factory.mktemp("fresh") / "fresh.db")
    try:
        return schema(conn), layout(conn)
    finally:
        conn.close()


def assert_fresh(conn: sqlite3.Connection, fresh: tuple[str, dict[str, Any]]) -> None:
    assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert schema(conn) == fresh[0]
    assert layout(conn) == fresh[1]


# -- released migrations ------------------------------------------------------


def test_released_migrations_are_never_edited() -> None:
    for number, migration in enumerate(MIGRATIONS, start=1):
        found = fingerprint(migration)
        assert number in RELEASED, (
            f"migration {number} is new: once it is final, add {number}: {found!r} to RELEASED"
        )
        assert found == RELEASED[number], (
            f"migration {number} was released and has been edited. A database made from"
            " its released text would never get the change: undo the edit and append a"
            " new migration to MIGRATIONS instead."
        )
    assert len(RELEASED) == LATEST, "a released migration was removed: databases count on it"


@pytest.mark.parametrize("version", range(1, LATEST + 1))
def test_schema_after_each_version_is_its_snapshot(tmp_path: Path, version: int) -> None:
    conn = built(tmp_path / "db", MIGRATIONS[:version])
    found = f"-- schema after migration {version}: sqlite_master, normalised\n" + schema(conn)
    snapshot = SCHEMA / f"v{version}.sql"
    if not snapshot.exists() and os.environ.get("WRITE_SCHEMA_SNAPSHOTS") == "1":
        snapshot.write_text(found)
    assert snapshot.exists(), (
        f"{snapshot} is missing: run this test with WRITE_SCHEMA_SNAPSHOTS=1 to write it"
    )
    assert found == snapshot.read_text(), (
        f"the schema after migration {version} is no longer {snapshot.name}:"
        " a released migration changed"
    )


# -- upgrades -----------------------------------------------------------------


def _columns(conn: sqlite3.Connection, table: str) -> dict[str, str]:
    return {row[1]: str(row[2]).upper() for row in conn.execute(f"PRAGMA table_info({table})")}


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")
    return [r[0] for r in rows]


def value(table: str, column: str, declared: str) -> Any:
    """A representative value, the same for a column name in every table.

    So the one build and the workflow state counted from it agree; keys are 1,
    so every reference finds its row.
    """
    if (table, column) in CHOSEN:
        return CHOSEN[table, column]
    if column == "payload":
        return encode_payload(PAYLOAD) if declared == "BLOB" else PAYLOAD
    if declared == "INTEGER" and (column == "id" or column.endswith("_id")):
        return 1
    return {"INTEGER": 7, "REAL": 0.5, "BLOB": b"\x00blob"}.get(declared, column)


def fill(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """One row in every table, referenced tables first; returns what was written."""
    tables = _tables(conn)
    parents = {f[2] for t in tables for f in conn.execute(f"PRAGMA foreign_key_list({t})")}
    written: dict[str, dict[str, Any]] = {}
    conn.execute("BEGIN IMMEDIATE")
    for table in sorted(tables, key=lambda t: t not in parents):
        row = {c: value(table, c, d) for c, d in _columns(conn, table).items()}
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(row.values()))
        written[table] = row
    conn.execute("COMMIT")
    return written


def assert_kept(conn: sqlite3.Connection, written: dict[str, dict[str, Any]]) -> None:
    """Every row written before the upgrade is there after it, as written."""
    for table in _tables(conn):
        now = _columns(conn, table)
        # An upgrade that creates these fills them: the state counted from the
        # build, the body moved out of the delivery (its bytes compared below).
        if table == "workflow_state":
            row = {c: value(table, c, d) for c, d in now.items()}
        elif table == "delivery_payloads":
            row = {"delivery_id": 1}
        elif table in written:
            row = {c: v for c, v in written[table].items() if c in now and c != "payload"}
        else:
            row = {}
        names = ", ".join(row) or "1"
        found = conn.execute(f"SELECT {names} FROM {table}").fetchall()
        assert [tuple(r) for r in found] == ([tuple(row.values())] if row else []), table
    bodies = conn.execute("SELECT payload FROM delivery_payloads").fetchall()
    assert [decode_payload(b) for (b,) in bodies] == [PAYLOAD.encode()]


@pytest.mark.parametrize("version", range(1, LATEST))
def test_every_earlier_version_upgrades_to_the_fresh_schema_keeping_its_rows(
    tmp_path: Path, version: int, fresh: tuple[str, dict[str, Any]]
) -> None:
    conn = built(tmp_path / "db", MIGRATIONS[:version])
    written = fill(conn)
    assert migrate(conn) == LATEST
    assert_fresh(conn, fresh)
    assert_kept(conn, written)


def _released(name: str) -> str:
    return (SCHEMA / "released" / f"{name}.sql").read_text()


def histories() -> dict[str, list[Migration]]:
    """Each database a sequence of releases could have left, by the texts that made it.

    A database takes each migration from a release that found it missing, each
    release no earlier than the one before. Only those that differ from a
    database the migrations as they are now make, at any version.
    """
    found: dict[str, list[Migration]] = {}
    # Earlier texts per migration ("" for today's) -> the earliest release that
    # can have made them, which leaves the most releases to make the rest.
    states: dict[tuple[str, ...], int] = {(): 0}
    for number in range(1, max(count for _, count, _ in RELEASES) + 1):
        grown: dict[tuple[str, ...], int] = {}
        for names, first in states.items():
            for index in range(first, len(RELEASES)):
                _, count, earlier = RELEASES[index]
                if count >= number:
                    key = (*names, earlier.get(number, ""))
                    grown[key] = min(index, grown.get(key, index))
        states = grown
        for names in filter(any, states):
            label = f"v{number}:" + "+".join(n for n in names if n)
            found[label] = [_released(n) if n else MIGRATIONS[i] for i, n in enumerate(names)]
    return found


HISTORIES = histories()


@pytest.mark.parametrize("history", sorted(HISTORIES))
def test_databases_made_by_edited_migrations_upgrade_to_the_fresh_schema(
    tmp_path: Path, history: str, fresh: tuple[str, dict[str, Any]]
) -> None:
    conn = built(tmp_path / "db", HISTORIES[history])
    written = fill(conn)
    assert migrate(conn) == LATEST
    assert_fresh(conn, fresh)
    assert_kept(conn, written)


# -- mending what the edited migrations left short ------------------------------


def _first_release(tmp_path: Path) -> sqlite3.Connection:
    """A database as the first releases made it: migrations 1 to 4 in their first texts."""
    return built(
        tmp_path / "old.db",
        [
            _released("1-c9c68b8"),
            MIGRATIONS[1],
            _released("3-48b0de4"),
            _released("4-28ee492"),
        ],
    )


def test_payloads_kept_in_deliveries_by_the_first_release_are_processed_after_upgrade(
    tmp_path: Path,
) -> None:
    conn = _first_release(tmp_path)
    body = json.dumps(payload("push"))
    conn.execute(
        "INSERT INTO deliveries (guid, event, content_type, received_at, payload, repo)"
        " VALUES ('old', 'push', 'application/json', '2026-01-01T00:00:00Z', ?, ?)",
        (body, payload("push")["repository"]["full_name"]),
    )
    conn.close()
    db = wrap(open_database(tmp_path / "old.db"))
    try:
        stored = db.execute("SELECT payload FROM delivery_payloads").fetchone()[0]
        assert decode_payload(stored) == body.encode()
        new = Delivery("new", "ping", '{"zen": "z"}', "application/json", "2026-01-01T00:00:01Z")
        assert transaction(db, lambda d: insert_batch(d, [new])) == [True]
        _, count, _ = transaction(
            db,
            lambda d: process_chunk(
                d, after_id=0, now="2026-01-01T00:01:00Z", statuses=("pending",), limit=10
            ),
        )
        assert count == 2
        statuses = dict(db.execute("SELECT guid, status FROM deliveries").fetchall())
        assert statuses == {"old": "processed", "new": "processed"}
        seen = db.execute("SELECT last_seen_at FROM repositories").fetchall()
        assert [s for (s,) in seen] == ["2026-01-01T00:01:00Z"]
    finally:
        db.conn.close()


def test_text_payloads_of_the_second_release_are_compressed_beside_later_blobs(
    tmp_path: Path,
) -> None:
    conn = built(tmp_path / "db", [_released("1-f7982cf"), *MIGRATIONS[1:9]])
    later = zlib.compress(b'{"later": true}', 1)  # as the releases after it wrote
    for key, body in ((1, '{"text": true}'), (2, later)):
        conn.execute(
            "INSERT INTO deliveries (id, guid, event, content_type, received_at)"
            " VALUES (?, ?, 'ping', 'application/json', '2026-01-01T00:00:00Z')",
            (key, f"g{key}"),
        )
        conn.execute("INSERT INTO delivery_payloads VALUES (?, ?)", (key, body))
    assert migrate(conn) == LATEST
    rows = conn.execute("SELECT delivery_id, payload FROM delivery_payloads ORDER BY 1").fetchall()
    assert [(k, decode_payload(b)) for k, b in rows] == [
        (1, b'{"text": true}'),
        (2, b'{"later": true}'),
    ]
    assert rows[1][1] == later  # already compressed: left as it was


def test_mending_keeps_one_row_per_push_and_counts_each_workflow(tmp_path: Path) -> None:
    conn = _first_release(tmp_path)
    conn.execute("INSERT INTO repositories (id, full_name, first_seen_at) VALUES (1, 'o/r', 'x')")
    conn.execute("INSERT INTO repositories (id, full_name, first_seen_at) VALUES (2, 'o/s', 'x')")
    for at in ("2026-01-01", "2026-01-02"):  # one push, from the webhook and the scan
        conn.execute(
            "INSERT INTO activity (repo_id, branch, commits, forced, bot, head_sha, at)"
            " VALUES (1, 'main', 1, 0, 0, 'abc', ?)",
            (at,),
        )
    for run, status, done in ((1, "failure", "2026-01-01"), (2, "success", "2026-01-02")):
        conn.execute(
            "INSERT INTO builds (source, run_id, repo_id, workflow, branch, default_branch,"
            " status, attempt, completed_at) VALUES ('workflow_run', ?, 1, 'ci', 'main', 1, ?,"
            " 1, ?)",
            (run, status, done),
        )
    conn.execute("UPDATE repositories SET last_activity_at = 'activity', readme = 1 WHERE id = 2")
    assert migrate(conn) == LATEST
    assert [tuple(r) for r in conn.execute("SELECT at FROM activity")] == [("2026-01-01",)]
    state = conn.execute("SELECT repo_id, workflow, status, run_id FROM workflow_state")
    assert [tuple(r) for r in state] == [(1, "ci", "success", 2)]
    row = conn.execute(
        "SELECT last_activity_at, readme, last_seen_at FROM repositories WHERE id = 2"
    ).fetchone()
    assert tuple(row) == ("activity", 1, None)


def test_mending_a_complete_database_changes_nothing(tmp_path: Path) -> None:
    conn = built(tmp_path / "db", MIGRATIONS[:9])
    written = fill(conn)
    before = schema(conn)
    mend = MIGRATIONS[9]
    assert not isinstance(mend, str)
    for _ in range(2):
        conn.execute("BEGIN IMMEDIATE")
        mend(conn)
        conn.execute("COMMIT")
        assert schema(conn) == before
    assert_kept(conn, written)


def test_a_migration_is_whole_statements_in_one_transaction(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db")
    script = """
    CREATE TABLE t (a TEXT DEFAULT 'x;y');  -- a comment; with a semicolon
    CREATE TRIGGER t_stamp AFTER INSERT ON t BEGIN UPDATE t SET a = a || ';'; END;
    INSERT INTO t VALUES ('1;2')
    """
    assert migrate(conn, [script]) == 1
    assert [tuple(r) for r in conn.execute("SELECT a FROM t")] == [("1;2;",)]
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        migrate(conn, [script, "CREATE TABLE u (a); CREATE TABLE t (a);"])
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "u" not in _tables(conn)  # the failed migration left nothing behind


# -- starting together ----------------------------------------------------------

# Opens the database at each path it reads, reporting the migrations it applied.
OPENER = """
import json, logging, sys
from pathlib import Path
from pulsehook.store.db import open_database

applied = []
class Applied(logging.Handler):
    def emit(self, record):
        applied.append(record.getMessage())
log = logging.getLogger("pulsehook.store.migrations")
log.addHandler(Applied())
log.setLevel(logging.INFO)
print("ready", flush=True)
for line in sys.stdin:
    applied.clear()
    try:
        open_database(Path(line.strip()), busy_timeout_ms=5000).close()
        print(json.dumps({"applied": applied}), flush=True)
    except Exception as exc:
        print(json.dumps({"error": repr(exc)}), flush=True)
"""


def test_processes_starting_together_apply_each_migration_once(
    tmp_path: Path, fresh: tuple[str, dict[str, Any]]
) -> None:
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for opener in openers:
            assert opener.stdout is not None and opener.stdout.readline() == "ready\n"
        for start in range(20):
            path = tmp_path / f"together{start}.db"
            for opener in openers:  # both before either answers: they start together
                assert opener.stdin is not None
                opener.stdin.write(f"{path}\n")
                opener.stdin.flush()
            answers = [json.loads(o.stdout.readline()) for o in openers if o.stdout]
            assert all("error" not in a for a in answers), answers
            applied = [int(m.split()[2]) for a in answers for m in a["applied"]]
            assert sorted(applied) == list(range(1, LATEST + 1)), answers
            with connect(path) as conn:
                assert_fresh(conn, fresh)
    finally:
        for opener in openers:
            if opener.stdin:
                opener.stdin.close()
            opener.wait(timeout=20)


def test_a_start_waits_past_its_busy_timeout_for_anothers_migration(tmp_path: Path) -> None:
    path = tmp_path / "db"
    built(path, MIGRATIONS[:9]).close()
    other = connect(path)
    other.execute("BEGIN IMMEDIATE")  # another process, migrating
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    try:
        conn = open_database(path, busy_timeout_ms=50)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 50
        conn.close()
    finally:
        release.join()
        other.close()


def test_a_current_database_opens_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "db"
    open_database(path).close()
    other = connect(path)
    other.execute("BEGIN IMMEDIATE")
    versions: list[int] = []

    def start() -> None:
        conn = open_database(path, busy_timeout_ms=50)  # takes no write lock
        versions.append(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.close()

    opening = threading.Thread(target=start)
    opening.start()
    try:
        opening.join(timeout=10)
        assert versions == [LATEST]
    finally:
        other.execute("ROLLBACK")
        opening.join()
        other.close()
