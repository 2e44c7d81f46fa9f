"""``make_broker("memory://")`` as a drop-in for taskiq's ``InMemoryBroker`` in tests.

Each test is a behaviour a test suite written against ``InMemoryBroker`` relies on. What differs
by design (errors come back as data, delays are honoured) is pinned here too, as documented in
docs/memory.md.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Annotated, Any

import pytest
from taskiq import Context, SimpleRetryMiddleware, TaskiqDepends, TaskiqEvents, TaskiqState
from taskiq.abc.middleware import TaskiqMiddleware

from taskiq_kit import MemoryBroker, TaskFailedError, TaskStatus, get_status, make_broker


def _broker(**options: Any) -> MemoryBroker:
    broker = make_broker("memory://", **options)
    assert isinstance(broker, MemoryBroker)
    return broker


async def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.005)


async def test_await_inplace_returns_after_the_run() -> None:
    broker = _broker(await_inplace=True, max_async_tasks=1)
    order: list[str] = []

    @broker.task
    async def child() -> str:
        order.append("child")
        return "child done"

    @broker.task
    async def parent() -> str:
        order.append("parent")
        # Kicked in place from a running task: with one slot it must not wait for itself.
        inner = await child.kiq()
        assert await inner.is_ready()
        return "parent done"

    task = await parent.kiq()
    assert order == ["parent", "child"]
    assert await task.is_ready()
    assert (await task.get_result()).return_value == "parent done"
    assert await get_status(broker, task.task_id) is TaskStatus.SUCCESS
    assert broker.pending == 0


async def test_result_is_not_ready_while_the_task_runs() -> None:
    broker = _broker()
    release = asyncio.Event()

    @broker.task
    async def slow() -> int:
        await release.wait()
        return 42

    task = await slow.kiq()
    assert not await task.is_ready()
    release.set()
    await broker.wait_all(timeout=5)
    assert await task.is_ready()
    assert (await task.get_result()).return_value == 42


async def test_max_async_tasks_bounds_the_tasks_running_at_once() -> None:
    broker = _broker(max_async_tasks=2)
    running = 0
    most = 0
    go = asyncio.Event()

    @broker.task
    async def held() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await go.wait()
        running -= 1

    for _ in range(5):
        await held.kiq()
    await _until(lambda: running == 2)
    go.set()
    await broker.wait_all(timeout=5)
    assert most == 2
    assert broker.pending == 0


async def test_sync_tasks_run_in_worker_threads() -> None:
    broker = _broker(sync_tasks_pool_size=2)

    @broker.task
    def blocking(x: int) -> list[int]:
        time.sleep(0.01)
        return [x, threading.get_ident()]

    task = await blocking.kiq(7)
    result = await task.wait_result(timeout=5)
    value, thread = result.return_value
    assert value == 7
    assert thread != threading.get_ident()
    await broker.shutdown()


def prefix() -> str:
    return ">"


async def test_dependencies_context_and_state() -> None:
    broker = _broker()

    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    async def open_resources(state: TaskiqState) -> None:
        state.greeting = "hello"

    @broker.task
    async def described(
        name: str,
        context: Annotated[Context, TaskiqDepends()],
        state: Annotated[TaskiqState, TaskiqDepends()],
        mark: Annotated[str, TaskiqDepends(prefix)],
    ) -> str:
        return f"{mark}{state.greeting} {name} ({context.message.task_id})"

    await broker.startup()
    try:
        task = await described.kiq("world")
        result = await task.wait_result(timeout=5)
        assert result.return_value == f">hello world ({task.task_id})"
    finally:
        await broker.shutdown()


async def test_both_sides_hooks_and_middlewares_start_and_stop() -> None:
    calls: list[str] = []

    class Recording(TaskiqMiddleware):
        async def startup(self) -> None:
            calls.append("middleware startup")

        async def shutdown(self) -> None:
            calls.append("middleware shutdown")

    broker = _broker().with_middlewares(Recording())
    for event in TaskiqEvents:

        def record(state: TaskiqState, event: TaskiqEvents = event) -> None:
            calls.append(event.value)

        broker.add_event_handler(event, record)

    await broker.startup()
    await broker.shutdown()
    assert sorted(calls) == sorted(
        [
            TaskiqEvents.CLIENT_STARTUP.value,
            TaskiqEvents.WORKER_STARTUP.value,
            "middleware startup",
            TaskiqEvents.CLIENT_SHUTDOWN.value,
            TaskiqEvents.WORKER_SHUTDOWN.value,
            "middleware shutdown",
        ]
    )


@pytest.mark.parametrize("await_inplace", [False, True])
async def test_retry_that_keeps_the_failure_as_result_runs(await_inplace: bool) -> None:
    """``SimpleRetryMiddleware(no_result_on_retry=False)``: the retry is not a duplicate."""
    broker = _broker(await_inplace=await_inplace).with_middlewares(
        SimpleRetryMiddleware(no_result_on_retry=False)
    )
    runs = 0

    @broker.task(retry_on_error=True, max_retries=3)
    async def flaky() -> str:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ValueError("first run fails")
        return "ok"

    task = await flaky.kiq()
    await broker.wait_all(timeout=5)
    assert runs == 2
    assert await get_status(broker, task.task_id) is TaskStatus.SUCCESS
    if not await_inplace:  # in place, the first run stores its failure after the retry (taskiq too)
        assert (await task.get_result()).return_value == "ok"


async def test_arguments_cast_to_annotations_unless_cast_types_is_off() -> None:
    for cast_types, expected in ((True, "int"), (False, "str")):
        broker = _broker(cast_types=cast_types)

        @broker.task(task_name=f"kind-{cast_types}")
        async def kind(x: int) -> str:
            return type(x).__name__

        raw: Any = "1"  # a string where the task says int: the point of the test
        task = await kind.kiq(raw)
        assert (await task.wait_result(timeout=5)).return_value == expected


async def test_by_design_errors_come_back_as_data() -> None:
    """As from the Redis and PostgreSQL stores: the reading side gets TaskFailedError."""
    broker = _broker()

    @broker.task
    async def fails() -> None:
        raise KeyError("missing")

    result = await (await fails.kiq()).wait_result(timeout=5)
    assert result.is_err
    with pytest.raises(TaskFailedError) as caught:
        result.raise_for_error()
    assert caught.value.error_type == "KeyError"
    assert "missing" in caught.value.error_message


async def test_pickle_results_give_back_the_exception_itself() -> None:
    """``result_options={"serializer": "pickle"}``: InMemoryBroker's ``pytest.raises(KeyError)``."""
    broker = _broker(result_options={"serializer": "pickle"})

    @broker.task
    async def fails() -> None:
        raise KeyError("missing")

    result = await (await fails.kiq()).wait_result(timeout=5)
    with pytest.raises(KeyError, match="missing"):
        result.raise_for_error()
