"""A task that flow control puts off again and again keeps a timeline of what happened, not of each try."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from taskiq_kit import get_task_record
from taskiq_kit.results.record import TaskStatus
from tests.inspect.conftest import MakeBroker


async def test_repeated_deferrals_add_one_scheduled_entry(make_kit: MakeBroker) -> None:
    broker = await make_kit()
    release = asyncio.Event()

    @broker.task(task_name="timeline.capped", concurrency=1)
    async def capped(hold: bool) -> None:
        if hold:
            await release.wait()

    try:
        await _deferred_again_and_again(broker, capped, release)
    finally:
        release.set()


async def _deferred_again_and_again(broker: Any, capped: Any, release: asyncio.Event) -> None:
    holder = await capped.kiq(True)
    deadline = time.monotonic() + 10
    while (await get_task_record(broker, holder.task_id)).status is not TaskStatus.STARTED:
        assert time.monotonic() < deadline, "the first run did not start"
        await asyncio.sleep(0.01)
    waiting = await capped.kiq(False)
    # It asks for the slot again and again (50 ms, doubling): put off each time.
    while broker.flow.deferred < 5:
        assert time.monotonic() < deadline, "the second run was not put off"
        await asyncio.sleep(0.01)
    record = await get_task_record(broker, waiting.task_id)
    assert record.status is TaskStatus.SCHEDULED
    statuses = [status for status, _ in record.timeline]
    assert statuses == [TaskStatus.PENDING, TaskStatus.SCHEDULED], statuses
    release.set()
    await waiting.wait_result(timeout=10)
    record = await get_task_record(broker, waiting.task_id)
    statuses = [status for status, _ in record.timeline]
    assert statuses == [
        TaskStatus.PENDING,
        TaskStatus.SCHEDULED,
        TaskStatus.STARTED,
        TaskStatus.SUCCESS,
    ], statuses
