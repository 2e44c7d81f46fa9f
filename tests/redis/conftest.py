"""Fixtures of the Redis broker tests: a broker on its own keys, cleaned up after."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from tests.redis.harness import REDIS_URL
from tests.redis.worker_app import done_key, hang_key, runs_key, started_key, starts_key


@pytest.fixture
async def queue(redis_url: str, unique_name: Callable[[str], str]) -> AsyncIterator[str]:
    """A fresh queue name; its keys (and the test counters) are deleted after the test."""
    name = unique_name("rq")
    yield name
    client = Redis.from_url(REDIS_URL)
    try:
        prefix = "taskiq-kit:{" + name + "}:*"
        keys = [key async for key in client.scan_iter(match=prefix)]
        test_keys = [key(name) for key in (done_key, runs_key, started_key, starts_key, hang_key)]
        await client.delete(*test_keys, *keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def worker_url(redis_url: str) -> str:
    """The URL the worker processes of a test use (tests on a cluster override it)."""
    return REDIS_URL
