"""The RabbitMQ entry of the contract suite: a broker on uuid-named exchanges and queues."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aio_pika

from taskiq_kit import make_broker
from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.rabbit.publisher import REASON_HEADER
from tests.brokers import BrokerHarness

AMQP_URL = os.environ.get("TASKIQ_KIT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


async def wait_until(done: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``done`` until it holds or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        await asyncio.sleep(step)
    return done()


async def wait_until_async(
    done: Callable[[], Awaitable[bool]], timeout: float, step: float = 0.1
) -> bool:
    """Await ``done()`` until it holds or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await done():
            return True
        await asyncio.sleep(step)
    return await done()


def reason_of(message: aio_pika.abc.AbstractIncomingMessage) -> str:
    """The kit's reason header, or RabbitMQ's own x-death reason."""
    headers = message.headers or {}
    reason = headers.get(REASON_HEADER)
    if reason is None:
        deaths: Any = headers.get("x-death") or [{}]
        reason = deaths[0].get("reason", "?")
    return reason.decode() if isinstance(reason, bytes) else str(reason)


async def drain(channel: aio_pika.abc.AbstractChannel, queue: str) -> list[tuple[bytes, str]]:
    """Take every message out of ``queue`` as (body, reason)."""
    q = await channel.get_queue(queue, ensure=False)
    taken: list[tuple[bytes, str]] = []
    while (message := await q.get(no_ack=True, fail=False)) is not None:
        taken.append((message.body, reason_of(message)))
    return taken


async def delete_topology(broker: RabbitBroker) -> None:
    """Delete every exchange and queue of ``broker``, on the RabbitMQ it uses."""
    async with await aio_pika.connect(broker.connection.url) as connection:
        await broker.topology.delete(await connection.channel())


@asynccontextmanager
async def build(
    names: Callable[[str], str], *, url: str = AMQP_URL, **options: Any
) -> AsyncIterator[BrokerHarness]:
    """A RabbitMQ broker on uuid-named exchanges and queues of ``url``, deleted after."""
    broker = make_broker(url, exchange=names("x"), queue_name=names("q"), **options)
    assert isinstance(broker, RabbitBroker)
    seen: list[tuple[bytes, str]] = []
    connection = await aio_pika.connect(url)
    channel = await connection.channel()

    async def read_dead_letters() -> list[tuple[bytes, str]]:
        seen.extend(await drain(channel, broker.names.dead_letter))
        return list(seen)

    try:
        yield BrokerHarness(kind="rabbit", broker=broker, read_dead_letters=read_dead_letters)
    finally:
        await broker.topology.delete(channel)
        await connection.close()
