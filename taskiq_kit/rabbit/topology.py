"""Names and the one declarer of everything the RabbitMQ broker uses on the server.

Declared once at start-up and cached; kicks never declare. Objects, for ``exchange="taskiq"``
(the default is ``taskiq-kit``, apart from taskiq-aio-pika's ``taskiq``):

* ``taskiq`` (direct exchange) -> task queues, bound by their own name (the routing key).
* ``taskiq.dead-letter`` (fanout exchange) -> ``taskiq.dead-letter`` (queue): the DLQ.
* ``taskiq.ladder.<k>`` (topic exchange + quorum queue, TTL ``2**k`` s, at-least-once
  dead-lettering) for ``k`` in the ladder, and ``taskiq.delay.deliver`` (topic exchange) at its
  foot; see :mod:`taskiq_kit.rabbit.delay`.
* ``taskiq.delayed`` (x-delayed-message exchange), only when the plugin is used.

Releases before the quorum ladder used classic ladder queues named ``taskiq.delay.<k>``; those
names are left alone (see :mod:`taskiq_kit.rabbit.legacy`).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, ExchangeType

from taskiq_kit.exceptions import TopologyConflictError
from taskiq_kit.rabbit.delay import (
    PLUGIN_EXCHANGE_TYPE,
    delivery_binding,
    level_binding,
)


class QueueType(str, enum.Enum):
    """Type of the task queues: quorum (replicated, delivery counts) or classic (priorities)."""

    QUORUM = "quorum"
    CLASSIC = "classic"


@dataclass(frozen=True, slots=True)
class RabbitNames:
    """Names of the broker's exchanges and queues.

    Attributes:
        exchange: the task exchange; every other name derives from it.
        queues: task queues; the first is the default, others are chosen with the ``queue`` label.

    """

    exchange: str = "taskiq-kit"
    queues: tuple[str, ...] = ("taskiq-kit",)

    def __post_init__(self) -> None:
        if not self.queues:
            raise ValueError("at least one task queue is needed")
        for name in (self.exchange, *self.queues):
            if not name or "*" in name or "#" in name:
                raise ValueError(f"invalid RabbitMQ name {name!r}: empty, or has '*' or '#'")

    @property
    def default_queue(self) -> str:
        """The queue of tasks kicked without a ``queue`` label."""
        return self.queues[0]

    @property
    def dead_letter(self) -> str:
        """Name of the dead-letter exchange and of its queue."""
        return f"{self.exchange}.dead-letter"

    def level(self, k: int) -> str:
        """Name of the exchange and queue of ladder level ``k``."""
        return f"{self.exchange}.ladder.{k}"

    def legacy_level(self, k: int) -> str:
        """Name of level ``k`` of the classic ladder of earlier releases (exchange and queue)."""
        return f"{self.exchange}.delay.{k}"

    @property
    def deliver(self) -> str:
        """The exchange at the foot of the ladder, routing to task queues."""
        return f"{self.exchange}.delay.deliver"

    @property
    def delayed(self) -> str:
        """The x-delayed-message exchange (plugin mode)."""
        return f"{self.exchange}.delayed"

    def all_queues(self, levels: int) -> list[str]:
        """Every queue name, for cleanup."""
        return [*self.queues, self.dead_letter, *(self.level(k) for k in range(levels))]

    def all_exchanges(self, levels: int) -> list[str]:
        """Every exchange name, for cleanup."""
        ladder = [self.level(k) for k in range(levels)]
        return [self.exchange, self.dead_letter, *ladder, self.deliver, self.delayed]


def ladder_queue_arguments(level: int, below: str) -> dict[str, Any]:
    """Arguments of the queue of ladder level ``level``, which dead-letters to exchange ``below``.

    A quorum queue with a queue TTL (RabbitMQ >= 3.10) whose expired messages RabbitMQ moves on
    at-least-once: each stays in the queue until every queue it is routed to has confirmed it,
    and is sent again otherwise, so a restart, or a target queue without a leader yet, delays a
    hop instead of losing the message. At-least-once dead-lettering requires ``reject-publish``
    (the ladder has no length limit, so nothing is rejected).
    """
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": 1000 * 2**level,
        "x-dead-letter-exchange": below,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


@dataclass(slots=True)
class Declared:
    """Handles to the declared exchanges, on the channel that declared them."""

    tasks: AbstractExchange
    dead_letter: AbstractExchange
    levels: list[AbstractExchange] = field(default_factory=list)
    delayed: AbstractExchange | None = None


@contextlib.contextmanager
def _explained_conflicts() -> Iterator[None]:
    """Turn RabbitMQ's ``PRECONDITION_FAILED`` on a declare into the kit's explained error."""
    try:
        yield
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        # The server's text names the object and the argument that differ, e.g.
        # "inequivalent arg 'x-queue-type' for queue 'taskiq' in vhost '/': received ...".
        text = str(exc.args[0] if exc.args else exc)
        reason = text.removeprefix("PRECONDITION_FAILED - ")[:300]
        raise TopologyConflictError(reason=reason) from exc


@dataclass(slots=True)
class Topology:
    """Declares the broker's exchanges, queues and bindings; the only place that declares.

    Args:
        names: the names to declare.
        queue_type: type of the task queues.
        levels: ladder levels, 1 to 40 (longer delays go round the ladder again).
        max_attempts: deliveries before a message is dead-lettered; quorum queues also get
            ``x-delivery-limit`` one above it, a server-side backstop behind the delivery gate.
        max_priority: ``x-max-priority`` of classic task queues (quorum queues ignore it).

    """

    names: RabbitNames
    queue_type: QueueType = QueueType.QUORUM
    levels: int = 29
    max_attempts: int = 5
    max_priority: int | None = None
    _known: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not 1 <= self.levels <= 40:
            raise ValueError(f"delay_levels must be between 1 and 40, got {self.levels}")
        for queue in self.names.queues:
            if len(delivery_binding(queue, self.levels).encode()) > 255:
                raise ValueError(
                    f"queue name {queue!r} is too long for a {self.levels}-level delay ladder: "
                    f"routing keys are limited to 255 bytes; shorten it to "
                    f"{255 - 2 * self.levels} bytes or fewer"
                )

    def task_queue_arguments(self) -> dict[str, Any]:
        """Arguments of every task queue."""
        arguments: dict[str, Any] = {"x-dead-letter-exchange": self.names.dead_letter}
        if self.queue_type is QueueType.QUORUM:
            arguments.update(
                {
                    "x-queue-type": "quorum",
                    "x-delivery-limit": self.max_attempts + 1,
                    # At-least-once dead-lettering (RabbitMQ >= 3.10) requires reject-publish.
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                }
            )
        elif self.max_priority is not None:
            arguments["x-max-priority"] = self.max_priority
        return arguments

    async def declare_task_queues(self, channel: AbstractChannel) -> list[AbstractQueue]:
        """Declare the task queues on ``channel`` (the consumer's) and return them.

        Raises:
            TopologyConflictError: when a queue of that name exists with other arguments.

        """
        arguments = self.task_queue_arguments()
        with _explained_conflicts():
            return [
                await channel.declare_queue(name, durable=True, arguments=arguments)
                for name in self.names.queues
            ]

    async def declare(self, channel: AbstractChannel, *, plugin: bool) -> Declared:
        """Declare everything on ``channel`` (the publisher's) and return the exchanges.

        Raises:
            TopologyConflictError: when an exchange or queue of one of the kit's names exists
                with other arguments or of another type.

        """
        with _explained_conflicts():
            return await self._declare(channel, plugin=plugin)

    async def _declare(self, channel: AbstractChannel, *, plugin: bool) -> Declared:
        names = self.names
        dead_exchange = await channel.declare_exchange(
            names.dead_letter, ExchangeType.FANOUT, durable=True
        )
        dead_queue = await channel.declare_queue(
            names.dead_letter, durable=True, arguments={"x-queue-type": self.queue_type.value}
        )
        await dead_queue.bind(dead_exchange)
        tasks = await channel.declare_exchange(names.exchange, ExchangeType.DIRECT, durable=True)
        queues = await self.declare_task_queues(channel)
        for queue in queues:
            await queue.bind(tasks, routing_key=queue.name)
        self._known.update(names.queues)
        declared = Declared(tasks=tasks, dead_letter=dead_exchange)
        declared.levels = await self._declare_ladder(channel, queues)
        if plugin:
            declared.delayed = await channel.declare_exchange(
                names.delayed,
                PLUGIN_EXCHANGE_TYPE,
                durable=True,
                arguments={"x-delayed-type": "direct"},
            )
            for queue in queues:
                await queue.bind(declared.delayed, routing_key=queue.name)
        return declared

    async def _declare_ladder(
        self, channel: AbstractChannel, queues: list[AbstractQueue]
    ) -> list[AbstractExchange]:
        names = self.names
        # Messages whose queue has gone are dead-lettered rather than dropped at the foot.
        below = await channel.declare_exchange(
            names.deliver,
            ExchangeType.TOPIC,
            durable=True,
            arguments={"alternate-exchange": names.dead_letter},
        )
        for queue in queues:
            await queue.bind(below, routing_key=delivery_binding(queue.name, self.levels))
        exchanges: list[AbstractExchange] = []
        for k in range(self.levels):
            exchange = await channel.declare_exchange(
                names.level(k), ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(
                names.level(k), durable=True, arguments=ladder_queue_arguments(k, below.name)
            )
            await queue.bind(exchange, routing_key=level_binding(k, self.levels, "1"))
            await below.bind(exchange, routing_key=level_binding(k, self.levels, "0"))
            exchanges.append(exchange)
            below = exchange
        return exchanges

    async def queue_exists(self, connection: aio_pika.abc.AbstractConnection, name: str) -> bool:
        """Whether task queue ``name`` exists (cached once seen), checked passively."""
        if name in self._known:
            return True
        channel = await connection.channel(publisher_confirms=False)
        try:
            await channel.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        finally:
            if not channel.is_closed:
                await channel.close()
        self._known.add(name)
        return True

    async def delete(self, channel: AbstractChannel) -> None:
        """Delete every queue and exchange of these names (tests, teardown of a deployment)."""
        for queue in self.names.all_queues(self.levels):
            await channel.queue_delete(queue)
        for exchange in self.names.all_exchanges(self.levels):
            await channel.exchange_delete(exchange)
