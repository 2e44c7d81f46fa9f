"""Writes issued in the same event-loop turn go to the store together, in one round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

_T = TypeVar("_T")
_O = TypeVar("_O")

#: Most writes one round trip carries.
MAX_BATCH = 500


class WriteBatcher(Generic[_T, _O]):
    """Sends items in batches without adding latency, and hands each caller its own outcome.

    The first item starts a flush, which runs once the current event-loop turn is over: every
    item submitted in that turn goes with it. Items submitted while a flush is in flight go
    together in the next one, so under load a round trip carries everything that arrived during
    the previous one. Order is kept: batches go one after the other, items in submission order.

    Under load (a flush started less than ``busy`` seconds ago) a flush first waits ``linger``
    seconds for more items: on a fast network a round trip is over before the next item comes,
    and writes would go one by one. An idle batcher sends at the end of the turn, adding no
    latency, and so does an ``urgent`` item (one somebody waits for, like an abort).

    Args:
        flush: sends a batch in one round trip and returns one outcome per item, in order.
        linger: seconds a flush under load waits for more items.
        busy: a flush started this recently means load.

    """

    def __init__(
        self,
        flush: Callable[[Sequence[_T]], Awaitable[Sequence[_O]]],
        *,
        linger: float = 0.0,
        busy: float = 0.05,
    ) -> None:
        self._flush = flush
        self._linger = linger
        self._busy = busy
        self._last_flush = -1e9
        self._waiting: list[tuple[_T, asyncio.Future[_O]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._lingering: asyncio.Future[None] | None = None
        #: Round trips made, and items they carried (for tests and diagnostics).
        self.flushes = 0
        self.items = 0

    def submit(self, item: _T, *, urgent: bool = False) -> asyncio.Future[_O]:
        """Queue ``item``; the future resolves to its outcome, or the error its batch raised.

        An ``urgent`` item cuts a lingering flush short.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_O] = loop.create_future()
        self._waiting.append((item, future))
        flusher = self._flusher
        if flusher is None or flusher.done() or flusher.get_loop() is not loop:
            self._flusher = loop.create_task(self._run(urgent=urgent))
        elif urgent and self._lingering is not None and not self._lingering.done():
            self._lingering.set_result(None)
        return future

    async def _run(self, *, urgent: bool) -> None:
        loop = asyncio.get_running_loop()
        if self._linger and not urgent and loop.time() - self._last_flush < self._busy:
            lingering = self._lingering = loop.create_future()
            timer = loop.call_later(self._linger, _settle, lingering)
            try:
                await lingering
            finally:
                timer.cancel()
                self._lingering = None
        while self._waiting:
            self._last_flush = loop.time()
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            self.flushes += 1
            self.items += len(batch)
            try:
                outcomes = await self._flush([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every waiter
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            except BaseException:
                for _, future in (*batch, *self._waiting):
                    future.cancel()
                self._waiting = []
                raise
            else:
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
