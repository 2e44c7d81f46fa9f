"""What only one backend does: Redis keys and TTLs, PostgreSQL schema and purging, the factory."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis
from taskiq.result import TaskiqResult

from taskiq_kit import MissingExtraError, make_result_backend
from taskiq_kit.results.postgres import PostgresResultBackend
from taskiq_kit.results.progress import make_report
from taskiq_kit.results.record import TaskStatus
from taskiq_kit.results.redis import RedisResultBackend
from taskiq_kit.results.redis_keys import ResultKeys
from tests.results.conftest import MakeBackend, new_id, write


def test_keys_share_one_cluster_slot_per_task() -> None:
    keys = ResultKeys("app")
    task_id = "abc-123"
    names = [keys.result(task_id), keys.status(task_id), keys.progress(task_id)]
    assert names == ["app:{abc-123}:result", "app:{abc-123}:status", "app:{abc-123}:progress"]
    assert {name.split("{")[1].split("}")[0] for name in names} == {task_id}
    with pytest.raises(ValueError, match="without braces"):
        ResultKeys("bad{prefix}")


@pytest.mark.parametrize("backend_kind", ["redis"])
async def test_redis_ttls(make_backend: MakeBackend, redis_url: str) -> None:
    backend = await make_backend(result_ttl=100)
    assert isinstance(backend, RedisResultBackend)
    task_id = new_id()
    now = time.time()
    await write(backend, task_id, TaskStatus.SCHEDULED, kicked_at=now, attempt=1, due_at=now + 1000)
    await backend.write_progress(task_id, make_report(0.5))
    await write(backend, task_id, TaskStatus.STARTED)
    await backend.set_result(
        task_id, TaskiqResult[Any](is_err=False, return_value=1, execution_time=0)
    )
    client = Redis.from_url(redis_url)
    try:
        assert 99_000 < await client.pttl(backend.keys.result(task_id)) <= 100_000
        assert 99_000 < await client.pttl(backend.keys.progress(task_id)) <= 100_000
        # The scheduled TTL (1100 s) survives the later writes without due_at.
        assert await client.pttl(backend.keys.status(task_id)) > 1_000_000
        assert await client.hget(backend.keys.status(task_id), "status") == b'"success"'
    finally:
        await client.aclose()
    keep = await make_backend(result_ttl=None)
    await write(keep, task_id, TaskStatus.PENDING, kicked_at=now + 1, attempt=1)
    client = Redis.from_url(redis_url)
    try:
        assert await client.pttl(backend.keys.status(task_id)) == -1
    finally:
        await client.aclose()


@pytest.mark.parametrize("backend_kind", ["postgres"])
async def test_postgres_purges_expired_rows(make_backend: MakeBackend) -> None:
    backend = await make_backend(result_ttl=0.2, purge_batch=2)
    assert isinstance(backend, PostgresResultBackend)
    ids = [new_id() for _ in range(3)]
    for task_id in ids:
        await write(backend, task_id, TaskStatus.SUCCESS)
    await asyncio.sleep(0.4)
    deleted = 0
    while (batch := await backend.purge_expired()) > 0:
        assert batch <= 2
        deleted += batch
    assert deleted >= 3
    conn = await asyncpg.connect(backend.url)
    try:
        left = await conn.fetchval(
            f'SELECT count(*) FROM "{backend.table}" WHERE task_id = ANY($1)', ids
        )
    finally:
        await conn.close()
    assert left == 0


async def test_postgres_concurrent_startup_creates_table_once(postgres_url: str) -> None:
    table = f"kit_test_startup_{uuid.uuid4().hex[:12]}"
    backends = [
        PostgresResultBackend(postgres_url, table=table, purge_interval=0.05, max_pool_size=2)
        for _ in range(5)
    ]
    try:
        await asyncio.gather(*(backend.startup() for backend in backends))
        await write(backends[0], "t", TaskStatus.PENDING)
        record = await backends[4].get_record("t")
        assert record is not None
        await asyncio.sleep(0.1)  # the purger runs without disturbing anything
    finally:
        await asyncio.gather(*(backend.shutdown() for backend in backends))
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        finally:
            await conn.close()


@pytest.mark.parametrize(
    "table", ["", "1abc", "a-b", 'x"; DROP TABLE users; --', "a.b.c", "x" * 49]
)
def test_postgres_table_name_is_validated(table: str) -> None:
    with pytest.raises(ValueError, match="invalid table name"):
        PostgresResultBackend("postgresql://127.0.0.1/test", table=table)


def test_factory_selects_backends() -> None:
    assert isinstance(make_result_backend("redis://127.0.0.1:6379/0"), RedisResultBackend)
    assert isinstance(make_result_backend("rediss://127.0.0.1:6380/0"), RedisResultBackend)
    for url in ("postgresql://127.0.0.1:5432/test", "postgres://u:secret@127.0.0.1/test"):
        backend = make_result_backend(url, result_ttl=None)
        assert isinstance(backend, PostgresResultBackend)
        assert backend.result_ttl is None
        assert "secret" not in repr(backend)


def test_factory_names_the_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(MissingExtraError, match=r"taskiq-kit\[postgres\]"):
        make_result_backend("postgresql://127.0.0.1:5432/test")
