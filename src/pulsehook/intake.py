"""Group commit: a delivery is acknowledged only after the transaction that holds it.

Deliveries that arrive while one batch commits share the next batch, on the
single writer in the urgent lane; each sender is answered when its batch is
committed (or told the store is unavailable), never before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

from .store import deliveries
from .store.db import URGENT, Writer
from .store.deliveries import Delivery


class Intake:
    """Group commit: deliveries that arrive while a batch commits share the next one."""

    def __init__(self, writer: Writer, *, batch_max: int, on_commit: Callable[[], None]) -> None:
        self._writer = writer
        self._batch_max = batch_max
        self._on_commit = on_commit
        self._queue: list[tuple[Delivery, asyncio.Future[bool]]] = []
        self._flushing = False

    async def submit(self, delivery: Delivery) -> bool:
        """Store ``delivery``; True if new, False if this guid was already stored.

        Returns only after the commit. Raises StorageUnavailable if it failed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.append((delivery, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._batch_max]
                del self._queue[: self._batch_max]
                items = [d for d, _ in batch]
                try:
                    fresh = await self._writer.run(
                        partial(deliveries.insert_batch, batch=items), URGENT
                    )
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), is_new in zip(batch, fresh, strict=True):
                    if not future.done():
                        future.set_result(is_new)
                if any(fresh):
                    self._on_commit()
        finally:
            self._flushing = False
