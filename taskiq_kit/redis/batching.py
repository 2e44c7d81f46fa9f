"""Coalescing of concurrent commands: one round trip for everything queued meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: Most items one flush sends.
MAX_BATCH = 500


class Batcher(Generic[T]):
    """Sends items in batches without adding latency.

    The first caller starts a flush at once; items submitted while it is in flight wait and go
    together in the next one. Every caller returns once its own item was sent (or raises what
    sending its batch raised), so ``await submit(x)`` keeps the semantics of a direct call.

    Args:
        flush: sends a batch of items in one round trip.
        linger: seconds a flush waits for more items first (0: none); trades a little
            latency for fewer round trips when items trickle in one by one.

    """

    def __init__(
        self, flush: Callable[[list[T]], Awaitable[object]], *, linger: float = 0.0
    ) -> None:
        self._flush = flush
        self._linger = linger
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        """Send ``item`` with whatever else is waiting; return once it was sent."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._run())
        await future

    async def _run(self) -> None:
        if self._linger:
            await asyncio.sleep(self._linger)
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                await self._flush([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every waiter
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
