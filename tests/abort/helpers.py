"""Brokers on real servers for the abort tests, built the way make_broker users build them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
import pytest
from redis.asyncio import Redis

from taskiq_kit import KitBroker, TaskNotFoundError, TaskStatus, get_status, make_broker
from taskiq_kit.rabbit import RabbitBroker
from tests.brokers import in_process_worker


def with_db(redis_url: str, db: int) -> str:
    """``redis_url`` on database ``db``."""
    base, _, _ = redis_url.rpartition("/")
    return f"{base}/{db}"


async def wait_until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``done`` every 10 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.01)


async def wait_status(
    broker: KitBroker, task_id: str, wanted: TaskStatus, timeout: float = 10.0
) -> None:
    """Poll the status of ``task_id`` until it is ``wanted``."""
    deadline = time.monotonic() + timeout
    last: TaskStatus | None = None
    while time.monotonic() < deadline:
        with contextlib.suppress(TaskNotFoundError):
            last = await get_status(broker, task_id)
        if last is wanted:
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"task {task_id} is {last}, expected {wanted}")


@dataclass
class Gated:
    """A task that starts, then waits until released (one per broker)."""

    started: asyncio.Event
    release: asyncio.Event
    task: Any


def gated_task(broker: KitBroker, name: str) -> Gated:
    started, release = asyncio.Event(), asyncio.Event()

    @broker.task(task_name=name)
    async def gated() -> str:
        started.set()
        await release.wait()
        return "done"

    return Gated(started=started, release=release, task=gated)


async def delete_redis_keys(url: str, prefix: str) -> None:
    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def delete_rabbit(amqp_url: str, broker: RabbitBroker) -> None:
    """Delete the broker's exchanges and queues, and its abort exchange."""
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        await broker.topology.delete(channel)
        await channel.exchange_delete(f"{broker.names.exchange}.abort")


@asynccontextmanager
async def running(broker: KitBroker) -> AsyncIterator[KitBroker]:
    """``broker`` started, with a worker consuming it in this process."""
    await broker.startup()
    try:
        async with in_process_worker(broker):
            yield broker
    finally:
        await broker.shutdown()


@asynccontextmanager
async def redis_broker(
    redis_url: str, prefix: str, queue: str, **options: Any
) -> AsyncIterator[KitBroker]:
    """A Redis broker, results in the same Redis database; every key under ``prefix``."""
    result_options = {"prefix": prefix, **options.pop("result_options", {})}
    broker = make_broker(
        redis_url, queue_name=queue, key_prefix=prefix, result_options=result_options, **options
    )
    try:
        yield broker
    finally:
        await delete_redis_keys(redis_url, prefix)


@asynccontextmanager
async def rabbit_broker(
    amqp_url: str, exchange: str, result_url: str | None = None, prefix: str = "", **options: Any
) -> AsyncIterator[KitBroker]:
    """A RabbitMQ broker on its own exchange and queue; results in memory or in ``result_url``."""
    result_options = {"prefix": prefix} if result_url else None
    broker = make_broker(
        amqp_url,
        result_url=result_url,
        result_options=result_options,
        exchange=exchange,
        queue_name=f"{exchange}-q",
        **options,
    )
    assert isinstance(broker, RabbitBroker)
    try:
        yield broker
    finally:
        await delete_rabbit(amqp_url, broker)
        if result_url:
            await delete_redis_keys(result_url, prefix)
