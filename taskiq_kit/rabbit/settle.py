"""Settling deliveries on one channel: acks batched into ``multiple=True`` frames, nacks."""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiormq

from taskiq_kit.rabbit.connection import CONNECTION_ERRORS

logger = logging.getLogger("taskiq_kit.rabbit")

#: Errors of settling a message whose channel has gone (it will be redelivered).
SETTLE_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    aio_pika.exceptions.MessageProcessError,
)
#: Seconds an acknowledgement may wait for others to go out with it (one ``multiple`` ack).
ACK_LINGER = 0.005


class Settler:
    """Settles the deliveries of one channel; acks are batched with ``multiple=True``.

    An ack waits up to ``linger`` seconds, or until ``batch`` acks are waiting, and goes out with
    the others: one ``basic.ack`` with ``multiple=True`` covers every done tag below the oldest
    delivery still unsettled (a task still running, a held delay); done tags above it are acked
    one by one. No ack ever covers a message that is not done. Acks are asked for after the
    result was saved: a crash before they are written redelivers the message (at-least-once),
    and the delivery gate drops it as a duplicate of a completed kick.
    """

    def __init__(
        self, channel: aiormq.abc.AbstractChannel, *, batch: int = 1, linger: float = ACK_LINGER
    ) -> None:
        self.channel = channel
        self.batch = max(1, batch)
        self.linger = linger
        self._timer: asyncio.TimerHandle | None = None
        self._unsettled: set[int] = set()
        self._done: list[int] = []
        self._flushing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def stale(self) -> bool:
        """Whether the channel has closed (its deliveries will be redelivered elsewhere)."""
        return self.channel.is_closed

    def delivered(self, tag: int) -> None:
        """Track ``tag`` until it is settled."""
        self._unsettled.add(tag)

    def ack(self, tag: int) -> None:
        """Acknowledge ``tag`` with the acks of the next few milliseconds (returns at once)."""
        self._done.append(tag)
        if self._flushing:
            return  # the running flush takes it
        if len(self._done) >= self.batch:
            self._start_flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger, self._start_flush)

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flushing or not self._done:
            return
        self._flushing = True
        self._idle.clear()
        task = asyncio.ensure_future(self._flush_all())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_all(self) -> None:
        try:
            while self._done:
                await self._flush()
        finally:
            self._flushing = False
            self._idle.set()

    async def drain(self) -> None:
        """Write every waiting ack (before the channel closes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._idle.wait()
        while self._done:
            await self._flush()

    async def ack_now(self, tag: int) -> None:
        """Acknowledge ``tag`` at once, waiting until the frame is written."""
        # Still unsettled until its frame is queued: no multiple ack may cover it before.
        await settle(functools.partial(self.channel.basic_ack, tag))
        self._unsettled.discard(tag)

    async def nack(self, tag: int, *, requeue: bool = True) -> None:
        """Reject ``tag``, back to its queue by default."""
        # Still unsettled until its frame is queued: no multiple ack may cover it before.
        await settle(functools.partial(self.channel.basic_nack, tag, requeue=requeue, wait=False))
        self._unsettled.discard(tag)

    async def _flush(self) -> None:
        # One flusher at a time (``_flushing``), so acks go out in the order decided here.
        done, self._done = self._done, []
        unsettled = self._unsettled
        unsettled.difference_update(done)
        done.sort()
        cut = bisect.bisect_left(done, min(unsettled)) if unsettled else len(done)
        channel = self.channel
        try:
            if cut:
                await channel.basic_ack(done[cut - 1], multiple=cut > 1, wait=False)
            for tag in done[cut:]:
                await channel.basic_ack(tag, wait=False)
        except SETTLE_ERRORS as exc:
            logger.warning("Cannot acknowledge messages (%s); RabbitMQ will redeliver them.", exc)


async def settle(settle: Callable[[], Awaitable[Any]]) -> None:
    """Ack or nack; a lost channel means the message will be redelivered anyway."""
    try:
        await settle()
    except SETTLE_ERRORS as exc:
        logger.warning("Cannot settle a message (%s); RabbitMQ will redeliver it.", exc)
