"""What the delivery tests share: one broker per transport, raw sends, dead letters, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
from redis.asyncio import Redis

from taskiq_kit import KitBroker
from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.redis import RedisBroker
from tests.delivery.apps import build_broker
from tests.rabbit.harness import AMQP_URL, drain
from tests.redis.harness import REDIS_URL

TRANSPORTS = ["redis", "rabbit"]


def broker_url(transport: str) -> str:
    """The shared server of ``transport``."""
    return REDIS_URL if transport == "redis" else AMQP_URL


async def send_raw(
    broker: KitBroker, bodies: list[bytes], headers: dict[str, Any] | None = None
) -> None:
    """Put ``bodies`` on the broker's task queue as they are, past every kit check of a kick."""
    if isinstance(broker, RedisBroker):
        async with broker.client.pipeline(transaction=False) as pipe:
            for body in bodies:
                pipe.xadd(broker.keys.ready, {"data": body})
            await pipe.execute()
        return
    assert isinstance(broker, RabbitBroker)
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(body, headers=headers or {}),
                routing_key=broker.names.default_queue,
            )


async def read_dead_letters(
    broker: KitBroker, seen: list[tuple[bytes, str]]
) -> list[tuple[bytes, str]]:
    """Dead letters as (body, reason); RabbitMQ's are taken out of the queue (kept in ``seen``)."""
    if isinstance(broker, RedisBroker):
        entries = await broker.client.xrange(broker.keys.dead)
        return [(fields.get(b"data", b""), fields[b"reason"].decode()) for _, fields in entries]
    assert isinstance(broker, RabbitBroker)
    async with await aio_pika.connect(AMQP_URL) as connection:
        seen.extend(await drain(await connection.channel(), broker.names.dead_letter))
    return list(seen)


async def queue_is_empty(broker: KitBroker) -> bool:
    """Whether nothing is left on the task queue, neither waiting nor unsettled."""
    if isinstance(broker, RedisBroker):
        return int(await broker.client.xlen(broker.keys.ready)) == 0
    assert isinstance(broker, RabbitBroker)
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(broker.names.default_queue, passive=True)
        waiting = queue.declaration_result.message_count
    return waiting == 0


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Wait until ``check()`` holds, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def started(
    transport: str, name: str, result_url: str = REDIS_URL, **options: Any
) -> AsyncIterator[KitBroker]:
    """A started broker of ``transport`` on queue ``name``; its queues, keys and records are
    deleted when the block ends."""
    broker = build_broker(broker_url(transport), result_url, name, **options)
    await broker.startup()
    try:
        yield broker
    finally:
        await broker.shutdown()
        await _clean(broker, name, result_url)


async def _clean(broker: KitBroker, name: str, result_url: str) -> None:
    if isinstance(broker, RabbitBroker):
        async with await aio_pika.connect(AMQP_URL) as connection:
            await broker.topology.delete(await connection.channel())
    client = Redis.from_url(REDIS_URL)
    try:
        if isinstance(broker, RedisBroker):
            await client.delete(*broker.keys.all())
        if result_url == REDIS_URL:
            keys = [key async for key in client.scan_iter(match=f"{name}:*")]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()
