"""An aborted task's cleanup is not cut short by the abort being found again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from taskiq_kit import AbortOutcome, TaskStatus, abort_task, get_status
from tests.brokers import in_process_worker
from tests.redis.harness import delete_keys, make_test_broker

pytestmark = [pytest.mark.redis]


async def test_cleanup_of_an_aborted_task_runs_to_its_end(
    unique_name: Callable[[str], str], redis_url: str
) -> None:
    # The reconciliation poll finds the tombstone of the still-running task many times while its
    # cleanup runs; only the first abort may cancel it.
    broker = make_test_broker(unique_name("q"), abort_poll_interval=0.02)
    started, cleaned = asyncio.Event(), asyncio.Event()

    @broker.task(task_name="careful")
    async def careful() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # cleanup spanning several polls
            cleaned.set()
            raise

    await broker.startup()
    try:
        async with in_process_worker(broker):
            task = await careful.kiq()
            await asyncio.wait_for(started.wait(), 10)
            outcome = await abort_task(broker, task.task_id, wait=5)
            assert outcome is AbortOutcome.ABORTED_WHILE_RUNNING
            assert cleaned.is_set()
            assert await get_status(broker, task.task_id) is TaskStatus.ABORTED
    finally:
        await broker.shutdown()
        await delete_keys(broker.keys)
