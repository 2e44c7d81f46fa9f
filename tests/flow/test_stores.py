"""The flow stores on the real servers: the Lua scripts (Redis) and the statements (PostgreSQL).

Each operation is checked under concurrent callers, as many workers would call it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from taskiq_kit.flow.postgres_store import PostgresFlowStore
from taskiq_kit.flow.redis_store import RedisFlowStore
from taskiq_kit.flow.store import FlowStore, MemoryFlowStore
from taskiq_kit.results.postgres import PostgresResultBackend
from taskiq_kit.results.redis import RedisResultBackend
from tests.inspect.conftest import delete_keys


@pytest.fixture(
    params=[
        "redis",
        "postgres",
        "memory",
        pytest.param("redis-cluster", marks=[pytest.mark.slow, pytest.mark.cluster]),
    ]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[FlowStore]:
    name = f"kit_flow_{uuid.uuid4().hex[:10]}"
    if request.param == "memory":
        yield MemoryFlowStore()
    elif request.param == "redis-cluster":
        cluster_url: str = request.getfixturevalue("redis_cluster").url
        cluster_backend: RedisResultBackend[Any] = RedisResultBackend(cluster_url, prefix=name)
        await cluster_backend.startup()
        try:
            yield RedisFlowStore(cluster_backend)
        finally:
            await cluster_backend.shutdown()
            await delete_keys(cluster_url, f"{name}:*")
    elif request.param == "redis":
        url = request.getfixturevalue("redis_url")
        redis_backend: RedisResultBackend[Any] = RedisResultBackend(url, prefix=name)
        await redis_backend.startup()
        try:
            yield RedisFlowStore(redis_backend)
        finally:
            client = Redis.from_url(url)
            keys = [key async for key in client.scan_iter(match=f"{name}:*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()
            await redis_backend.shutdown()
    else:
        url = request.getfixturevalue("postgres_url")
        pg_backend: PostgresResultBackend[Any] = PostgresResultBackend(url, table=name)
        await pg_backend.startup()
        try:
            yield PostgresFlowStore(pg_backend)
        finally:
            await pg_backend.shutdown()
            conn = await asyncpg.connect(url)
            for suffix in ("", "_flow_rate", "_flow_slots", "_flow_claims"):
                await conn.execute(f"DROP TABLE IF EXISTS {name}{suffix}")
            await conn.close()


async def test_rate_reservations_are_spaced_by_the_interval(store: FlowStore) -> None:
    waits = sorted(await asyncio.gather(*(store.reserve_rate("r", 0.5, 0.0) for _ in range(6))))
    # Six callers at once: one runs now, the others get the next five slots, 0.5 s apart.
    assert waits[0] == pytest.approx(0.0, abs=0.01)
    for i, wait in enumerate(waits):
        assert wait == pytest.approx(0.5 * i, abs=0.2)  # minus the time between the calls
    assert await store.reserve_rate("other", 0.5, 0.0) == pytest.approx(0.0, abs=0.01)


async def test_rate_tolerance_lets_a_burst_through(store: FlowStore) -> None:
    # burst 3 at 1 per second: three at once, the fourth waits about a second.
    waits = [await store.reserve_rate("b", 1.0, 2.0) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(1.0, abs=0.05)


async def test_slots_never_exceed_the_limit_under_concurrent_callers(store: FlowStore) -> None:
    taken = await asyncio.gather(*(store.acquire_slot("s", f"h{i}", 3, 30.0) for i in range(20)))
    assert sum(taken) == 3
    holders = [f"h{i}" for i, ok in enumerate(taken) if ok]
    assert await store.acquire_slot("s", holders[0], 3, 30.0)  # a holder keeps its slot
    assert not await store.acquire_slot("s", "late", 3, 30.0)
    await store.release_slot("s", holders[0])
    assert await store.acquire_slot("s", "late", 3, 30.0)
    assert not await store.acquire_slot("s", "later", 3, 30.0)


async def test_an_expired_lease_frees_its_slot_and_renewal_keeps_it(store: FlowStore) -> None:
    assert await store.acquire_slot("e", "dead", 2, 0.3)
    assert await store.acquire_slot("e", "alive", 2, 0.3)
    assert not await store.acquire_slot("e", "waiting", 2, 0.3)
    for _ in range(3):
        await asyncio.sleep(0.15)
        await store.renew_slots([("e", "alive", 0.3)])
    # "dead" was never renewed: its lease ran out; "alive" still holds its slot.
    assert await store.acquire_slot("e", "waiting", 2, 30.0)
    assert not await store.acquire_slot("e", "another", 2, 30.0)


async def test_one_renewal_call_keeps_the_slots_of_many_keys(store: FlowStore) -> None:
    # Ten keys (ten cluster slots on a cluster): one renew_slots call extends every lease.
    keys = [f"many-{i}" for i in range(10)]
    for key in keys:
        assert await store.acquire_slot(key, "holder", 1, 0.3)
    await store.renew_slots([(key, "holder", 30.0) for key in keys])
    await asyncio.sleep(0.5)  # past the first leases
    taken = [await store.acquire_slot(key, "other", 1, 30.0) for key in keys]
    assert taken == [False] * 10


async def test_claims_and_latest(store: FlowStore) -> None:
    results = await asyncio.gather(*(store.claim("u", f"t{i}", 30.0) for i in range(10)))
    winners = [f"t{i}" for i, holder in enumerate(results) if holder is None]
    assert len(winners) == 1
    assert {holder for holder in results if holder is not None} == set(winners)
    assert not await store.replace_claim("u", "someone", "t99", 30.0)
    assert await store.replace_claim("u", winners[0], "t99", 30.0)
    assert await store.claim("u", "t100", 30.0) == "t99"
    assert await store.claim("short", "a", 0.1) is None
    await asyncio.sleep(0.2)
    assert await store.claim("short", "b", 30.0) is None  # the first claim ran out

    assert await store.latest("d") is None
    assert await store.set_latest("d", "k1", 30.0) is None
    previous = await asyncio.gather(*(store.set_latest("d", f"k{i}", 30.0) for i in range(2, 8)))
    latest = await store.latest("d")
    # Every kick replaced exactly one: the chain of replacements covers all but the latest.
    assert sorted(p for p in previous if p is not None) == sorted(
        {f"k{i}" for i in range(1, 8)} - {latest}
    )


async def test_postgres_purge_deletes_only_rows_that_ran_out(postgres_url: str) -> None:
    name = f"kit_flow_{uuid.uuid4().hex[:10]}"
    backend: PostgresResultBackend[Any] = PostgresResultBackend(postgres_url, table=name)
    await backend.startup()
    try:
        store = PostgresFlowStore(backend)
        await store.reserve_rate("gone", 0.05, 0.0)
        await store.reserve_rate("kept", 3600.0, 0.0)
        await store.claim("old", "a", 0.05)
        await store.claim("live", "b", 60.0)
        await asyncio.sleep(0.1)
        await store.purge()
        rates = await backend.pool.fetch(f"SELECT key FROM {name}_flow_rate")
        claims = await backend.pool.fetch(f"SELECT key FROM {name}_flow_claims")
        assert [row["key"] for row in rates] == ["kept"]
        assert [row["key"] for row in claims] == ["live"]
    finally:
        await backend.shutdown()
        conn = await asyncpg.connect(postgres_url)
        for suffix in ("", "_flow_rate", "_flow_slots", "_flow_claims"):
            await conn.execute(f"DROP TABLE IF EXISTS {name}{suffix}")
        await conn.close()
