"""Group commit: a delivery is acknowledged only after the transaction that holds it.

Deliveries that arrive while one batch commits share the next batch, on the
single writer in the urgent lane; each sender is answered when its batch is
committed (or told the store is unavailable), never before.

One delivery the store refuses must not fail the others of its batch: a batch
that fails for any reason but the store being unavailable, or a fault of the
store's own SQL, is committed again one delivery at a time, and only the one at
fault is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial

from .errors import BadRequest, StorageError, StorageRefused, StorageUnavailable
from .store import deliveries
from .store.db import URGENT, Writer
from .store.deliveries import Delivery

log = logging.getLogger(__name__)

Item = tuple[Delivery, asyncio.Future[bool]]


def _whole_batch(exc: BaseException) -> bool:
    """The batch failed whatever its deliveries: the store cannot take it now, or
    its own SQL failed (a bug), as opposed to one row's data being refused."""
    return isinstance(exc, StorageUnavailable) or (
        isinstance(exc, StorageError) and not isinstance(exc, StorageRefused)
    )


def _expire(future: asyncio.Future[bool], timeout: float) -> None:
    if not future.done():
        future.set_exception(StorageUnavailable(f"the store did not commit within {timeout:g} s"))


class Intake:
    """Group commit: deliveries that arrive while a batch commits share the next one."""

    def __init__(self, writer: Writer, *, batch_max: int, on_commit: Callable[[], None]) -> None:
        self._writer = writer
        self._batch_max = batch_max
        self._on_commit = on_commit
        self._queue: list[Item] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None  # referenced while it runs

    async def submit(self, delivery: Delivery, *, timeout: float | None = None) -> bool:
        """Store ``delivery``; True if new, False if this guid was already stored.

        Returns only after the commit. Raises StorageUnavailable if it failed,
        or if ``timeout`` seconds passed first: the delivery may then still be
        committed (a redelivery is a duplicate), but it is never reported
        stored before it is. Raises BadRequest if the store refused this one,
        and StorageError if the store's own statement failed (a bug).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queue.append((delivery, future))
        if not self._flushing:
            self._flushing = True
            self._flusher = loop.create_task(self._flush())
        if timeout is None:
            return await future
        timer = loop.call_later(timeout, _expire, future, timeout)
        try:
            return await future
        finally:
            timer.cancel()

    async def _flush(self) -> None:
        try:
            while self._queue:
                # A sender already answered (its wait timed out) is not stored late.
                batch = [item for item in self._queue[: self._batch_max] if not item[1].done()]
                del self._queue[: self._batch_max]
                if batch:
                    await self._commit(batch)
        finally:
            self._flushing = False

    async def _commit(self, batch: list[Item]) -> None:
        try:
            fresh = await self._writer.run(
                partial(deliveries.insert_batch, batch=[d for d, _ in batch]), URGENT
            )
        except Exception as exc:  # noqa: BLE001 — every sender of the batch must hear
            if _whole_batch(exc):
                # Nothing of the batch was stored: every sender hears so (a 503
                # when the store cannot take it now, else the bug it is), each
                # with an error of its own.
                for _, future in batch:
                    if not future.done():
                        error = type(exc)(str(exc))
                        error.__cause__ = exc.__cause__
                        future.set_exception(error)
            elif len(batch) > 1:
                for item in batch:
                    if not item[1].done():
                        await self._commit([item])
            else:
                self._refuse(batch[0], exc)
            return
        for (_, future), is_new in zip(batch, fresh, strict=True):
            if not future.done():
                future.set_result(is_new)
        if any(fresh):
            self._on_commit()

    @staticmethod
    def _refuse(item: Item, exc: Exception) -> None:
        delivery, future = item
        reason = exc.__cause__ if isinstance(exc, StorageRefused) and exc.__cause__ else exc
        log.warning("delivery %r refused by the store: %r", delivery.guid, reason)
        if not future.done():
            error = BadRequest(
                f"the store refused this delivery: {type(reason).__name__}: {reason}"
            )
            error.__cause__ = exc
            future.set_exception(error)
