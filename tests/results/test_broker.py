"""Backends behind a real broker: status transitions, progress, results, unserialisable values."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from taskiq import TaskiqDepends

from taskiq_kit import TaskStatus, get_status, get_task_record, make_broker
from taskiq_kit.exceptions import TaskFailedError
from taskiq_kit.memory import MemoryBroker
from taskiq_kit.results.api import get_progress, watch_progress
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.redis import RedisResultBackend
from taskiq_kit.results.tracker import Progress
from tests.results.conftest import MakeBackend, delete_redis_keys


@pytest.fixture
async def broker(make_backend: MakeBackend) -> AsyncIterator[MemoryBroker]:
    backend = await make_backend()
    broker = MemoryBroker(result_backend=backend)
    await broker.startup()
    yield broker
    await broker.shutdown()


async def wait_final(broker: MemoryBroker, task_id: str) -> TaskStatus:
    for _ in range(250):
        status = await get_status(broker, task_id)
        if status.is_final:
            return status
        await asyncio.sleep(0.02)
    pytest.fail(f"task {task_id} did not finish")


async def test_progress_status_and_result_end_to_end(broker: MemoryBroker) -> None:
    go = asyncio.Event()

    @broker.task(task_name=f"resize-{uuid.uuid4().hex}")
    async def resize(name: str, progress: Progress = TaskiqDepends()) -> dict[str, Any]:
        await progress.report(0.0, message="queued")
        await go.wait()
        for step in (1, 2, 3):
            await progress.report(step / 4, message=f"step {step}", meta={"step": step})
            await asyncio.sleep(0.02)
        await progress.report(1.0, message="done")
        return {"name": name, "size": [640, 480]}

    task = await resize.kiq("café.png")
    seen: list[float | None] = []

    async def watch() -> None:
        async for report in watch_progress(broker, task.task_id, poll_interval=0.1):
            seen.append(report.fraction)
            if report.fraction == 0.0:
                go.set()

    await asyncio.wait_for(watch(), 10)
    result = await task.wait_result(timeout=10)
    assert result.return_value == {"name": "café.png", "size": [640, 480]}
    assert seen[0] == 0.0
    assert seen[-1] == 1.0
    assert seen == sorted(seen)
    report = await get_progress(broker, task.task_id)
    assert report is not None
    assert report.message == "done"
    record = await get_task_record(broker, task.task_id)
    assert record.status is TaskStatus.SUCCESS
    assert record.started_at is not None
    assert record.finished_at is not None


async def test_unserialisable_return_value_fails_clearly(broker: MemoryBroker) -> None:
    @broker.task(task_name=f"bad-{uuid.uuid4().hex}")
    async def bad() -> object:
        return object()

    task = await bad.kiq()
    result = await task.wait_result(timeout=10)
    assert result.is_err
    assert isinstance(result.error, TaskFailedError)
    assert result.error.error_type == "taskiq_kit.exceptions.ResultNotSerializableError"
    assert "return value of type object is not JSON-serialisable" in result.error.error_message
    assert await wait_final(broker, task.task_id) is TaskStatus.FAILURE
    record = await get_task_record(broker, task.task_id)
    assert record.error is not None
    assert "not JSON-serialisable" in record.error.message


async def test_task_exception_is_reraised_on_the_reading_side(broker: MemoryBroker) -> None:
    @broker.task(task_name=f"boom-{uuid.uuid4().hex}")
    async def boom() -> None:
        raise RuntimeError("kaput ✗")

    task = await boom.kiq()
    result = await task.wait_result(timeout=10)
    with pytest.raises(TaskFailedError, match="RuntimeError: kaput ✗"):
        result.raise_for_error()
    assert await wait_final(broker, task.task_id) is TaskStatus.FAILURE


@pytest.mark.parametrize("backend_kind", ["redis"])
async def test_make_broker_with_redis_results(redis_url: str, backend_kind: str) -> None:
    broker = make_broker("memory://", result_url=redis_url, result_ttl=30)
    assert isinstance(broker.result_backend, RedisResultBackend)
    await broker.startup()
    task_id = ""
    try:

        @broker.task(task_name=f"double-{uuid.uuid4().hex}")
        async def double(x: int) -> int:
            return 2 * x

        task = await double.kiq(21)
        task_id = task.task_id
        assert (await task.wait_result(timeout=10)).return_value == 42
        assert isinstance(broker, MemoryBroker)
        assert await wait_final(broker, task_id) is TaskStatus.SUCCESS
    finally:
        await broker.shutdown()
        if task_id:
            await delete_redis_keys(redis_url, f"taskiq-kit:{{{task_id}}}:*")


async def test_make_broker_with_a_result_key_prefix(redis_url: str) -> None:
    # Several apps sharing one Redis keep their records apart by prefix.
    prefix = f"app-{uuid.uuid4().hex[:8]}"
    broker = make_broker(
        "memory://", result_url=redis_url, result_ttl=30, result_options={"prefix": prefix}
    )
    await broker.startup()
    try:

        @broker.task(task_name=f"triple-{uuid.uuid4().hex}")
        async def triple(x: int) -> int:
            return 3 * x

        task = await triple.kiq(7)
        assert (await task.wait_result(timeout=10)).return_value == 21
        assert await wait_final(broker, task.task_id) is TaskStatus.SUCCESS
        client = Redis.from_url(redis_url)
        try:
            keys = sorted(k.decode() for k in await client.keys(f"*{task.task_id}*"))
        finally:
            await client.aclose()
        assert keys
        assert all(key.startswith(f"{prefix}:{{{task.task_id}}}:") for key in keys), keys
    finally:
        await broker.shutdown()
        await delete_redis_keys(redis_url, f"{prefix}:*")


def test_backends_need_started(backend_kind: str) -> None:
    if backend_kind == "memory":
        return
    broker = make_broker("memory://", result_url=_URLS[backend_kind])
    backend: KitResultBackend[Any] = broker.result_backend
    with pytest.raises(Exception, match="not started"):
        asyncio.run(backend.get_record("x"))


_URLS = {
    "redis": "redis://127.0.0.1:6379/0",
    "postgres": "postgresql://127.0.0.1:5432/test",
    "redis-cluster": "redis+cluster://127.0.0.1:6379/",
    "redis-sentinel": "redis+sentinel://127.0.0.1:26379/mymaster/0",
}
