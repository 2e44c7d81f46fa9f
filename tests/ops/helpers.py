"""What the ops tests share: waiting for a task's final status."""

from __future__ import annotations

import asyncio
import time

from taskiq.abc.broker import AsyncBroker

from taskiq_kit import TaskNotFoundError, TaskStatus, get_status


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
