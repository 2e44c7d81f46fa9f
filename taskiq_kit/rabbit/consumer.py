"""Consuming: task queues in, :class:`~taskiq_kit.delivery.Delivery` objects out.

The consumer also holds the last fraction of a second of a delayed task (the ladder carries
whole seconds only), reads RabbitMQ's delivery count, and settles messages (ack, dead-letter,
requeue).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractRobustChannel
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from taskiq_kit.delivery import Delivery
from taskiq_kit.rabbit.connection import CONNECTION_ERRORS, RabbitConnection
from taskiq_kit.rabbit.inflight import InFlightDelivery
from taskiq_kit.rabbit.messages import attempt_of, delivery_tag, outgoing_of
from taskiq_kit.rabbit.publisher import Publisher
from taskiq_kit.rabbit.settle import Settler, settle
from taskiq_kit.rabbit.topology import Topology

logger = logging.getLogger("taskiq_kit.rabbit")

#: Seconds a shutdown step may wait for the server.
CLOSE_TIMEOUT = 5.0
#: Errors of consuming a queue again after RabbitMQ cancelled its consumer (retried).
RECONSUME_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    aiormq.exceptions.AMQPError,
)
#: Errors of re-publishing a message (it is requeued instead).
RESEND_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    aio_pika.exceptions.DeliveryError,
)


class Consumer:
    """Consumes every task queue on one channel with a bounded prefetch.

    Deliveries come straight from aio-pika's underlying aiormq channel (no aio-pika message object
    per delivery); the robust channel still restores the channel, QoS and queues after a
    reconnection, and its reopen callback starts the consumers again.

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
        self._channel: AbstractRobustChannel | None = None
        self._queues: list[str] = []
        self._settler: Settler | None = None
        self._tags: dict[str, str] = {}  # consumer tag -> queue, on the current underlying channel
        self._consuming = False
        self._recovering: set[asyncio.Task[None]] = set()
        self._ready: asyncio.Queue[tuple[InFlightDelivery, Delivery]] = asyncio.Queue()
        self._held: dict[asyncio.TimerHandle, tuple[DeliveredMessage, Settler]] = {}
        self._in_flight: dict[InFlightDelivery, None] = {}
        #: Whether the store keeps a task's message (set for long tasks: a repeated delivery of
        #: a kept message is dropped, the store owns it; see :mod:`taskiq_kit.flow.long`).
        self.is_kept: Callable[[str], Awaitable[bool]] | None = None
        #: Repeated deliveries dropped because the store keeps their message.
        self.kept_dropped = 0

    def in_flight(self) -> Iterator[InFlightDelivery]:
        """The deliveries handed out and not settled, on channels still open."""
        return (delivery for delivery in self._in_flight if not delivery.stale)

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        """Consume until closed; on close, return held and buffered messages to their queues."""
        await self._start()
        try:
            while True:
                flight, delivery = await self._ready.get()
                message, settler = flight.message, flight.settler
                if settler.stale:
                    # Its channel died (reconnection): RabbitMQ redelivers it on the new one.
                    logger.debug("Dropped a delivery of a closed channel; it will be redelivered.")
                    continue
                if message.redelivered and await self._kept_elsewhere(message, settler):
                    continue
                self._in_flight[flight] = None
                yield delivery
        finally:
            await self.stop_consuming()

    async def _kept_elsewhere(self, message: DeliveredMessage, settler: Settler) -> bool:
        """Drop a repeated delivery whose message the store keeps (a long task's)."""
        is_kept = self.is_kept
        task_id = message.header.properties.message_id
        if is_kept is None or not task_id:
            return False
        try:
            kept = await is_kept(task_id)
        except Exception as exc:  # noqa: BLE001 - unknown: let the delivery gate judge it
            logger.warning("Cannot tell whether task %s is kept (%s).", task_id, exc)
            return False
        if not kept:
            return False
        logger.info("Task %s: a repeated delivery of a kept long task; dropped.", task_id)
        self.kept_dropped += 1
        await settler.ack_now(delivery_tag(message))
        return True

    def _untrack(self, delivery: InFlightDelivery) -> None:
        self._in_flight.pop(delivery, None)

    async def _start(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()
        connection = await self.connection.get()
        try:
            channel = await connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=self.prefetch_count)
            queues = await self.topology.declare_task_queues(channel)
            self._channel = channel
            self._queues = [queue.name for queue in queues]
            self._consuming = True
            await self._consume(channel)
        except CONNECTION_ERRORS as exc:
            raise self.connection.unavailable(exc) from exc
        if isinstance(channel, AbstractRobustChannel):
            channel.reopen_callbacks.add(self._on_reopen)
        channel.close_callbacks.add(self._on_closed)
        logger.info("Consuming %s.", ", ".join(self._queues))

    async def _consume(self, channel: AbstractChannel) -> None:
        """Start a consumer per task queue on the current underlying channel of ``channel``."""
        underlay = await channel.get_underlay_channel()
        # A batch of half the prefetch goes out at once, so waiting acks never starve delivery.
        settler = Settler(underlay, batch=self.prefetch_count // 2)
        self._settler, self._tags = settler, {}
        # aiormq 7 reports consumers RabbitMQ cancelled (aiormq 6, the last for Python 3.10, does not:
        # there a deleted queue stays unconsumed until the worker restarts or reconnects).
        cancel_callbacks = getattr(underlay, "on_consumer_cancel_callbacks", None)
        if cancel_callbacks is not None:
            cancel_callbacks.add(self._on_cancelled)
        for queue in self._queues:
            await self._consume_queue(underlay, settler, queue)

    async def _consume_queue(
        self, underlay: aiormq.abc.AbstractChannel, settler: Settler, queue: str
    ) -> None:
        async def on_message(message: DeliveredMessage) -> None:
            await self._on_message(queue, settler, message)

        ok = await underlay.basic_consume(queue, on_message)
        if ok.consumer_tag is not None:
            self._tags[ok.consumer_tag] = queue

    def _on_cancelled(self, frame: Basic.Cancel) -> None:
        """RabbitMQ cancelled a consumer (its queue was deleted, say): consume that queue again."""
        queue = self._tags.pop(frame.consumer_tag or "", None)
        if queue is None or not self._consuming:
            return
        logger.warning(
            "RabbitMQ cancelled the consumer of %s; declaring and consuming it again.", queue
        )
        task = asyncio.create_task(self._consume_again(queue))
        self._recovering.add(task)
        task.add_done_callback(self._recovering.discard)

    async def _consume_again(self, queue: str) -> None:
        """Declare ``queue`` again (it may have been deleted) and consume it, retrying until done.

        The declarations are RabbitMQ's to keep as they are; the worker only recreates what is
        missing (a queue deleted by hand, and its bindings), as it does at start-up.
        """
        pause = 0.2
        while self._consuming and self._channel is not None and self._settler is not None:
            settler = self._settler
            if queue in self._tags.values():
                return  # a reconnection consumed it again meanwhile
            try:
                # The whole topology, idempotently: a deleted queue lost its bindings too.
                await self.topology.declare(self._channel, plugin=self.publisher.plugin)
                if settler is self._settler and queue not in self._tags.values():
                    await self._consume_queue(settler.channel, settler, queue)
            except RECONSUME_ERRORS as exc:
                logger.warning("Cannot consume %s again yet (%s); retrying.", queue, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            logger.info("Consuming %s again.", queue)
            return

    def _on_closed(self, _: object, exc: BaseException | None) -> None:
        """Say why RabbitMQ closed the channel when a run outlived its ``consumer_timeout``."""
        if "acknowledgement" in str(exc) and "timed out" in str(exc):
            logger.warning(
                "RabbitMQ closed the consumer channel (%s): a delivery stayed unacknowledged "
                "past its consumer_timeout; its messages are delivered again, and a task "
                "still running may run twice. Label such tasks long=True, or set "
                "long_task_after below the server's consumer_timeout (see the long tasks page).",
                exc,
            )

    async def _on_reopen(self, channel: AbstractRobustChannel | None) -> None:
        """After a reconnection, consume again on the restored channel."""
        if not self._consuming or channel is None or channel is not self._channel:
            return
        try:
            await self._consume(channel)
        except CONNECTION_ERRORS:
            logger.warning("Cannot consume after reconnecting; retrying on the next one.")
            return
        logger.info("Consuming %s again after a reconnection.", ", ".join(self._queues))

    async def stop_consuming(self) -> None:
        """Stop new deliveries and requeue the ones not handed out; keep the channel for acks."""
        self._consuming = False
        for task in list(self._recovering):
            task.cancel()
        tags, self._tags = list(self._tags), {}
        settler = self._settler
        if settler is not None and not settler.stale:
            for tag in tags:
                # Bounded: the server may be gone.
                cancel = settler.channel.basic_cancel(tag)
                await settle(functools.partial(asyncio.wait_for, cancel, CLOSE_TIMEOUT))
        returned = list(self._held.values())
        for handle in self._held:
            handle.cancel()
        self._held.clear()
        while not self._ready.empty():
            flight, _ = self._ready.get_nowait()
            returned.append((flight.message, flight.settler))
        for message, held_by in returned:
            if not held_by.stale:
                await held_by.nack(delivery_tag(message))
        if returned:
            logger.info("Returned %d prefetched message(s) to their queues.", len(returned))

    async def close(self) -> None:
        """Close the channel: anything still unacknowledged goes back to its queue."""
        await self.stop_consuming()
        if self._settler is not None and not self._settler.stale:
            await self._settler.drain()
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed and self.connection.is_open:
            await settle(functools.partial(asyncio.wait_for, channel.close(), CLOSE_TIMEOUT))

    async def _on_message(self, queue: str, settler: Settler, message: DeliveredMessage) -> None:
        tag = delivery_tag(message)
        settler.delivered(tag)
        headers = message.header.properties.headers or {}
        try:
            due_at = self.publisher.due_at_of(headers)
            remaining = 0.0 if due_at is None else due_at - time.time()
            if remaining > self.hold_limit:
                await self._resend(message, settler, queue)
                return
        except RESEND_ERRORS:
            logger.warning("Cannot re-publish a message; it stays queued.", exc_info=True)
            await settler.nack(tag)
            return
        flight = InFlightDelivery(message, settler, queue, self._dead_letter, self._untrack)
        delivery = Delivery(
            data=message.body,
            ack=flight.ack,
            ack_later=flight.ack_later,
            dead_letter=flight.dead_letter,
            attempt=attempt_of(
                headers, self.topology.queue_type, redelivered=bool(message.redelivered)
            ),
        )
        if remaining <= 0:
            self._ready.put_nowait((flight, delivery))
        else:
            self._hold(flight, delivery, due_at or 0.0)

    def _hold(self, flight: InFlightDelivery, delivery: Delivery, due_at: float) -> None:
        """Hand ``delivery`` on at ``due_at`` exactly (never earlier: re-checked on wake-up)."""
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def release() -> None:
            self._held.pop(handle, None)
            remaining = due_at - time.time()
            if remaining > 0:
                self._hold(flight, delivery, due_at)
            else:
                self._ready.put_nowait((flight, delivery))

        handle = loop.call_later(max(0.0, due_at - time.time()), release)
        self._held[handle] = (flight.message, flight.settler)

    async def _resend(self, message: DeliveredMessage, settler: Settler, queue: str) -> None:
        out = outgoing_of(message, queue)
        await self.publisher.send(out, self.publisher.due_at_of(out.headers))
        await settler.ack_now(delivery_tag(message))

    async def _dead_letter(
        self,
        message: DeliveredMessage,
        settler: Settler,
        queue: str,
        reason: str,
        acknowledge: bool = True,
    ) -> None:
        headers = message.header.properties.headers or {}
        attempt = attempt_of(
            headers, self.topology.queue_type, redelivered=bool(message.redelivered)
        )
        try:
            await self.publisher.dead_letter(outgoing_of(message, queue), reason, attempt=attempt)
        except Exception:
            logger.exception("Cannot dead-letter a message; it is requeued.")
            if acknowledge:
                await settler.nack(delivery_tag(message))
            return
        if acknowledge:
            await settler.ack_now(delivery_tag(message))
