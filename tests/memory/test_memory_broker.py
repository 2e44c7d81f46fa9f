"""What is particular to the embedded memory:// broker."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from taskiq import SmartRetryMiddleware

from taskiq_kit import MemoryBroker, TaskStatus, get_status, make_broker


@pytest.fixture
async def broker() -> MemoryBroker:
    built = make_broker("memory://")
    assert isinstance(built, MemoryBroker)
    return built


async def test_many_delays_share_the_loop_and_run_in_due_order(broker: MemoryBroker) -> None:
    order: list[int] = []

    @broker.task
    async def mark(i: int) -> None:
        order.append(i)

    await broker.startup()
    try:
        tasks_before = len(asyncio.all_tasks())
        # Absolute due times, fixed before kicking: the order must not depend on how fast the
        # kicks go (a loaded machine can take more than the 5 ms between two due times).
        start = time.time() + 2.0
        for i in range(200):
            await mark.kicker().with_labels(eta=start + (199 - i) * 0.005).kiq(i)
        # Delayed tasks are timers, not 200 sleeping coroutines.
        assert len(asyncio.all_tasks()) - tasks_before < 5
        assert broker.pending == 200
        await broker.wait_all(timeout=10)
        assert order == list(reversed(range(200)))
    finally:
        await broker.shutdown()


async def test_shutdown_drops_pending_delays_and_says_so(
    broker: MemoryBroker, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[int] = []

    @broker.task
    async def later() -> None:
        ran.append(1)

    await broker.startup()
    task = await later.kicker().with_labels(delay=30).kiq()
    with caplog.at_level(logging.WARNING, logger="taskiq_kit.memory"):
        await broker.shutdown()
    assert "Dropping 1 delayed task" in caplog.text
    assert ran == []
    assert await get_status(broker, task.task_id) is TaskStatus.SCHEDULED


async def test_running_tasks_finish_on_shutdown(broker: MemoryBroker) -> None:
    finished: list[float] = []

    @broker.task
    async def slow() -> None:
        await asyncio.sleep(0.3)
        finished.append(time.time())

    await broker.startup()
    await slow.kiq()
    await asyncio.sleep(0.05)
    await broker.shutdown()
    assert len(finished) == 1


async def test_status_walks_through_retrying(broker: MemoryBroker) -> None:

    broker.add_middlewares(SmartRetryMiddleware(default_delay=0.5))
    seen: list[TaskStatus] = []
    calls = 0

    @broker.task(retry_on_error=True, max_retries=3)
    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("once")

    await broker.startup()
    try:
        task = await flaky.kiq()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            status = await get_status(broker, task.task_id)
            if not seen or seen[-1] is not status:
                seen.append(status)
            if status is TaskStatus.SUCCESS:
                break
            await asyncio.sleep(0.01)
        assert TaskStatus.RETRYING in seen
        assert seen[-1] is TaskStatus.SUCCESS
        assert seen.index(TaskStatus.RETRYING) < seen.index(TaskStatus.SUCCESS)
    finally:
        await broker.shutdown()


async def test_wait_all_times_out(broker: MemoryBroker) -> None:
    @broker.task
    async def later() -> None:
        return None

    await broker.startup()
    try:
        await later.kicker().with_labels(delay=5).kiq()
        with pytest.raises(asyncio.TimeoutError):
            await broker.wait_all(timeout=0.1)
    finally:
        await broker.shutdown()
