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
from tests.results.conftest import delete_redis_keys

STORES = ["memory", "redis", "postgres"]

MakeBroker = Callable[..., Awaitable[KitBroker]]


async def drop_tables(postgres_url: str, *tables: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        for table in tables:
            await conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_workers"')
    finally:
        await conn.close()


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
        elif store == "redis":
            result_options["prefix"] = name
            broker = make_broker(
                "memory://",
                result_url=request.getfixturevalue("redis_url"),
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
        elif store == "postgres":
            await drop_tables(request.getfixturevalue("postgres_url"), name)
