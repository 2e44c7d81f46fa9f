"""Abort on every broker: delayed, running async, running sync (token and interruption), bad input."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from taskiq import SmartRetryMiddleware, TaskiqDepends

from taskiq_kit import (
    AbortOutcome,
    AbortToken,
    InvalidTaskIdError,
    TaskNotFoundError,
    TaskStatus,
    abort_task,
    get_status,
    get_task_record,
)
from tests.brokers import BrokerHarness
from tests.contract.test_broker_contract import wait_for_status


async def wait_until(predicate: object, timeout: float = 10) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_abort_delayed_task_never_runs(harness: BrokerHarness) -> None:
    ran: list[int] = []

    @harness.broker.task(task_name=f"later-{uuid.uuid4().hex}")
    async def later() -> None:
        ran.append(1)

    task = await later.kicker().with_labels(delay=1.5).kiq()
    assert await abort_task(harness.broker, task.task_id) is AbortOutcome.ABORTED_BEFORE_START
    assert await get_status(harness.broker, task.task_id) is TaskStatus.ABORTED
    await asyncio.sleep(2.5)
    assert ran == []
    assert await get_status(harness.broker, task.task_id) is TaskStatus.ABORTED
    assert await abort_task(harness.broker, task.task_id) is AbortOutcome.ALREADY_ABORTED


async def test_abort_running_async_task_runs_its_cleanup(harness: BrokerHarness) -> None:
    started = asyncio.Event()
    events: list[str] = []

    @harness.broker.task(task_name=f"long-{uuid.uuid4().hex}")
    async def long_job() -> str:
        events.append("start")
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            events.append("cleanup")
        return "finished"

    task = await long_job.kiq()
    await asyncio.wait_for(started.wait(), 10)
    await wait_for_status(harness, task.task_id, TaskStatus.STARTED)
    before = time.monotonic()
    assert await abort_task(harness.broker, task.task_id) is AbortOutcome.ABORTED_WHILE_RUNNING
    assert time.monotonic() - before < 3
    assert events == ["start", "cleanup"]
    result = await task.wait_result(timeout=10)
    assert result.is_err
    assert "aborted" in str(result.error)
    record = await get_task_record(harness.broker, task.task_id)
    assert record.status is TaskStatus.ABORTED
    # Acknowledged, not redelivered: it does not start again.
    await asyncio.sleep(1.5)
    assert events == ["start", "cleanup"]


async def test_abort_sync_task_through_its_token(harness: BrokerHarness) -> None:
    started = threading.Event()
    seen_abort = threading.Event()

    @harness.broker.task(task_name=f"crunch-{uuid.uuid4().hex}")
    def crunch(token: AbortToken = TaskiqDepends()) -> str:
        started.set()
        if token.wait(timeout=20):
            seen_abort.set()
            token.raise_if_aborted()
        return "finished"

    task = await crunch.kiq()
    await asyncio.to_thread(started.wait, 10)
    await wait_for_status(harness, task.task_id, TaskStatus.STARTED)
    assert await abort_task(harness.broker, task.task_id) is AbortOutcome.ABORTED_WHILE_RUNNING
    assert seen_abort.is_set()
    assert await get_status(harness.broker, task.task_id) is TaskStatus.ABORTED


async def test_abort_interruptible_sync_task(harness: BrokerHarness) -> None:
    started = threading.Event()
    stopped = threading.Event()

    @harness.broker.task(task_name=f"spin-{uuid.uuid4().hex}", interruptible=True)
    def spin() -> None:
        started.set()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # pure Python: interruptible between bytecodes
                sum(range(100))
        finally:
            stopped.set()

    task = await spin.kiq()
    await asyncio.to_thread(started.wait, 10)
    await wait_for_status(harness, task.task_id, TaskStatus.STARTED)
    assert await abort_task(harness.broker, task.task_id) is AbortOutcome.ABORTED_WHILE_RUNNING
    assert stopped.is_set()


async def test_abort_finished_unknown_and_malformed(harness: BrokerHarness) -> None:
    @harness.broker.task(task_name=f"quick-{uuid.uuid4().hex}")
    async def quick() -> int:
        return 1

    task = await quick.kiq()
    await task.wait_result(timeout=10)
    await wait_for_status(harness, task.task_id, TaskStatus.SUCCESS)
    assert await abort_task(harness.broker, task.task_id) is AbortOutcome.ALREADY_FINISHED
    assert await get_status(harness.broker, task.task_id) is TaskStatus.SUCCESS
    with pytest.raises(TaskNotFoundError):
        await abort_task(harness.broker, uuid.uuid4().hex)
    for bad in ("", "x" * 300, "{hash-tag}", "..", "id with spaces", None, 42):
        with pytest.raises(InvalidTaskIdError):
            await abort_task(harness.broker, bad)  # type: ignore[arg-type]


async def test_retry_middleware_does_not_resurrect_an_aborted_task(harness: BrokerHarness) -> None:
    harness.broker.add_middlewares(SmartRetryMiddleware(default_delay=0.5))
    started = asyncio.Event()
    runs: list[float] = []

    @harness.broker.task(task_name=f"retry-{uuid.uuid4().hex}", retry_on_error=True, max_retries=5)
    async def stubborn() -> None:
        runs.append(time.monotonic())
        started.set()
        await asyncio.sleep(30)

    task = await stubborn.kiq()
    await asyncio.wait_for(started.wait(), 10)
    await wait_for_status(harness, task.task_id, TaskStatus.STARTED)
    assert await abort_task(harness.broker, task.task_id) is AbortOutcome.ABORTED_WHILE_RUNNING
    await asyncio.sleep(1.5)
    assert len(runs) == 1
    assert await get_status(harness.broker, task.task_id) is TaskStatus.ABORTED


async def test_abort_and_timeout_are_told_apart(harness: BrokerHarness) -> None:
    """An abort under a ``timeout`` label is an abort; a timeout with no abort stays a timeout."""
    started = asyncio.Event()

    @harness.broker.task(task_name=f"bounded-{uuid.uuid4().hex}")
    async def bounded() -> str:
        started.set()
        await asyncio.sleep(30)
        return "finished"

    aborted = await bounded.kicker().with_labels(timeout=60).kiq()
    await asyncio.wait_for(started.wait(), 10)
    await wait_for_status(harness, aborted.task_id, TaskStatus.STARTED)
    assert await abort_task(harness.broker, aborted.task_id) is AbortOutcome.ABORTED_WHILE_RUNNING
    result = await aborted.wait_result(timeout=10)
    assert "aborted" in str(result.error)
    assert await get_status(harness.broker, aborted.task_id) is TaskStatus.ABORTED

    timed_out = await bounded.kicker().with_labels(timeout=0.3).kiq()
    result = await timed_out.wait_result(timeout=10)
    assert result.is_err
    assert getattr(result.error, "error_type", None) == "TimeoutError", result.error
    await wait_for_status(harness, timed_out.task_id, TaskStatus.FAILURE)
    record = await get_task_record(harness.broker, timed_out.task_id)
    assert record.abort_requested_at is None


async def test_task_that_ignores_an_abort_keeps_running_normally(harness: BrokerHarness) -> None:
    """A coroutine may catch the abort's cancellation; what it awaits next is not cancelled."""
    started = asyncio.Event()
    steps: list[str] = []

    @harness.broker.task(task_name=f"stubborn-{uuid.uuid4().hex}")
    async def stubborn() -> str:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            steps.append("caught")
        await asyncio.sleep(0.05)  # not cancelled again
        try:
            await asyncio.wait_for(asyncio.sleep(5), 0.05)
        except asyncio.TimeoutError:  # a timeout inside still reads as a timeout
            steps.append("timed out")
        return "kept going"

    task = await stubborn.kiq()
    await asyncio.wait_for(started.wait(), 10)
    await wait_for_status(harness, task.task_id, TaskStatus.STARTED)
    await abort_task(harness.broker, task.task_id)
    result = await task.wait_result(timeout=10)
    assert result.return_value == "kept going"
    assert steps == ["caught", "timed out"]
