"""The store's SQL as PostgreSQL reads it.

The store modules write one text per statement, in the SQL both databases
share plus a few of SQLite's spellings; this turns such a text into
PostgreSQL's, once per text (the result is cached). Pure: text in, text out.

- ``?`` placeholders become ``%s`` (and a literal ``%`` doubles, as psycopg
  wants); nothing inside quotes or comments is touched;
- ``INSERT OR IGNORE`` becomes ``ON CONFLICT DO NOTHING``; ``INSERT OR
  REPLACE`` an upsert on the table's primary key of every column it names;
- SQLite's null-safe ``a IS b`` / ``a IS NOT b`` become ``IS [NOT] DISTINCT FROM``;
  a subquery in FROM without a name gets one;
- scalar ``max(a, b)`` / ``min(a, b)`` become ``greatest`` / ``least``,
  ``instr`` ``strpos``, ``ifnull`` ``coalesce``;
- in a schema script: ``INTEGER`` is ``BIGINT`` (GitHub's ids outgrow 32
  bits), an ``INTEGER PRIMARY KEY`` an identity column, ``REAL`` ``DOUBLE
  PRECISION``, ``BLOB`` ``BYTEA``; ``WITHOUT ROWID`` goes, and a migration's
  tables are created after the tables they reference.

A spelling it does not know is left alone, so PostgreSQL names it when the
statement runs (the suite runs on both databases).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_RENAMED = {"instr": "strpos", "ifnull": "coalesce"}
_SCALAR = {"max": "greatest", "min": "least"}  # with two or more arguments


def _tokens(sql: str) -> Iterator[tuple[str, str]]:
    """(kind, text) pieces: 'quoted' (strings, quoted names, comments), 'word',
    'other' (one character)."""
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"":
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:  # a doubled quote stays inside
                        j += 2
                        continue
                    break
                j += 1
            yield "quoted", sql[i : j + 1]
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            yield "comment", sql[i:j]
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            yield "comment", sql[i:j]
            i = j
        elif (m := _WORD.match(sql, i)) is not None:
            yield "word", m.group()
            i = m.end()
        else:
            yield "other", c
            i += 1


def _has_top_level_comma(pieces: list[tuple[str, str]], start: int) -> bool:
    """Whether the parenthesis opened at ``pieces[start]`` holds a comma at its own depth."""
    depth = 0
    for kind, text in pieces[start:]:
        if kind != "other":
            continue
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
            if depth == 0:
                return False
        elif text == "," and depth == 1:
            return True
    return False


def _next_word(pieces: list[tuple[str, str]], start: int) -> tuple[int, str]:
    for i in range(start, len(pieces)):
        kind, text = pieces[i]
        if kind == "word":
            return i, text.lower()
        if kind == "other" and not text.isspace():
            return i, text
    return len(pieces), ""


@functools.lru_cache(maxsize=4096)
def postgres(sql: str) -> str:
    """``sql`` (one statement, as the store writes it) in PostgreSQL's spelling."""
    return _Respelling(list(_tokens(sql))).text()


class _Respelling:
    """One pass over a statement's pieces, each rule its own method."""

    def __init__(self, pieces: list[tuple[str, str]]) -> None:
        self.pieces = pieces
        self.out: list[str] = []
        self.conflict = ""  # what an INSERT OR ... asks for, added at the end
        self.table = ""
        self.columns: list[str] = []
        self.depth = 0
        self.subqueries: list[int] = []  # depths at which a FROM ( ... ) opened

    def text(self) -> str:
        i = 0
        while i < len(self.pieces):
            i = self.piece(i)
        text = "".join(self.out)
        if self.conflict:
            text = _with_conflict(text, self.conflict, self.table, self.columns)
        return text

    def piece(self, i: int) -> int:
        """Emit what piece ``i`` becomes; the index of the next piece to look at."""
        kind, text = self.pieces[i]
        lower = text.lower()
        if kind == "other":
            self.punctuation(i, text)
        elif kind in ("quoted", "comment"):
            self.out.append(text.replace("%", "%%"))  # psycopg reads placeholders everywhere
        elif lower == "insert":
            return self.insert(i, text)
        elif lower == "is":
            return self.null_safe(i, text)
        elif lower in _RENAMED and _next_word(self.pieces, i + 1)[1] == "(":
            self.out.append(_RENAMED[lower])
        elif lower in _SCALAR and self.scalar(i):
            self.out.append(_SCALAR[lower])
        else:
            self.out.append(text)
        return i + 1

    def punctuation(self, i: int, text: str) -> None:
        if text == "?":
            self.out.append("%s")
        elif text == "%":
            self.out.append("%%")
        elif text == "(":
            self.depth += 1
            if _previous_word(self.pieces, i) == "from":
                self.subqueries.append(self.depth)
            self.out.append(text)
        elif text == ")":
            self.out.append(text)
            if self.subqueries and self.subqueries[-1] == self.depth:
                self.subqueries.pop()
                if _next_word(self.pieces, i + 1)[1] in _NOT_AN_ALIAS:
                    self.out.append(f" AS subquery_{i}")  # PostgreSQL names every subquery
            self.depth -= 1
        else:
            self.out.append(text)

    def insert(self, i: int, text: str) -> int:
        self.out.append(text)
        j, word = _next_word(self.pieces, i + 1)
        if word != "or":
            return i + 1
        k, how = _next_word(self.pieces, j + 1)
        into, _ = _next_word(self.pieces, k + 1)
        t, _ = _next_word(self.pieces, into + 1)
        self.table = self.pieces[t][1]
        self.columns = _column_list(self.pieces, t + 1)
        self.conflict = how
        return k + 1  # past "OR IGNORE" / "OR REPLACE"

    def null_safe(self, i: int, text: str) -> int:
        """SQLite's ``a IS b`` and ``a IS NOT b`` compare as equals that hold NULL."""
        j, word = _next_word(self.pieces, i + 1)
        if word == "not":
            operand = _next_word(self.pieces, j + 1)[1]
            if operand not in _IS_OPERANDS:
                self.out.append("IS DISTINCT FROM")
                return j + 1
        elif word not in _IS_OPERANDS:
            self.out.append("IS NOT DISTINCT FROM")
            return i + 1
        self.out.append(text)
        return i + 1

    def scalar(self, i: int) -> bool:
        """Whether the max/min at ``i`` is the scalar one (two or more arguments)."""
        after = _next_word(self.pieces, i + 1)
        return after[1] == "(" and _has_top_level_comma(self.pieces, after[0])


_IS_OPERANDS = {"null", "not", "true", "false", "distinct", "unknown"}
_NOT_AN_ALIAS = {
    "",
    ")",
    ";",
    ",",
    "where",
    "group",
    "order",
    "limit",
    "union",
    "join",
    "left",
    "inner",
    "cross",
    "having",
    "window",
    "on",
}


def _previous_word(pieces: list[tuple[str, str]], before: int) -> str:
    for i in range(before - 1, -1, -1):
        kind, text = pieces[i]
        if kind == "word":
            return text.lower()
        if kind == "other" and not text.isspace():
            return text
    return ""


def _column_list(pieces: list[tuple[str, str]], start: int) -> list[str]:
    """The names in the parenthesised column list that follows an INSERT's table."""
    i, first = _next_word(pieces, start)
    if first != "(":
        return []
    names: list[str] = []
    for kind, text in pieces[i + 1 :]:
        if kind == "other" and text == ")":
            break
        if kind == "word":
            names.append(text)
    return names


def _with_conflict(text: str, how: str, table: str, columns: list[str]) -> str:
    if how == "ignore":
        clause = " ON CONFLICT DO NOTHING"
    elif how == "replace":
        if not columns:
            raise ValueError(f"INSERT OR REPLACE INTO {table} names no columns")
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
        clause = f" ON CONFLICT ON CONSTRAINT {table}_pkey DO UPDATE SET {sets}"
    else:
        raise ValueError(f"INSERT OR {how.upper()} has no PostgreSQL spelling")
    body = text.rstrip().rstrip(";")
    match = re.search(r"\sRETURNING\s", body, flags=re.IGNORECASE)
    if match:
        return body[: match.start()] + clause + body[match.start() :]
    return body + clause


_TYPES = {"integer": "BIGINT", "real": "DOUBLE PRECISION", "blob": "BYTEA"}


def ddl(statement: str) -> str:
    """One schema statement (CREATE, ALTER ...) in PostgreSQL's spelling."""
    pieces = list(_tokens(statement))
    out: list[str] = []
    i = 0
    while i < len(pieces):
        kind, text = pieces[i]
        lower = text.lower()
        if kind == "word" and lower == "integer":
            j, word = _next_word(pieces, i + 1)
            k, key = _next_word(pieces, j + 1)
            if word == "primary" and key == "key":
                out.append("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
                i = k + 1
                continue
            out.append(_TYPES[lower])
        elif kind == "word" and lower in _TYPES:
            out.append(_TYPES[lower])
        elif kind == "word" and lower == "without" and _next_word(pieces, i + 1)[1] == "rowid":
            i = _next_word(pieces, i + 1)[0] + 1
            continue
        else:
            out.append(text)
        i += 1
    return postgres("".join(out))


def creates(statement: str) -> tuple[str, set[str]] | None:
    """For a CREATE TABLE: (its name, the tables it references); else None."""
    words = [t.lower() for k, t in _tokens(statement) if k == "word"]
    if words[:2] != ["create", "table"]:
        return None
    name = words[5] if words[2:5] == ["if", "not", "exists"] else words[2]
    refs = {words[i + 1] for i, w in enumerate(words[:-1]) if w == "references"}
    return name, refs - {name}


def in_dependency_order(statements: list[str]) -> list[str]:
    """The statements of one migration with each CREATE TABLE after those it references.

    SQLite resolves a reference when a row is written, PostgreSQL when the
    table is created; a migration may name a table it creates further down.
    A CREATE TABLE moves up no further than its references allow; any other
    statement waits for everything written before it.
    """
    tables = [creates(s) for s in statements]
    made = {t[0] for t in tables if t is not None}
    done: set[int] = set()
    names: set[str] = set()
    ordered: list[str] = []
    while len(done) < len(statements):
        for i, statement in enumerate(statements):
            if i in done:
                continue
            table = tables[i]
            ready = (
                not (table[1] & made) - names
                if table is not None
                else all(j in done for j in range(i))
            )
            if ready:
                ordered.append(statement)
                done.add(i)
                if table is not None:
                    names.add(table[0])
                break
        else:
            raise ValueError("a migration's tables reference each other in a cycle")
    return ordered
