"""The memory broker's defects of issue #16: overlapping tasks, event loops, kicks before startup."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from taskiq.receiver import Receiver

from taskiq_kit import (
    AbortOutcome,
    MemoryBroker,
    TaskStatus,
    abort_task,
    get_status,
    make_broker,
)


def _memory_broker() -> MemoryBroker:
    broker = make_broker("memory://")
    assert isinstance(broker, MemoryBroker)
    return broker


async def test_wait_all_returns_when_tasks_overlap() -> None:
    broker = _memory_broker()
    started = 0
    all_started = asyncio.Event()

    @broker.task
    async def overlapping(count: int) -> None:
        nonlocal started
        started += 1
        if started == count:
            all_started.set()
        await all_started.wait()  # every run is in flight at once

    await broker.startup()
    try:
        tasks = [await overlapping.kiq(5) for _ in range(5)]
        await broker.wait_all(timeout=5)
        assert broker.pending == 0
        for task in tasks:
            assert await get_status(broker, task.task_id) is TaskStatus.SUCCESS
    finally:
        await broker.shutdown()


async def test_wait_all_returns_when_a_receiver_consumes_overlapping_tasks() -> None:
    """Under ``taskiq worker`` the Receiver acknowledges; each delivery is settled on its own."""
    broker = _memory_broker()
    broker.is_worker_process = True
    started = 0
    all_started = asyncio.Event()

    @broker.task
    async def overlapping(count: int) -> None:
        nonlocal started
        started += 1
        if started == count:
            all_started.set()
        await all_started.wait()

    await broker.startup()
    finish = asyncio.Event()
    with ThreadPoolExecutor(2) as pool:
        receiver = Receiver(broker=broker, executor=pool, run_startup=False, max_async_tasks=10)
        consumer = asyncio.create_task(receiver.listen(finish))
        try:
            for _ in range(4):
                await overlapping.kiq(4)
            await broker.wait_all(timeout=5)
            assert broker.pending == 0
        finally:
            finish.set()
            await asyncio.wait_for(consumer, 5)
            await broker.shutdown()


def test_one_broker_serves_one_event_loop_after_another() -> None:
    """``asyncio.run`` twice (or pytest-asyncio's loop per test) with a module-level broker."""
    broker = _memory_broker()

    @broker.task
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return 2 * x

    async def scenario(x: int, *, lifecycle: bool) -> int:
        if lifecycle:
            await broker.startup()
        task = await double.kiq(x)
        # A delayed task too: its timer belongs to this loop.
        later = await double.kicker().with_labels(delay=0.05).kiq(x + 1)
        await broker.wait_all(timeout=5)
        result = await task.wait_result(timeout=5)
        assert (await later.wait_result(timeout=5)).return_value == 2 * (x + 1)
        if lifecycle:
            await broker.shutdown()
        return int(result.return_value)

    assert asyncio.run(scenario(1, lifecycle=True)) == 2
    assert asyncio.run(scenario(2, lifecycle=True)) == 4
    assert asyncio.run(scenario(3, lifecycle=False)) == 6
    assert asyncio.run(scenario(4, lifecycle=False)) == 8


async def test_kiq_before_startup_runs_the_task() -> None:
    """taskiq's InMemoryBroker runs tasks kicked without startup(); so does memory://."""
    broker = _memory_broker()

    @broker.task
    async def greet(name: str) -> str:
        return f"hello {name}"

    task = await greet.kiq("world")
    result = await task.wait_result(timeout=5)
    assert result.return_value == "hello world"
    await broker.wait_all(timeout=5)
    assert await get_status(broker, task.task_id) is TaskStatus.SUCCESS


async def test_abort_reaches_a_task_kicked_before_startup() -> None:
    broker = _memory_broker()
    started = asyncio.Event()

    @broker.task
    async def endless() -> None:
        started.set()
        await asyncio.Event().wait()

    task = await endless.kiq()
    await asyncio.wait_for(started.wait(), 5)
    assert await abort_task(broker, task.task_id) is AbortOutcome.ABORTED_WHILE_RUNNING
    await broker.wait_all(timeout=5)
    assert await get_status(broker, task.task_id) is TaskStatus.ABORTED
