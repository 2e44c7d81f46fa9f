"""``RabbitBroker``: the kit broker on RabbitMQ; wires connection, topology, publisher, consumer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING, Any

import aiormq
from taskiq.message import BrokerMessage

from taskiq_kit.abort.signal import AbortSignal
from taskiq_kit.base import KitBroker
from taskiq_kit.delivery import Delivery
from taskiq_kit.flow.long import (
    DEFAULT_LEASE,
    DEFAULT_LONG_AFTER,
    DEFAULT_MAX_RESENDS,
    LongTaskKeeper,
    lease_store_of,
)
from taskiq_kit.labels import Timing
from taskiq_kit.memory.backend import MemoryResultBackend
from taskiq_kit.rabbit.abort_signal import RabbitAbortSignal
from taskiq_kit.rabbit.connection import RabbitConnection
from taskiq_kit.rabbit.consumer import Consumer
from taskiq_kit.rabbit.delay import DEFAULT_LEVELS, DelayMode, probe_plugin
from taskiq_kit.rabbit.inspect import RabbitInspector
from taskiq_kit.rabbit.legacy import legacy_levels, move_in_background
from taskiq_kit.rabbit.long_tasks import RabbitLongTransport
from taskiq_kit.rabbit.migrate import warn_of_stranded
from taskiq_kit.rabbit.publisher import Outgoing, Publisher
from taskiq_kit.rabbit.topology import QueueType, RabbitNames, Topology
from taskiq_kit.results.backend import KitResultBackend

if TYPE_CHECKING:
    pass

logger = logging.getLogger("taskiq_kit.rabbit")

#: Label choosing the task queue of a kick.
QUEUE_LABEL = "queue"
#: Label setting the AMQP priority of a kick (classic queues declared with ``max_priority``).
PRIORITY_LABEL = "priority"


class RabbitBroker(KitBroker):
    """A taskiq broker on RabbitMQ with plugin-less delays, dead-lettering and confirmed kicks.

    Build it with :func:`taskiq_kit.make_broker` (``amqp://`` URLs) or directly; run it with
    ``taskiq worker module:broker``. A worker consumes every queue in ``queue_name`` + ``queues``.

    Args:
        url: ``amqp://`` or ``amqps://`` URL of RabbitMQ.
        result_backend: where results and status live (default: in memory).
        exchange: the task exchange; every other exchange and queue name derives from it.
        queue_name: the default task queue.
        queues: more task queues, chosen per kick with the ``queue`` label.
        queue_type: ``"quorum"`` (default: replicated, delivery counting) or ``"classic"``.
        max_priority: ``x-max-priority`` of classic task queues; kicks set ``priority`` label.
        delay_mode: ``"auto"`` and ``"ladder"`` use the TTL ladder (at-least-once, a RabbitMQ
            restart included); ``"plugin"`` uses the x-delayed-message plugin, at-most-once.
        delay_levels: levels of the TTL ladder (``2**levels - 1`` s is the longest delay).
        prefetch_count: unacknowledged messages one worker holds at most.
        connect_timeout: seconds to wait for a connection before failing.
        publish_timeout: seconds a kick may take (waiting for a reconnection included) before
            :class:`~taskiq_kit.exceptions.BrokerNotAvailableError`.
        reconnect_interval: seconds between reconnection attempts.
        max_delivery_attempts: deliveries of one message before it is dead-lettered.
        abort_signal: how abort requests reach the workers: by default a fanout exchange on
            this RabbitMQ (``make_broker`` passes Redis pub/sub when the result store is Redis).
        abort_poll_interval: seconds between the workers' checks for aborts they missed.
        long_task_after: seconds a run may keep its delivery unacknowledged before its message
            is kept in the result store under a lease and the delivery acknowledged, so that
            RabbitMQ's ``consumer_timeout`` never fires (see :mod:`taskiq_kit.flow.long`);
            keep it well below that timeout. Tasks labelled ``long=True`` are kept at once.
            ``None``: only labelled tasks. Needs a shared store (Redis or PostgreSQL).
        long_task_lease: seconds a kept message's lease lasts; its worker renews it every
            third of that, and another worker sends the message again once it expires.
        long_task_max_resends: times a kept message is sent again (its workers died) before it
            is dead-lettered.

    """

    def __init__(
        self,
        url: str = "amqp://guest:guest@localhost:5672/",
        *,
        result_backend: KitResultBackend[Any] | None = None,
        exchange: str = "taskiq-kit",
        queue_name: str = "taskiq-kit",
        queues: Sequence[str] = (),
        queue_type: QueueType | str = QueueType.QUORUM,
        max_priority: int | None = None,
        delay_mode: DelayMode | str = DelayMode.AUTO,
        delay_levels: int = DEFAULT_LEVELS,
        prefetch_count: int = 50,
        connect_timeout: float = 5.0,
        publish_timeout: float = 5.0,
        reconnect_interval: float = 1.0,
        max_delivery_attempts: int = 5,
        abort_signal: AbortSignal | None = None,
        abort_poll_interval: float = 1.0,
        long_task_after: float | None = DEFAULT_LONG_AFTER,
        long_task_lease: float = DEFAULT_LEASE,
        long_task_max_resends: int = DEFAULT_MAX_RESENDS,
    ) -> None:
        if not long_task_lease > 0:
            raise ValueError(f"long_task_lease must be > 0 seconds, got {long_task_lease!r}")
        if long_task_after is not None and not long_task_after >= 0:
            raise ValueError(
                f"long_task_after must be >= 0 seconds or None, got {long_task_after!r}"
            )
        self.long_task_after = long_task_after
        self.long_task_lease = long_task_lease
        self.long_task_max_resends = long_task_max_resends
        #: The worker's keeper of long runs (set while consuming with a shared store).
        self.long_tasks: LongTaskKeeper | None = None
        self._upkeep: asyncio.Task[None] | None = None
        super().__init__(
            result_backend=result_backend or MemoryResultBackend(),
            max_delivery_attempts=max_delivery_attempts,
            abort_signal=abort_signal
            or RabbitAbortSignal(
                url, exchange=f"{exchange}.abort", connect_timeout=connect_timeout
            ),
            abort_poll_interval=abort_poll_interval,
        )
        names = RabbitNames(exchange=exchange, queues=(queue_name, *queues))
        self.delay_mode = DelayMode(delay_mode)
        # Publishing and consuming use separate connections (RabbitMQ's advice): flow control
        # throttling publishers never delays a worker's acks, and neither shares a socket.
        self.connection = RabbitConnection(
            url,
            connect_timeout=connect_timeout,
            reconnect_interval=reconnect_interval,
            name=f"taskiq-kit publisher ({exchange})",
        )
        self.consume_connection = RabbitConnection(
            url,
            connect_timeout=connect_timeout,
            reconnect_interval=reconnect_interval,
            name=f"taskiq-kit consumer ({exchange})",
        )
        self.topology = Topology(
            names,
            queue_type=QueueType(queue_type),
            levels=delay_levels,
            max_attempts=max_delivery_attempts,
            max_priority=max_priority,
        )
        self.publisher = Publisher(self.connection, self.topology, publish_timeout=publish_timeout)
        self.consumer = Consumer(
            self.consume_connection,
            self.topology,
            self.publisher,
            prefetch_count=prefetch_count,
        )
        self._started = False
        self._start_lock = asyncio.Lock()
        self._moving: asyncio.Task[None] | None = None
        self.inspector = RabbitInspector(self, self.connection, self.topology)

    def __repr__(self) -> str:
        return f"RabbitBroker({self.connection.target!r})"

    @property
    def names(self) -> RabbitNames:
        """Names of the exchanges and queues this broker uses."""
        return self.topology.names

    async def connect(self) -> None:
        """Connect and declare the topology (probing for the plugin if asked).

        Delayed messages found in the classic delay ladder of an earlier release are moved to
        the quorum ladder in the background (see :mod:`taskiq_kit.rabbit.legacy`).

        Raises:
            BrokerNotAvailableError: when RabbitMQ cannot be reached in ``connect_timeout``.

        """
        await self._connect()

    async def shutdown(self) -> None:
        """Run shutdown hooks, requeue prefetched messages and close the connection."""
        await self._stop_upkeep()  # before the store closes
        await super().shutdown()
        moving, self._moving = self._moving, None
        if moving is not None and not moving.done():
            moving.cancel()
            await asyncio.gather(moving, return_exceptions=True)
        await self.consumer.close()
        await self.publisher.stop()
        await self.consume_connection.close()
        await self.connection.close()
        self._started = False

    async def _connect(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            await self.connection.get()
            plugin = self.delay_mode is DelayMode.PLUGIN
            if plugin and not await probe_plugin(
                self.connection.current_url,
                self.names.delayed,
                timeout=self.connection.connect_timeout,
            ):
                raise self.connection.unavailable(
                    "delay_mode='plugin' but the x-delayed-message plugin is not enabled: "
                    "run `rabbitmq-plugins enable rabbitmq_delayed_message_exchange` "
                    "or use delay_mode='ladder'"
                )
            await self.publisher.start(plugin=plugin)
            logger.info("RabbitMQ delays use the %s.", "plugin" if plugin else "TTL ladder")
            # Delayed messages left in an earlier release's classic ladder, if any.
            levels = await legacy_levels(await self.connection.get(), self.names)
            # Tasks left in taskiq-aio-pika's default queue (or the kit's old one): say so.
            with contextlib.suppress(aiormq.exceptions.AMQPError):
                await warn_of_stranded(self)
            if levels:
                self._moving = asyncio.create_task(
                    move_in_background(self.publisher, self.names, levels)
                )
            self._started = True

    async def publish(self, message: BrokerMessage, timing: Timing) -> None:
        """Send ``message`` (confirmed) to its queue, delayed until ``timing.due_at``.

        Raises:
            UnroutableTaskError: when no queue takes the message.
            BrokerNotAvailableError: when RabbitMQ is unreachable for ``publish_timeout``.

        """
        if not self._started:
            timeout = self.publisher.publish_timeout
            try:
                await asyncio.wait_for(self._connect(), timeout)
            except asyncio.TimeoutError as exc:
                raise self.connection.unavailable("timed out", timeout) from exc
        queue = message.labels.get(QUEUE_LABEL) or self.names.default_queue
        priority = str(message.labels.get(PRIORITY_LABEL, ""))
        out = Outgoing(
            body=message.message,
            headers={},
            queue=str(queue),
            task_name=message.task_name,
            task_id=message.task_id,
            priority=int(priority) if priority.isdigit() else None,
        )
        await self.publisher.send(out, timing.due_at)

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        """Yield task deliveries from every queue of this broker, keeping long runs' messages."""
        store = lease_store_of(self.result_backend)
        if store is None:
            logger.info(
                "Long tasks are not kept: %s is not a shared store; a run past RabbitMQ's "
                "consumer_timeout is delivered again.",
                type(self.result_backend).__name__,
            )
            async for delivery in self.consumer.deliveries():
                yield delivery
            return
        keeper = LongTaskKeeper(
            store,
            RabbitLongTransport(self.consumer, self.publisher),
            lease=self.long_task_lease,
            long_after=self.long_task_after,
            max_resends=self.long_task_max_resends,
        )
        self.long_tasks = keeper
        self.consumer.is_kept = store.is_kept
        await self._stop_upkeep()
        # Runs until shutdown, not until consuming stops: the runs still going on then keep
        # renewing their leases, and release them when they end.
        self._upkeep = asyncio.create_task(keeper.run())
        async for delivery in self.consumer.deliveries():
            yield delivery

    async def _stop_upkeep(self) -> None:
        upkeep, self._upkeep = self._upkeep, None
        if upkeep is not None:
            upkeep.cancel()
            await asyncio.gather(upkeep, return_exceptions=True)

    def queue_of(self, labels: dict[str, Any]) -> str | None:
        """The queue a kick with these labels goes to (its ``queue`` label, or the default)."""
        return str(labels.get(QUEUE_LABEL) or self.names.default_queue)

    def consumed_queues(self) -> list[str]:
        """Every task queue of this broker."""
        return list(self.names.queues)
