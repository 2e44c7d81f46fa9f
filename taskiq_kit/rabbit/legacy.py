"""Moving delayed messages out of the classic delay ladder of earlier releases.

Earlier releases kept delayed messages in classic queues ``<exchange>.delay.<k>``, which lose
messages across a RabbitMQ restart. Those queues cannot become quorum queues under the same
names (RabbitMQ refuses a declaration with other arguments), so the quorum ladder has names of
its own and the old queues stay untouched, still dead-lettering into the old exchanges and on to
the task queues. At start-up a broker that finds them moves what they hold into the quorum ladder,
each message confirmed in its new queue before it is acked in the old one, keeping its due time;
then RabbitMQ may delete the old queues (the log line says how).
"""

from __future__ import annotations

import asyncio
import logging

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from taskiq_kit.exceptions import BrokerNotAvailableError, UnroutableTaskError
from taskiq_kit.rabbit.connection import CONNECTION_ERRORS
from taskiq_kit.rabbit.publisher import (
    DUE_AT_HEADER,
    QUEUE_HEADER,
    TASK_HEADER,
    Outgoing,
    Publisher,
)
from taskiq_kit.rabbit.topology import RabbitNames

logger = logging.getLogger("taskiq_kit.rabbit")

#: Most levels an earlier release could declare.
MAX_LEGACY_LEVELS = 40
#: Errors that stop the move (what is left is moved at the next start-up).
MOVE_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    BrokerNotAvailableError,
    aio_pika.exceptions.AMQPError,
)


async def legacy_levels(connection: AbstractRobustConnection, names: RabbitNames) -> list[int]:
    """Levels of the classic ladder of an earlier release that exist, highest first.

    Every earlier release declared level 0, so a missing level 0 ends the search at once.
    """
    found: list[int] = []
    for k in range(MAX_LEGACY_LEVELS):
        channel = await connection.channel(publisher_confirms=False)
        try:
            await channel.declare_queue(names.legacy_level(k), passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            if k == 0:
                return []
            continue
        finally:
            if not channel.is_closed:
                await channel.close()
        found.append(k)
    return found[::-1]


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) and value else None


def outgoing_of(message: AbstractIncomingMessage, default_queue: str) -> Outgoing:
    """``message`` as it goes into the quorum ladder: RabbitMQ's own ``x-`` headers left out."""
    headers = {key: value for key, value in (message.headers or {}).items() if key[:2] != "x-"}
    # A ladder routing key is the delay's bits, then the destination queue.
    parts = (message.routing_key or "").split(".")
    while parts and parts[0] in ("0", "1"):
        parts.pop(0)
    queue = _text(headers.get(QUEUE_HEADER)) or ".".join(parts) or default_queue
    return Outgoing(
        body=message.body,
        headers=headers,
        queue=queue,
        task_name=_text(headers.get(TASK_HEADER)) or "?",
        task_id=message.message_id,
        priority=message.priority,
    )


async def _move_one(publisher: Publisher, message: AbstractIncomingMessage, queue: str) -> None:
    out = outgoing_of(message, queue)
    micros = out.headers.get(DUE_AT_HEADER)
    due_at = micros / 1e6 if isinstance(micros, int) else None
    try:
        await publisher.send(out, due_at)
    except UnroutableTaskError as exc:
        await publisher.dead_letter(out, f"moving it out of the classic delay ladder: {exc.reason}")
    await message.ack()


async def move_legacy_ladder(publisher: Publisher, names: RabbitNames, levels: list[int]) -> int:
    """Move every message of an earlier release's classic ladder into the quorum ladder.

    Args:
        publisher: the broker's started publisher.
        names: the broker's names.
        levels: the levels found by :func:`legacy_levels`, highest first.

    Returns:
        How many messages were moved.

    """
    connection = await publisher.connection.get()
    logger.warning(
        "Found the classic delay ladder of an earlier taskiq-kit (%s to %s), which loses delayed "
        "tasks across a RabbitMQ restart: moving its messages to the quorum ladder (%s...); once "
        "it is empty, delete its queues and exchanges (`rabbitmqctl delete_queue %s`, ...).",
        names.legacy_level(levels[-1]),
        names.legacy_level(levels[0]),
        names.level(0),
        names.legacy_level(levels[-1]),
    )
    moved = 0
    channel = await connection.channel(publisher_confirms=False)
    try:
        # Highest first: messages move down the old ladder as they expire, and are caught below.
        for k in levels:
            queue = await channel.get_queue(names.legacy_level(k), ensure=False)
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                await _move_one(publisher, message, names.default_queue)
                moved += 1
    finally:
        if not channel.is_closed:
            await channel.close()
    logger.info("Moved %d delayed message(s) out of the classic delay ladder.", moved)
    return moved


async def move_in_background(publisher: Publisher, names: RabbitNames, levels: list[int]) -> None:
    """:func:`move_legacy_ladder`, logging instead of raising (it runs beside start-up)."""
    try:
        await move_legacy_ladder(publisher, names, levels)
    except asyncio.CancelledError:
        raise
    except MOVE_ERRORS as exc:
        logger.warning(
            "Stopped moving messages out of the classic delay ladder (%s); the rest stay there "
            "and are moved at the next start-up.",
            type(exc).__name__,
        )
