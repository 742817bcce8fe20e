"""Moving up: a SQLite store copied into an empty PostgreSQL database (``pulsehook copy``).

Everything is copied — deliveries with their payloads, alerts and their
history, the outbox, digests, silences, scores and their history, the summary,
the scan's ledger — in one PostgreSQL transaction, from one SQLite snapshot:
the copy is all there or not at all. Tables go in the order their references
need; identity columns then continue after the highest id copied.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ..errors import ConfigError, StorageUnavailable
from . import dialect
from .db import open_database
from .postgres import connect, migrate


class TargetNotEmpty(ConfigError):
    """The PostgreSQL database already holds a store's rows."""


@dataclass
class Copied:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied


def _tables(src: sqlite3.Connection) -> list[str]:
    """The store's tables, each after those it references."""
    names = [
        r[0]
        for r in src.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name"
        )
    ]
    statements = [
        f"CREATE TABLE {n} (x INTEGER"
        + "".join(
            f", r{i} INTEGER REFERENCES {ref[2]}(x)"
            for i, ref in enumerate(src.execute(f"PRAGMA foreign_key_list({n})"))
        )
        + ")"
        for n in names
    ]
    # The order PostgreSQL's migrations create them in serves the copy as well.
    return [c[0] for s in dialect.in_dependency_order(statements) if (c := dialect.creates(s))]


def _clean(value: Any) -> Any:
    # PostgreSQL's text holds no NUL (as the PostgreSQL store writes it: store/postgres.py).
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def copy_store(
    source: Path, url: str, *, progress: Callable[[str, int], None] = lambda _t, _n: None
) -> Copied:
    """Copy the SQLite store at ``source`` into the empty PostgreSQL database at ``url``.

    TargetNotEmpty when any table of the target holds rows; nothing is written then.
    """
    src = open_database(source)  # brought to the latest schema, as a start would
    try:
        dst = connect(url)
    except psycopg.OperationalError as exc:
        src.close()
        raise StorageUnavailable(str(exc)) from exc
    try:
        migrate(dst)
        dst.commit()
        src.execute("BEGIN")  # one snapshot of the whole store
        copied = Copied()
        with dst.transaction():
            tables = _tables(src)
            for table in tables:
                (held,) = dst.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                ).fetchone() or (0,)
                if held:
                    raise TargetNotEmpty(
                        f"the target database already holds {held} row(s) in {table}:"
                        " copy goes into an empty database only (create a new one)"
                    )
            for table in tables:
                copied.rows[table] = _copy_table(src, dst, table)
                progress(table, copied.rows[table])
            _continue_identities(dst)
        src.execute("ROLLBACK")
        return copied
    finally:
        src.close()
        dst.close()


def _copy_table(src: sqlite3.Connection, dst: psycopg.Connection[Any], table: str) -> int:
    columns = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names)
    count = 0
    with dst.cursor().copy(statement) as copy:
        select = f"SELECT {', '.join(columns)} FROM {table}"
        for row in src.execute(select):
            copy.write_row([_clean(v) for v in row])
            count += 1
    return count


def _continue_identities(dst: psycopg.Connection[Any]) -> None:
    """New rows' ids continue after the highest copied (COPY does not move the sequences)."""
    identities = dst.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ).fetchall()
    for table, column in identities:
        dst.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence({t}, {c}),"
                " coalesce(max({col}), 0) + 1, false) FROM {table}"
            ).format(
                t=sql.Literal(table),
                c=sql.Literal(column),
                col=sql.Identifier(column),
                table=sql.Identifier(table),
            )
        )
