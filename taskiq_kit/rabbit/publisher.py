"""Publishing: confirmed, persistent, mandatory; now, through the ladder, or via the plugin."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, HeadersType
from pamqp.commands import Basic

from taskiq_kit.exceptions import BrokerNotAvailableError, UnroutableTaskError
from taskiq_kit.rabbit.confirmed import publish_confirmed
from taskiq_kit.rabbit.connection import CONNECTION_ERRORS, RabbitConnection
from taskiq_kit.rabbit.delay import ladder_route, ladder_seconds
from taskiq_kit.rabbit.topology import Declared, Topology

logger = logging.getLogger("taskiq_kit.rabbit")

#: Header carrying the absolute due time in integer unix microseconds (rounded up, so never
#: early; AMQP floats may be single precision, too coarse for an epoch).
DUE_AT_HEADER = "kit-due-at-us"
#: Header naming the task queue a message is meant for.
QUEUE_HEADER = "kit-queue"
#: Header naming the task (for people reading the dead-letter queue).
TASK_HEADER = "kit-task"
#: Header counting deliveries on classic queues (quorum queues count by themselves).
ATTEMPT_HEADER = "kit-attempt"
#: Header with the reason a message was dead-lettered.
REASON_HEADER = "kit-reason"
#: Header with the id of a dead letter (what the inspect API's replay and delete take).
DEAD_ID_HEADER = "kit-dead-id"
#: Header with the instant a message was dead-lettered (integer unix milliseconds).
DEAD_AT_HEADER = "kit-dead-at-ms"
#: Header with the deliveries a message had when it was dead-lettered.
DEAD_ATTEMPT_HEADER = "kit-dead-attempt"
#: Header of a replayed message: the id of the dead letter it was.
REPLAY_OF_HEADER = "kit-replay-of"

#: AMQP delivery mode of messages that survive a broker restart.
PERSISTENT = 2
#: Errors of checking that a queue exists.
CHECK_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, BrokerNotAvailableError)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to send: body, headers and where it goes."""

    body: bytes
    headers: HeadersType
    queue: str
    task_name: str
    task_id: str | None = None
    priority: int | None = None


class Publisher:
    """Sends messages with publisher confirms on one channel; the topology is declared once here.

    Args:
        connection: the shared connection.
        topology: the declarer.
        publish_timeout: seconds a send may take, reconnection waits included, before it fails
            with :class:`~taskiq_kit.exceptions.BrokerNotAvailableError`.
        plugin: whether delays use the x-delayed-message exchange instead of the ladder.

    """

    def __init__(
        self, connection: RabbitConnection, topology: Topology, *, publish_timeout: float
    ) -> None:
        self.connection = connection
        self.topology = topology
        self.publish_timeout = publish_timeout
        self.plugin = False
        self._channel: AbstractChannel | None = None
        self._declared: Declared | None = None
        self._lock = asyncio.Lock()

    async def start(self, *, plugin: bool) -> None:
        """Open the confirming channel and declare the topology (once)."""
        async with self._lock:
            if self._declared is not None:
                return
            connection = await self.connection.get()
            try:
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                self._declared = await self.topology.declare(channel, plugin=plugin)
            except CONNECTION_ERRORS as exc:
                raise self.connection.unavailable(exc) from exc
            self._channel = channel
            self.plugin = plugin

    async def stop(self) -> None:
        """Close the channel."""
        channel, self._channel, self._declared = self._channel, None, None
        if channel is not None and not channel.is_closed and self.connection.is_open:
            # Bounded: a robust channel waits for a reconnection that may never come.
            with contextlib.suppress(*CONNECTION_ERRORS):
                await asyncio.wait_for(channel.close(), self.publish_timeout)

    @staticmethod
    def due_at_of(headers: HeadersType) -> float | None:
        """The due time carried by ``headers``, in unix seconds."""
        micros = headers.get(DUE_AT_HEADER)
        return micros / 1e6 if isinstance(micros, int) else None

    def _ready(self) -> Declared:
        if self._declared is None:
            raise RuntimeError("the publisher is not started: await broker.startup() first")
        return self._declared

    async def send(self, out: Outgoing, due_at: float | None) -> None:
        """Send ``out`` to its queue, to be delivered no earlier than ``due_at``.

        Raises:
            UnroutableTaskError: when no queue takes the message.
            BrokerNotAvailableError: when RabbitMQ does not confirm it within ``publish_timeout``.

        """
        declared = self._ready()
        # Headers only where they are read: a message sent straight to its queue carries none
        # of the kit's (encoding a header table is a good part of a publish's CPU).
        headers = dict(out.headers)
        if due_at is not None:
            headers[DUE_AT_HEADER] = math.ceil(due_at * 1e6)
        delay = 0.0 if due_at is None else due_at - time.time()
        if delay > 0:
            headers[QUEUE_HEADER] = out.queue
            headers[TASK_HEADER] = out.task_name
        exchange, key, mandatory = declared.tasks, out.queue, True
        if delay > 0 and self.plugin and declared.delayed is not None:
            # The plugin does not support mandatory routing: check the queue up front.
            await self._check_queue(out)
            headers["x-delay"] = int(delay * 1000)
            exchange, mandatory = declared.delayed, False
        elif ladder_seconds(delay) >= 1:
            await self._check_queue(out)
            # Longer than the ladder: the worker sends it round again for the rest.
            seconds = min(ladder_seconds(delay), 2**self.topology.levels - 1)
            level, key = ladder_route(seconds, out.queue, self.topology.levels)
            exchange = declared.levels[level]
        properties = Basic.Properties(
            headers=headers or None,
            delivery_mode=PERSISTENT,
            priority=out.priority,
            message_id=out.task_id,
        )
        await self._publish(
            exchange, out.body, properties, key, mandatory=mandatory, task_name=out.task_name
        )

    async def dead_letter(self, out: Outgoing, reason: str, *, attempt: int = 1) -> None:
        """Publish ``out`` to the dead-letter queue with ``reason`` (confirmed).

        The message gets an id of its own, the instant and its delivery count (see
        :mod:`taskiq_kit.rabbit.inspect`).
        """
        declared = self._ready()
        headers = dict(out.headers)
        headers[REASON_HEADER] = reason
        headers[DEAD_ID_HEADER] = uuid.uuid4().hex
        headers[DEAD_AT_HEADER] = int(time.time() * 1000)
        headers[DEAD_ATTEMPT_HEADER] = attempt
        headers[QUEUE_HEADER] = out.queue
        headers[TASK_HEADER] = out.task_name
        properties = Basic.Properties(
            headers=headers, delivery_mode=PERSISTENT, message_id=out.task_id
        )
        await self._publish(
            declared.dead_letter,
            out.body,
            properties,
            out.queue,
            mandatory=True,
            task_name=out.task_name,
        )

    async def _check_queue(self, out: Outgoing) -> None:
        try:
            exists = await asyncio.wait_for(
                self.topology.queue_exists(await self.connection.get(), out.queue),
                self.publish_timeout,
            )
        except CHECK_ERRORS as exc:
            raise self.connection.unavailable(exc, self.publish_timeout) from exc
        if not exists:
            raise UnroutableTaskError(
                task_name=out.task_name, reason=f"the queue {out.queue!r} does not exist"
            )

    async def _publish(
        self,
        exchange: AbstractExchange,
        body: bytes,
        properties: Basic.Properties,
        routing_key: str,
        *,
        mandatory: bool,
        task_name: str,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        last: BaseException | str = "timed out"
        while (remaining := deadline - loop.time()) > 0:
            try:
                # The hot path publishes on aio-pika's underlying aiormq channel (no aio-pika
                # message per kick), bounded by the deadline without a task or timeout context
                # per kick; only a lost connection is waited for separately.
                await self.connection.wait_connected(remaining)
                if self._channel is None:
                    raise RuntimeError("the publisher is stopped")
                channel = cast(aiormq.Channel, await self._channel.get_underlay_channel())
                await publish_confirmed(
                    channel,
                    body,
                    exchange=exchange.name,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=mandatory,
                    timeout=deadline - loop.time(),
                )
            except aio_pika.exceptions.PublishError as exc:
                raise UnroutableTaskError(
                    task_name=task_name,
                    reason=f"no queue is bound to routing key {routing_key!r} of exchange "
                    f"{exchange.name!r} (declare the queue, or fix the 'queue' label): {exc}",
                ) from None
            except aio_pika.exceptions.DeliveryError as exc:
                last = f"RabbitMQ refused the message: {exc}"
            except CONNECTION_ERRORS as exc:
                last = exc
            else:
                return
            # A retry may duplicate a message whose confirm was lost: at-least-once.
            logger.debug("Publish failed (%s); retrying until the deadline.", last)
            await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))
        raise self.connection.unavailable(last, self.publish_timeout)
