"""Which old deliveries go: judged one by one, settled until no verdict changes,
then deleted, each with the history rows only it decided."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ...facts import HookPing
from .. import sweeps
from .index import BATCH, cell_id, decides_current, effects, history_key, repo_id, same
from .index import history as touched_rows

if TYPE_CHECKING:
    from .run import Turn

PRUNABLE = ("processed", "ignored")


def judge(turn: Turn) -> None:
    """Each old delivery: kept (what it touches stays), or doomed with the history
    rows it touches and whether it decides them. Nothing goes yet: a delivery
    kept later may hold a row that an earlier-judged one decides."""
    cursor = sweeps.position(turn.db, turn.p.row("judge")) or 0
    first = True
    while first or turn.more():
        first = False
        rows = turn.deliveries("d.id > ? AND d.id <= ? ORDER BY d.id LIMIT ?",
                                (cursor, turn.last, BATCH))  # fmt: skip
        if not rows:
            return turn.done("judge")
        for row in rows:
            _judge(turn, row)
            cursor = int(row["id"])
            if not turn.more():
                break
    sweeps.advance(turn.db, turn.p.row("judge"), cursor, finished_at=None)


def _judge(turn: Turn, row: dict[str, Any]) -> None:
    eff = effects(row)
    prunable = row["status"] in PRUNABLE and str(row["received_at"]) < turn.cutoff
    if prunable and (eff is None or not _needed(turn, row, eff.facts)):
        touched: list[tuple[int, bool]] = [(0, False)]  # 0: the delivery itself
        for fact in eff.facts if eff else []:
            if isinstance(fact, HookPing) or (repo := repo_id(turn.db, fact)) is None:
                continue
            if (key := history_key(fact, repo)) is not None:
                touched.append((cell_id(key), same(turn.db, fact, repo)))
        turn.db.executemany(
            "INSERT OR REPLACE INTO retention_doomed (run, delivery_id, cell, decides)"
            " VALUES (?, ?, ?, ?)",
            [(turn.p.name, row["id"], cell, decides) for cell, decides in touched],
        )
        return
    turn.p.counts.kept += prunable
    if eff is not None:
        turn.keep(touched_rows(turn.db, eff.facts))


def _needed(turn: Turn, row: dict[str, Any], facts: list[Any]) -> bool:
    if turn.db.execute(
        "SELECT 1 FROM retention_cells WHERE delivery_id = ? AND row IS NULL LIMIT 1",
        (row["id"],),
    ).fetchone():
        return True  # it decides a column of a repository or a hook
    for fact in facts:
        if isinstance(fact, HookPing) or (repo := repo_id(turn.db, fact)) is None:
            continue
        if decides_current(turn.db, fact, repo):
            return True
        key = history_key(fact, repo)
        if key is not None and same(turn.db, fact, repo) and turn.stays(key):
            return True
    return False


def settle(turn: Turn) -> None:
    """Keep each doomed delivery that decides a row that stays (a kept delivery
    holds it, or a recent one touched it since), holding what it touches in
    turn; pass over them again until a pass keeps none."""
    cursor = sweeps.position(turn.db, turn.p.row("settle")) or 0
    first = True
    while first or turn.more():
        first = False
        ids = _doomed(turn, cursor)
        if not ids:
            if not turn.p.settled:
                turn.p.settled = True  # one more pass, which must keep none
                cursor = 0
                continue
            turn.p.settled = False
            return turn.done("settle")
        for did in ids:
            if _reprieve(turn, did):
                turn.p.settled = False
            cursor = did
            if not turn.more():
                break
    sweeps.advance(turn.db, turn.p.row("settle"), cursor, finished_at=None)


def _doomed(turn: Turn, cursor: int) -> list[int]:
    return [
        int(r[0])
        for r in turn.db.execute(
            "SELECT DISTINCT delivery_id FROM retention_doomed WHERE run = ?"
            " AND delivery_id > ? ORDER BY delivery_id LIMIT ?",
            (turn.p.name, cursor, BATCH),
        )
    ]


def _reprieve(turn: Turn, did: int) -> bool:
    """Keep a doomed delivery if it decides a row that stays; True if kept."""
    touched = turn.db.execute(
        "SELECT cell, decides FROM retention_doomed WHERE run = ? AND delivery_id = ?",
        (turn.p.name, did),
    ).fetchall()
    if not any(decides and _cell_stays(turn, cell) for cell, decides in touched):
        return False
    for cell, _ in touched:
        if cell:
            turn.db.execute(
                "INSERT OR IGNORE INTO retention_held VALUES (?, ?)", (turn.p.name, cell)
            )
    turn.db.execute(
        "DELETE FROM retention_doomed WHERE run = ? AND delivery_id = ?", (turn.p.name, did)
    )
    turn.p.counts.kept += 1
    return True


def _cell_stays(turn: Turn, cell: int) -> bool:
    """Held, or touched by a delivery after the edge (pins only go away)."""
    return bool(
        turn.db.execute(
            "SELECT 1 FROM retention_held WHERE run = ? AND cell = ? UNION ALL"
            " SELECT 1 FROM retention_cells WHERE cell = ? AND delivery_id > ?",
            (turn.p.name, cell, cell, turn.last),
        ).fetchone()
    )


def delete(turn: Turn) -> None:
    """The doomed deliveries go, each with the history rows only it decided, in
    one transaction: a delivery that touches one later finds it gone, as replay
    would."""
    cursor = sweeps.position(turn.db, turn.p.row("delete")) or 0
    first = True
    while first or turn.more():
        first = False
        ids = _doomed(turn, cursor)
        if not ids:
            return turn.done("delete")
        for did in ids:
            # A recent delivery may have touched one of its rows since it was settled.
            if not _reprieve(turn, did):
                _delete(turn, did)
            cursor = did
            if not turn.more():
                break
    sweeps.advance(turn.db, turn.p.row("delete"), cursor, finished_at=None)


def _delete(turn: Turn, did: int) -> None:
    decided = turn.db.execute(
        "SELECT c.cell, c.row FROM retention_doomed d JOIN retention_cells c"
        " ON c.cell = d.cell WHERE d.run = ? AND d.delivery_id = ? AND d.decides",
        (turn.p.name, did),
    ).fetchall()
    for cell, text in decided:
        key = tuple(json.loads(text))
        if not turn.stays(key):
            turn.drop_row(int(cell), key)
    size = turn.db.execute(
        "SELECT length(payload) FROM delivery_payloads WHERE delivery_id = ?", (did,)
    ).fetchone()
    turn.p.counts.deliveries += 1
    turn.p.counts.payload_bytes += int(size[0]) if size else 0
    if not turn.p.dry_run:
        turn.db.execute("DELETE FROM deliveries WHERE id = ?", (did,))
    turn.db.execute(
        "DELETE FROM retention_doomed WHERE run = ? AND delivery_id = ?", (turn.p.name, did)
    )
