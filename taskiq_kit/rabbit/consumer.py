"""Consuming: task queues in, :class:`~taskiq_kit.delivery.Delivery` objects out.

The consumer also holds the last fraction of a second of a delayed task (the ladder carries
whole seconds only), counts deliveries, and settles messages (ack, dead-letter, requeue).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from taskiq_kit.delivery import Delivery
from taskiq_kit.rabbit.connection import CONNECTION_ERRORS, RabbitConnection
from taskiq_kit.rabbit.publisher import (
    ATTEMPT_HEADER,
    QUEUE_HEADER,
    TASK_HEADER,
    Outgoing,
    Publisher,
)
from taskiq_kit.rabbit.topology import QueueType, Topology

logger = logging.getLogger("taskiq_kit.rabbit")

#: Errors of settling a message whose channel has gone (it will be redelivered).
SETTLE_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    aio_pika.exceptions.MessageProcessError,
)
#: Seconds a shutdown step may wait for the server.
CLOSE_TIMEOUT = 5.0
#: Errors of re-publishing a message (it is requeued instead).
RESEND_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    aio_pika.exceptions.DeliveryError,
)


class Consumer:
    """Consumes every task queue on one channel with a bounded prefetch.

    Args:
        connection: the shared connection.
        topology: the declarer (task queues are declared again on this channel, idempotently).
        publisher: sends dead letters, recounted and re-delayed messages.
        prefetch_count: unacknowledged messages this worker may hold (held delayed ones too).
        hold_limit: a message due later than this many seconds is sent back into the ladder
            instead of being held in memory.

    """

    def __init__(
        self,
        connection: RabbitConnection,
        topology: Topology,
        publisher: Publisher,
        *,
        prefetch_count: int,
        hold_limit: float = 2.0,
    ) -> None:
        self.connection = connection
        self.topology = topology
        self.publisher = publisher
        self.prefetch_count = prefetch_count
        self.hold_limit = hold_limit
        self._channel: AbstractChannel | None = None
        self._consuming: list[tuple[AbstractQueue, str]] = []
        self._ready: asyncio.Queue[tuple[AbstractIncomingMessage, Delivery]] = asyncio.Queue()
        self._held: dict[asyncio.TimerHandle, AbstractIncomingMessage] = {}

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        """Consume until closed; on close, return held and buffered messages to their queues."""
        await self._start()
        try:
            while True:
                message, delivery = await self._ready.get()
                if _is_stale(message):
                    # Its channel died (reconnection): RabbitMQ redelivers it on the new one.
                    logger.debug("Dropped a delivery of a closed channel; it will be redelivered.")
                    continue
                yield delivery
        finally:
            await self.stop_consuming()

    async def _start(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        connection = await self.connection.get()
        try:
            channel = await connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=self.prefetch_count)
            queues = await self.topology.declare_task_queues(channel)
            self._channel = channel
            for queue in queues:
                tag = await queue.consume(functools.partial(self._on_message, queue.name))
                self._consuming.append((queue, tag))
        except CONNECTION_ERRORS as exc:
            raise self.connection.unavailable(exc) from exc
        logger.info("Consuming %s.", ", ".join(q.name for q, _ in self._consuming))

    async def stop_consuming(self) -> None:
        """Stop new deliveries and requeue the ones not handed out; keep the channel for acks."""
        consuming, self._consuming = self._consuming, []
        for queue, tag in consuming:
            if not self.connection.is_open:
                break  # the consumers died with the connection
            # Bounded: a robust channel waits for a reconnection that may never come.
            await _settle(functools.partial(asyncio.wait_for, queue.cancel(tag), CLOSE_TIMEOUT))
        returned = list(self._held.values())
        for handle in self._held:
            handle.cancel()
        self._held.clear()
        while not self._ready.empty():
            returned.append(self._ready.get_nowait()[0])
        for message in returned:
            await _settle(functools.partial(message.nack, requeue=True))
        if returned:
            logger.info("Returned %d prefetched message(s) to their queues.", len(returned))

    async def close(self) -> None:
        """Close the channel: anything still unacknowledged goes back to its queue."""
        await self.stop_consuming()
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed and self.connection.is_open:
            await _settle(functools.partial(asyncio.wait_for, channel.close(), CLOSE_TIMEOUT))

    async def _on_message(self, queue: str, message: AbstractIncomingMessage) -> None:
        headers = message.headers or {}
        try:
            if self.topology.queue_type is QueueType.CLASSIC and message.redelivered:
                # Classic queues count nothing: resend with the count raised, then ack.
                await self._resend(message, queue, attempt=_classic_attempt(headers) + 1)
                return
            due_at = self.publisher.due_at_of(headers)
            remaining = 0.0 if due_at is None else due_at - time.time()
            if remaining > self.hold_limit:
                await self._resend(message, queue, attempt=None)
                return
        except RESEND_ERRORS:
            logger.warning("Cannot re-publish a message; it stays queued.", exc_info=True)
            await _settle(functools.partial(message.nack, requeue=True))
            return
        delivery = Delivery(
            data=message.body,
            ack=functools.partial(_settle, message.ack),
            dead_letter=functools.partial(self._dead_letter, message, queue),
            attempt=self._attempt(headers),
        )
        if remaining <= 0:
            self._ready.put_nowait((message, delivery))
        else:
            self._hold(message, delivery, due_at or 0.0)

    def _hold(self, message: AbstractIncomingMessage, delivery: Delivery, due_at: float) -> None:
        """Hand ``delivery`` on at ``due_at`` exactly (never earlier: re-checked on wake-up)."""
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def release() -> None:
            self._held.pop(handle, None)
            remaining = due_at - time.time()
            if remaining > 0:
                self._hold(message, delivery, due_at)
            else:
                self._ready.put_nowait((message, delivery))

        handle = loop.call_later(max(0.0, due_at - time.time()), release)
        self._held[handle] = message

    def _attempt(self, headers: dict[str, Any]) -> int:
        if self.topology.queue_type is QueueType.QUORUM:
            count = headers.get("x-delivery-count")
            return int(count) + 1 if isinstance(count, int) else 1
        return _classic_attempt(headers)

    def _outgoing(self, message: AbstractIncomingMessage, queue: str) -> Outgoing:
        headers = dict(message.headers or {})
        headers.pop("x-delivery-count", None)
        headers.pop("x-death", None)
        return Outgoing(
            body=message.body,
            headers=headers,
            queue=str(headers.get(QUEUE_HEADER) or queue),
            task_name=str(headers.get(TASK_HEADER) or "?"),
            task_id=message.message_id,
            priority=message.priority,
        )

    async def _resend(
        self, message: AbstractIncomingMessage, queue: str, *, attempt: int | None
    ) -> None:
        out = self._outgoing(message, queue)
        if attempt is not None:
            out.headers[ATTEMPT_HEADER] = attempt
        await self.publisher.send(out, self.publisher.due_at_of(out.headers))
        await _settle(message.ack)

    async def _dead_letter(self, message: AbstractIncomingMessage, queue: str, reason: str) -> None:
        try:
            await self.publisher.dead_letter(self._outgoing(message, queue), reason)
        except Exception:
            logger.exception("Cannot dead-letter a message; it is requeued.")
            await _settle(functools.partial(message.nack, requeue=True))
            return
        await _settle(message.ack)


def _is_stale(message: AbstractIncomingMessage) -> bool:
    """Whether the channel ``message`` came on has closed (it cannot be settled any more)."""
    try:
        return message.channel.is_closed
    except aio_pika.exceptions.ChannelInvalidStateError:  # raised once the channel is closed
        return True


def _classic_attempt(headers: dict[str, Any]) -> int:
    attempt = headers.get(ATTEMPT_HEADER)
    return attempt if isinstance(attempt, int) and attempt > 0 else 1


async def _settle(settle: Callable[[], Awaitable[Any]]) -> None:
    """Ack or nack; a lost channel means the message will be redelivered anyway."""
    try:
        await settle()
    except SETTLE_ERRORS as exc:
        logger.warning("Cannot settle a message (%s); RabbitMQ will redeliver it.", exc)
