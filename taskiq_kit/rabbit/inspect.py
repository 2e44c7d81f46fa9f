"""Queue figures of the RabbitMQ broker, over AMQP alone; its inspector (figures and dead letters).

A passive ``queue.declare`` of each task queue, of the dead-letter queue and of each
delay-ladder level, on one channel kept open between calls, gives each queue's *ready* messages
and its consumers. RabbitMQ 3.10 tells AMQP clients nothing of the messages delivered and not yet
acknowledged: ``in_flight`` is ``None`` (see docs/queues.md; the management plugin's HTTP API
has the figure, and is not required by the kit). The ladder and the dead-letter queue are shared
by the broker's task queues: their counts are reported on the default queue (0 on the others),
so the figures add up.

Dead letters: :mod:`taskiq_kit.rabbit.dead_letters`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiormq
from aio_pika.abc import AbstractChannel

from taskiq_kit.inspect.models import QueueFigures
from taskiq_kit.rabbit.dead_letters import RabbitDeadLetters
from taskiq_kit.rabbit.taking import close

if TYPE_CHECKING:
    from taskiq_kit.base import KitBroker
    from taskiq_kit.rabbit.connection import RabbitConnection
    from taskiq_kit.rabbit.topology import Topology

_NOT_FOUND = aiormq.exceptions.ChannelNotFoundEntity


class RabbitInspector(RabbitDeadLetters):
    """The inspect side of one :class:`~taskiq_kit.rabbit.broker.RabbitBroker`.

    Its queue figures, and (inherited) its dead-letter box.

    Args:
        broker: the broker (its records are written on replays).
        connection: its publishing connection (the inspector opens channels of its own).
        topology: its names and declarer.

    """

    def __init__(self, broker: KitBroker, connection: RabbitConnection, topology: Topology) -> None:
        super().__init__(broker, connection, topology)
        self._figures: AbstractChannel | None = None

    async def _count(self, name: str) -> tuple[int, int]:
        """(ready, consumers) of queue ``name``; (0, 0) when it does not exist."""
        channel = self._figures
        if channel is None or channel.is_closed:
            channel = self._figures = await self._channel()
        underlay = await channel.get_underlay_channel()
        try:
            ok = await underlay.queue_declare(name, passive=True)
        except _NOT_FOUND:
            # RabbitMQ closed the channel: the next count opens another.
            await close(channel)
            self._figures = None
            return 0, 0
        return int(ok.message_count or 0), int(ok.consumer_count or 0)

    async def queue_figures(self) -> list[QueueFigures]:
        """The figures of each task queue (the ladder and the dead letters on the default one).

        Passive declares on one channel kept open between calls (a few milliseconds for the
        default 29-level ladder on a local RabbitMQ).
        """
        names = self._names
        levels = self.topology.levels
        queues = list(names.queues)
        tasks = [await self._count(name) for name in queues]
        dead, _ = await self._count(names.dead_letter)
        delayed = 0
        for k in range(levels):
            delayed += (await self._count(names.level(k)))[0]
        return [
            QueueFigures(
                name=name,
                ready=ready,
                in_flight=None,
                delayed=delayed if index == 0 else 0,
                dead_lettered=dead if index == 0 else 0,
                consumers=consumers,
            )
            for index, (name, (ready, consumers)) in enumerate(zip(queues, tasks, strict=True))
        ]
