"""Batched record writes under concurrency: 1,000 tasks at once, every record final and right."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import pytest

from taskiq_kit import TaskStatus, get_task_record
from taskiq_kit.results.postgres import PostgresResultBackend
from tests.brokers import in_process_worker
from tests.lifecycle.test_processes import _cleanup
from tests.lifecycle.worker_app import POSTGRES_URL, build

pytestmark = [pytest.mark.slow]

COUNT = 1000


@pytest.mark.timeout(120)
@pytest.mark.parametrize("config", ["redis", "rabbit", "rabbit-pg"])
async def test_1000_concurrent_tasks_every_record_final_and_matching(
    config: str, amqp_url: str, redis_url: str, postgres_url: str
) -> None:
    name = f"kit_test_{uuid.uuid4().hex[:10]}"
    options: dict[str, Any] = {"prefetch_count": COUNT} if config.startswith("rabbit") else {}
    broker = build(config, name, **options)

    @broker.task(task_name="echo")
    async def echo(number: int) -> dict[str, int]:
        await asyncio.sleep(0.2)  # all of them running at once
        return {"number": number}

    await broker.startup()
    try:
        async with in_process_worker(broker, max_async_tasks=COUNT):
            tasks = await asyncio.gather(*(echo.kiq(n) for n in range(COUNT)))
            deadline = time.monotonic() + 90
            for task in tasks:
                while not await task.is_ready():
                    assert time.monotonic() < deadline, "results did not all arrive"
                    await asyncio.sleep(0.05)
        for number, task in enumerate(tasks):
            record = await get_task_record(broker, task.task_id)
            assert record.status is TaskStatus.SUCCESS, record
            assert record.attempt == 1
            assert record.started_at is not None
            assert record.finished_at is not None
            assert record.kicked_at is not None
            assert record.kicked_at <= record.started_at <= record.finished_at
            assert (await task.get_result()).return_value == {"number": number}
        # The worker's writes (starts and ends) shared round trips.
        batcher = broker.lifecycle._batcher
        assert batcher is not None
        assert batcher.items >= 2 * COUNT
        assert batcher.flushes * 2 <= batcher.items, (batcher.flushes, batcher.items)
    finally:
        await broker.shutdown()
        await _cleanup(broker, name)
        if isinstance(broker.result_backend, PostgresResultBackend):
            conn = await asyncpg.connect(POSTGRES_URL)
            try:
                await conn.execute(f'DROP TABLE IF EXISTS "{name}"')
            finally:
                await conn.close()
