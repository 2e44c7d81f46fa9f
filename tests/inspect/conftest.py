"""A kit broker per store (memory, Redis, PostgreSQL) whose tasks run in the test's process.

The ``memory://`` broker runs the tasks itself, through the whole lifecycle, and keeps their
records in the store under test: real tasks, real store writes, no worker process. Redis keys
use a uuid prefix and PostgreSQL a uuid-named table; both are removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from taskiq_kit import KitBroker, make_broker
from taskiq_kit.redis.connect import close_client, make_client
from tests.results.conftest import delete_redis_keys

STORES: list[Any] = [
    "memory",
    "redis",
    "postgres",
    pytest.param("redis-cluster", marks=[pytest.mark.slow, pytest.mark.cluster]),
    pytest.param("redis-sentinel", marks=[pytest.mark.slow, pytest.mark.cluster]),
]

MakeBroker = Callable[..., Awaitable[KitBroker]]


async def drop_tables(postgres_url: str, *tables: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        for table in tables:
            await conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_workers"')
    finally:
        await conn.close()


def redis_store_url(request: pytest.FixtureRequest, store: str) -> str:
    """The URL of the Redis server (``redis``), or of the private Redis Cluster (``redis-cluster``)
    or Sentinels (``redis-sentinel``).
    """
    if store == "redis":
        return str(request.getfixturevalue("redis_url"))
    private: Any = request.getfixturevalue(store.replace("-", "_"))
    return str(private.url)


async def delete_keys(url: str, pattern: str) -> None:
    """Delete the keys matching ``pattern`` on a server or every node of a cluster."""
    client = make_client(url)
    try:
        keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
        for key in keys:
            await client.delete(key)
    finally:
        await close_client(client)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def make_kit(request: pytest.FixtureRequest, store: str) -> AsyncIterator[MakeBroker]:
    """Build and start a ``memory://`` broker keeping its records in ``store``."""
    names: list[str] = []
    started: list[KitBroker] = []

    async def make(**options: Any) -> KitBroker:
        name = f"kit_test_inspect_{uuid.uuid4().hex[:10]}"
        names.append(name)
        result_options: dict[str, Any] = dict(options.pop("result_options", {}))
        if store == "memory":
            broker = make_broker("memory://", result_options=result_options, **options)
        elif store.startswith("redis"):
            result_options["prefix"] = name
            broker = make_broker(
                "memory://",
                result_url=redis_store_url(request, store),
                result_options=result_options,
                **options,
            )
        else:
            result_options["table"] = name
            result_options["purge_interval"] = None
            broker = make_broker(
                "memory://",
                result_url=request.getfixturevalue("postgres_url"),
                result_options=result_options,
                **options,
            )
        await broker.startup()
        started.append(broker)
        return broker

    yield make
    for broker in started:
        await broker.shutdown()
    for name in names:
        if store == "redis":
            await delete_redis_keys(request.getfixturevalue("redis_url"), f"{name}:*")
        elif store.startswith("redis-"):
            await delete_keys(redis_store_url(request, store), f"{name}:*")
        elif store == "postgres":
            await drop_tables(request.getfixturevalue("postgres_url"), name)
