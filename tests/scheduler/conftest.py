"""Fixtures of the scheduler tests: a uuid-named scheduler group, its keys deleted afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from taskiq_kit.scheduler import SchedulerKeys


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def group(
    redis_client: Redis, unique_name: Callable[[str], str]
) -> AsyncIterator[SchedulerKeys]:
    """Key names of a fresh scheduler group; every key of it is deleted after the test."""
    keys = SchedulerKeys(name=unique_name("sched"), prefix="kit-test-scheduler")
    yield keys
    await redis_client.delete(*keys.all())
