"""Result backends under the shared contract: memory, Redis and PostgreSQL, on real servers.

Redis keys use a uuid prefix per test; PostgreSQL uses one uuid-named table per session.
Both are removed afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from taskiq_kit.memory import MemoryResultBackend
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.postgres import PostgresResultBackend
from taskiq_kit.results.record import FINAL_VALUES, TaskStatus
from taskiq_kit.results.redis import RedisResultBackend
from taskiq_kit.results.writes import FINAL, KICK, MARK, RUN, RecordWrite, WriteOutcome

BACKEND_KINDS: list[Any] = [
    "memory",
    "redis",
    "postgres",
    pytest.param("redis-cluster", marks=[pytest.mark.slow, pytest.mark.cluster]),
    pytest.param("redis-sentinel", marks=[pytest.mark.slow, pytest.mark.cluster]),
]

MakeBackend = Callable[..., Awaitable[KitResultBackend[Any]]]


@pytest.fixture(scope="session")
def pg_table(postgres_url: str) -> Iterator[str]:
    """A uuid-named table for this session, dropped at the end."""
    table = f"kit_test_results_{uuid.uuid4().hex[:12]}"
    yield table

    async def drop() -> None:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        finally:
            await conn.close()

    asyncio.run(drop())


async def delete_redis_keys(redis_url: str, pattern: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def make_backend(
    request: pytest.FixtureRequest, backend_kind: str
) -> AsyncIterator[MakeBackend]:
    """Build and start a backend of ``backend_kind``; everything it wrote is removed afterwards."""
    started: list[KitResultBackend[Any]] = []
    prefix = f"kit-test-results-{uuid.uuid4().hex[:10]}"

    async def make(**options: Any) -> KitResultBackend[Any]:
        options.setdefault("result_ttl", 60.0)
        backend: KitResultBackend[Any]
        if backend_kind == "memory":
            backend = MemoryResultBackend(**options)
        elif backend_kind == "redis":
            url = request.getfixturevalue("redis_url")
            backend = RedisResultBackend(url, prefix=prefix, **options)
        elif backend_kind in ("redis-cluster", "redis-sentinel"):
            url = request.getfixturevalue(backend_kind.replace("-", "_")).url
            backend = RedisResultBackend(url, prefix=prefix, **options)
        else:
            url = request.getfixturevalue("postgres_url")
            table = request.getfixturevalue("pg_table")
            options.setdefault("purge_interval", None)
            backend = PostgresResultBackend(url, table=table, **options)
        await backend.startup()
        started.append(backend)
        return backend

    yield make
    for backend in started:
        await backend.shutdown()
    if backend_kind == "redis":
        await delete_redis_keys(request.getfixturevalue("redis_url"), f"{prefix}:*")


@pytest.fixture
async def backend(make_backend: MakeBackend) -> KitResultBackend[Any]:
    """A started backend with a 60 s TTL."""
    return await make_backend()


def new_id() -> str:
    return uuid.uuid4().hex


_KINDS = {"pending": KICK, "scheduled": KICK, "retrying": KICK, "started": RUN}


async def write(
    backend: KitResultBackend[Any],
    task_id: str,
    status: TaskStatus | None = None,
    *,
    kicked_at: float | None = None,
    attempt: int | None = None,
    due_at: float | None = None,
    result: bytes | None = None,
    **fields: object,
) -> WriteOutcome:
    """One typed record write, straight to the store (what a lifecycle transition sends)."""
    values: dict[str, object] = dict(fields)
    kind = MARK
    if status is not None:
        values["status"] = status.value
        kind = FINAL if status.value in FINAL_VALUES else _KINDS[status.value]
    if due_at is not None:
        values["due_at"] = due_at
    record = RecordWrite(task_id, kind, values, kicked_at, attempt, due_at, result)
    return (await backend.write_records([record]))[0]
