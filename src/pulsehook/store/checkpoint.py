"""Checkpoints beside the writer, never in its way.

A checkpoint copies the write-ahead log into the database file. Run on the
writer's own connection it holds up every commit behind it: at a 256 MiB log,
half a second with senders waiting. A PASSIVE checkpoint from a second
connection runs while the writer keeps committing; once one has copied the
whole log, the writer's next transaction starts the log over from the top.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

CATCH_UP_PASSES = 8  # passes per request while commits keep adding to the log


class Checkpointer:
    """A thread that checkpoints (PASSIVE) on its own connection when asked."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._wanted = threading.Event()
        self._stopping = False
        self.passes = 0  # checkpoints run, for tests and diagnostics
        self._thread = threading.Thread(
            target=self._run, name="pulsehook-checkpointer", daemon=True
        )
        self._thread.start()

    def request(self) -> None:
        """Ask for a checkpoint soon; requests made meanwhile are served by the same one."""
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._stopping:
                break
            self._catch_up()
        self._conn.close()

    def _catch_up(self) -> None:
        # Commits made during a pass leave frames behind; small passes follow
        # until one finds the whole log copied and the log can start over.
        for _ in range(CATCH_UP_PASSES):
            try:
                busy, frames, copied = self._conn.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)"
                ).fetchone()
            except sqlite3.Error as exc:
                log.warning("checkpoint failed: %s", exc)
                return
            self.passes += 1
            if busy or copied >= frames or self._stopping:
                return

    def close(self) -> None:
        self._stopping = True
        self._wanted.set()
        self._thread.join(timeout=30)
