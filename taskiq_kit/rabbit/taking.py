"""Taking messages from a queue without acknowledging them: what a listing and a replay read.

AMQP cannot peek. A channel of its own consumes the queue without acknowledging (streaming: a
``basic.get`` costs a round trip each, milliseconds on a quorum queue); closing the channel gives
back every message it did not acknowledge.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel
from aiormq.abc import DeliveredMessage

from taskiq_kit.rabbit.publisher import DEAD_AT_HEADER, DEAD_ID_HEADER

#: Seconds without a new message after which a scan of the dead-letter queue ends (the rest,
#: if any, is held unacknowledged by another channel).
IDLE = 1.0
#: Seconds without a new message after which a scan ends once it has the messages counted.
QUIET = 0.1
#: Errors of closing a channel (ignored: closing gives the messages back either way).
CLOSE_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    ConnectionError,
    asyncio.TimeoutError,
)


def text(value: Any) -> str:
    """A header value as text."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def death_of(headers: dict[str, Any]) -> dict[str, Any]:
    """RabbitMQ's most recent death record of a message (``{}``: none)."""
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return {}


@dataclass(frozen=True, slots=True)
class Taken:
    """A dead letter taken from the queue (unacknowledged) by a listing, a replay or a delete."""

    body: bytes
    headers: dict[str, Any]
    message_id: str | None
    routing_key: str
    priority: int | None
    tag: int

    @classmethod
    def of(cls, message: DeliveredMessage) -> Taken:
        """What a delivery of the dead-letter queue holds."""
        properties = message.header.properties
        return cls(
            body=message.body,
            headers=dict(properties.headers or {}),
            message_id=properties.message_id,
            routing_key=message.routing_key or "",
            priority=properties.priority,
            tag=message.delivery_tag or 0,
        )

    def dead_at(self, since: float) -> bool:
        """Whether this message was dead-lettered at ``since`` or later, as far as it tells."""
        dead_at = self.headers.get(DEAD_AT_HEADER)
        if isinstance(dead_at, int):
            return dead_at / 1000 >= since
        died = death_of(self.headers).get("time")
        return isinstance(died, datetime) and died.timestamp() >= math.floor(since)

    @property
    def id(self) -> str:
        """The dead letter's id: the kit's header, or a digest of what RabbitMQ dead-lettered."""
        known = self.headers.get(DEAD_ID_HEADER)
        if known:
            return text(known)
        digest = hashlib.blake2s(digest_size=12)
        digest.update(self.body)
        digest.update((self.message_id or "").encode())
        digest.update(repr(self.headers.get("x-death")).encode())
        return f"r{digest.hexdigest()}"


class Taking:
    """Consumes a queue without acknowledging, on a channel of its own, until closed.

    Consuming streams the messages (``basic.get`` costs a round trip each, milliseconds on a
    quorum queue). Closing the channel gives back every message not acknowledged.
    """

    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self.channel = channel
        self._arrived: asyncio.Queue[DeliveredMessage] = asyncio.Queue()

    async def start(self, queue: str, *, prefetch: int) -> None:
        """Consume ``queue``, at most ``prefetch`` messages unacknowledged (0: no limit)."""
        await self.channel.basic_qos(prefetch_count=prefetch)
        await self.channel.basic_consume(queue, self._on_message, no_ack=False)

    async def _on_message(self, message: DeliveredMessage) -> None:
        self._arrived.put_nowait(message)

    async def scan(self, declared: int, most: int | None = None) -> AsyncIterator[Taken]:
        """Yield the messages as they come, until none comes for a while (or ``most``).

        ``declared``: the ready messages ``queue.declare`` counted. Messages a closing channel
        gives back to a quorum queue come back a moment after it closed, uncounted, so the scan
        waits :data:`IDLE` seconds for a message while fewer than ``declared`` came, and
        :data:`QUIET` seconds after.
        """
        received = 0
        while most is None or received < most:
            wait = QUIET if received >= declared else IDLE
            try:
                message = await asyncio.wait_for(self._arrived.get(), wait)
            except asyncio.TimeoutError:
                return
            received += 1
            yield Taken.of(message)


async def close(channel: AbstractChannel) -> None:
    """Close ``channel`` (what it held goes back to its queues)."""
    if not channel.is_closed:
        with contextlib.suppress(*CLOSE_ERRORS):
            await channel.close()
