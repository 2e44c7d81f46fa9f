"""What the ops tests share: waiting for a task's status, cleaning a test's Redis keys."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis
from taskiq.abc.broker import AsyncBroker

from taskiq_kit import TaskNotFoundError, TaskStatus, get_status
from tests.ops.app import REDIS_URL


async def wait_status(
    broker: AsyncBroker, task_id: str, wanted: set[TaskStatus], timeout: float = 15.0
) -> TaskStatus:
    """Poll ``task_id``'s status until it is one of ``wanted`` (fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    status: TaskStatus | None = None
    while time.monotonic() < deadline:
        try:
            status = await get_status(broker, task_id)
        except TaskNotFoundError:
            status = None
        if status in wanted:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} is {status}, not one of {sorted(wanted)}")


async def wait_final(broker: AsyncBroker, task_id: str, timeout: float = 15.0) -> TaskStatus:
    """Poll ``task_id``'s status until it is final."""
    final = {status for status in TaskStatus if status.is_final}
    return await wait_status(broker, task_id, final, timeout)


async def forget(name: str) -> None:
    """Delete every Redis key of the test ``name`` (records, schedules, heartbeats)."""
    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=f"*{name}*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()
