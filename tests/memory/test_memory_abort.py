"""Abort of a task still queued when no worker consumes yet (the worker starts after the abort)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from taskiq.receiver import Receiver

from taskiq_kit import AbortOutcome, MemoryBroker, TaskStatus, abort_task, get_status, make_broker


async def test_queued_task_aborted_before_a_worker_starts_never_runs() -> None:
    broker = make_broker("memory://")
    assert isinstance(broker, MemoryBroker)
    broker.is_worker_process = (
        True  # like `taskiq worker`: nothing consumes until the Receiver runs
    )
    ran: list[str] = []

    @broker.task
    async def job(name: str) -> None:
        ran.append(name)

    await broker.startup()
    doomed = await job.kiq("doomed")
    kept = await job.kiq("kept")
    assert await get_status(broker, doomed.task_id) is TaskStatus.PENDING
    assert await abort_task(broker, doomed.task_id) is AbortOutcome.ABORTED_BEFORE_START

    finish = asyncio.Event()
    with ThreadPoolExecutor(2) as pool:
        receiver = Receiver(broker=broker, executor=pool, run_startup=False, max_async_tasks=10)
        consumer = asyncio.create_task(receiver.listen(finish))
        await kept.wait_result(timeout=5)
        await broker.wait_all(timeout=5)
        finish.set()
        await consumer
    await broker.shutdown()
    assert ran == ["kept"]
    assert await get_status(broker, doomed.task_id) is TaskStatus.ABORTED
    assert await get_status(broker, kept.task_id) is TaskStatus.SUCCESS
