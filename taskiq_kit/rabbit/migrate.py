"""Moving tasks out of a queue the kit does not consume: another broker's, or an old default.

taskiq-aio-pika (and taskiq-kit before it took names of its own) keep tasks in a queue named
``taskiq``. A kit broker consumes ``taskiq-kit`` by default, so tasks still waiting in the old
queue when a deployment switches would be stranded. :func:`move_queue` sends each of them through
the kit's publisher into the kit's queue, confirmed there before it is acknowledged in the old
one: a crash in between leaves a copy in both (run it again; the kit drops a repeat of a kick it
already completed), never in neither.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Protocol

import aiormq
from aio_pika.abc import AbstractIncomingMessage

from taskiq_kit.exceptions import UnroutableTaskError
from taskiq_kit.rabbit.publisher import Outgoing

if TYPE_CHECKING:
    from taskiq_kit.rabbit.connection import RabbitConnection
    from taskiq_kit.rabbit.publisher import Publisher
    from taskiq_kit.rabbit.topology import RabbitNames


class RabbitBroker(Protocol):
    """What moving messages needs of a :class:`~taskiq_kit.rabbit.RabbitBroker` (no import cycle)."""

    @property
    def names(self) -> RabbitNames:
        """Names of the exchanges and queues."""

    publisher: Publisher
    connection: RabbitConnection


logger = logging.getLogger("taskiq_kit.rabbit")

#: The queue taskiq-aio-pika declares by default (and taskiq-kit did before 0.2).
OLD_DEFAULT_QUEUE = "taskiq"


def _identity(body: bytes) -> tuple[str, str | None]:
    """The task name and id a taskiq message body carries (``"?"``/``None`` if unreadable)."""
    try:
        data = json.loads(body)
    except ValueError:
        return "?", None
    if not isinstance(data, dict):
        return "?", None
    name, task_id = data.get("task_name"), data.get("task_id")
    return (
        name if isinstance(name, str) else "?",
        task_id if isinstance(task_id, str) else None,
    )


async def _move_one(broker: RabbitBroker, message: AbstractIncomingMessage, queue: str) -> None:
    name, task_id = _identity(message.body)
    headers = {key: value for key, value in (message.headers or {}).items() if key[:2] != "x-"}
    out = Outgoing(
        body=message.body,
        headers=headers,
        queue=queue,
        task_name=name,
        task_id=message.message_id or task_id,
        priority=message.priority,
    )
    try:
        await broker.publisher.send(out, None)
    except UnroutableTaskError as exc:
        await broker.publisher.dead_letter(out, f"moving it out of queue: {exc.reason}")
    await message.ack()


async def move_queue(
    broker: RabbitBroker, source: str = OLD_DEFAULT_QUEUE, *, to_queue: str | None = None
) -> int:
    """Move every message of queue ``source`` into one of the kit's task queues.

    Run it once after switching a deployment to the kit, with the old workers stopped (their
    prefetched messages go back to ``source`` when they stop; run it again to catch those).
    The bodies are taskiq messages, which the kit's workers read as they are.

    Args:
        broker: a started kit broker.
        source: the queue to empty (default ``taskiq``).
        to_queue: the kit queue to fill (default: the broker's default queue).

    Returns:
        How many messages were moved.

    A ``source`` queue that does not exist moves nothing and returns 0.

    Raises:
        ValueError: when ``source`` is one of the broker's own queues.
        BrokerNotAvailableError: when RabbitMQ does not confirm a move in time (what was
            moved stays moved; run it again for the rest).

    """
    target = to_queue or broker.names.default_queue
    if source in broker.names.queues:
        raise ValueError(f"queue {source!r} is one of this broker's own queues; nothing to move")
    connection = await broker.connection.get()
    channel = await connection.channel(publisher_confirms=False)
    moved = 0
    try:
        try:
            queue = await channel.declare_queue(source, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return 0
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            await _move_one(broker, message, target)
            moved += 1
    finally:
        if not channel.is_closed:
            await channel.close()
    logger.info("Moved %d message(s) from queue %r to %r.", moved, source, target)
    return moved


async def warn_of_stranded(broker: RabbitBroker) -> int:
    """Log one WARNING when the old default queue holds tasks no kit worker consumes.

    Returns:
        How many messages wait there (0 when the queue does not exist).

    """
    if OLD_DEFAULT_QUEUE in broker.names.queues:
        return 0
    connection = await broker.connection.get()
    channel = await connection.channel(publisher_confirms=False)
    try:
        queue = await channel.declare_queue(OLD_DEFAULT_QUEUE, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return 0
    finally:
        if not channel.is_closed:
            await channel.close()
    waiting = queue.declaration_result.message_count or 0
    if waiting:
        logger.warning(
            "Queue %r holds %d message(s) that no taskiq-kit worker consumes (taskiq-aio-pika's "
            "default queue, and taskiq-kit's before 0.2; the kit now uses %r). Move them with "
            "`await taskiq_kit.rabbit.move_queue(broker)` once the old workers are stopped "
            "(docs: migration.md).",
            OLD_DEFAULT_QUEUE,
            waiting,
            broker.names.default_queue,
        )
    return waiting
