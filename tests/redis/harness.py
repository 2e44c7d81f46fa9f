"""The Redis broker under the shared contract tests, on uuid-named keys."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis

from taskiq_kit import MemoryResultBackend
from taskiq_kit.redis import RedisBroker, RedisKeys
from tests.brokers import BrokerHarness

REDIS_URL = os.environ.get("TASKIQ_KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def make_test_broker(queue: str, url: str = REDIS_URL, **options: Any) -> RedisBroker:
    """A Redis broker on its own queue, results kept in memory (the worker runs in-process)."""
    options.setdefault("idle_timeout", 5.0)
    return RedisBroker(url, result_backend=MemoryResultBackend(), queue_name=queue, **options)


async def read_dead_letters(client: Redis, keys: RedisKeys) -> list[tuple[bytes, str]]:
    entries = await client.xrange(keys.dead)
    return [(fields[b"data"], fields[b"reason"].decode()) for _id, fields in entries]


async def delete_keys(keys: RedisKeys, url: str = REDIS_URL) -> None:
    client = Redis.from_url(url)
    try:
        await client.delete(*keys.all())
    finally:
        await client.aclose()


@asynccontextmanager
async def build(names: Callable[[str], str]) -> AsyncIterator[BrokerHarness]:
    broker = make_test_broker(names("q"))
    client = Redis.from_url(REDIS_URL)

    async def dead() -> list[tuple[bytes, str]]:
        return await read_dead_letters(client, broker.keys)

    try:
        yield BrokerHarness(kind="redis", broker=broker, read_dead_letters=dead)
    finally:
        await client.delete(*broker.keys.all())
        await client.aclose()
