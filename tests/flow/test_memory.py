"""Flow control on ``memory://`` (the in-process store): the behaviours, fast.

The same code paths run against Redis and PostgreSQL in ``test_processes.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from taskiq_kit import MemoryBroker, TaskStatus, get_status, get_task_record, make_broker
from taskiq_kit.exceptions import (
    FlowKeyError,
    FlowOptionTypeError,
    InvalidFlowOptionError,
    TaskiqKitError,
)
from taskiq_kit.flow import Concurrency, Debounce, RateLimit, Unique
from taskiq_kit.inspect import queue_figures


def _broker() -> MemoryBroker:
    broker = make_broker("memory://")
    assert isinstance(broker, MemoryBroker)
    return broker


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.005)


async def test_rate_limit_spaces_runs_and_says_why_in_the_record() -> None:
    broker = _broker()
    starts: list[float] = []

    @broker.task(rate_limit="20/s")
    async def limited(i: int) -> int:
        starts.append(time.monotonic())
        return i

    await broker.startup()
    try:
        tasks = [await limited.kiq(i) for i in range(6)]
        await asyncio.sleep(0.02)
        record = await get_task_record(broker, tasks[-1].task_id)
        assert record.status is TaskStatus.SCHEDULED
        assert record.reason == "rate limit 20/1s"
        assert record.due_at is not None
        await _until(lambda: len(starts) == 6)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        # 20/s: one run every 50 ms (the timer may fire a little late, never early).
        assert min(gaps) > 0.04
        assert (starts[-1] - starts[0]) == pytest.approx(0.25, abs=0.05)
        assert broker.flow.deferred == 5
        for task in tasks:
            assert (await task.wait_result(timeout=5)).return_value is not None
        assert await get_status(broker, tasks[-1].task_id) is TaskStatus.SUCCESS
    finally:
        await broker.shutdown()


async def test_rate_limit_per_key_limits_each_key_on_its_own() -> None:
    broker = _broker()
    starts: dict[str, list[float]] = {"a": [], "b": []}

    @broker.task(rate_limit=RateLimit(1, per=10.0, key=lambda customer, **_: customer))
    async def charge(customer: str) -> None:
        starts[customer].append(time.monotonic())

    await broker.startup()
    try:
        for customer in ("a", "b", "a"):
            await charge.kiq(customer)
        await _until(lambda: len(starts["a"]) + len(starts["b"]) == 2)
        assert len(starts["a"]) == 1  # the second "a" waits its 10 s; "b" did not
        assert len(starts["b"]) == 1
        assert broker.flow.deferred == 1
    finally:
        await broker.shutdown()


async def test_concurrency_never_exceeds_the_limit() -> None:
    broker = _broker()
    running = 0
    most = 0
    done: list[int] = []

    @broker.task(concurrency=2)
    async def capped(i: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        done.append(i)

    await broker.startup()
    try:
        await asyncio.gather(*(capped.kiq(i) for i in range(10)))
        await _until(lambda: len(done) == 10)
        assert most == 2
        assert broker.flow.deferred > 0
        assert not broker.flow._held  # every slot released
    finally:
        await broker.shutdown()


async def test_unique_for_returns_the_existing_handle_until_it_is_final() -> None:
    broker = _broker()
    release = asyncio.Event()
    runs: list[int] = []

    @broker.task(unique_for=60)
    async def rebuild(n: int) -> int:
        runs.append(n)
        await release.wait()
        return n

    await broker.startup()
    try:
        first = await rebuild.kiq(1)
        again = await asyncio.gather(*(rebuild.kiq(1) for _ in range(5)))
        other = await rebuild.kiq(2)  # other arguments: another key
        assert {task.task_id for task in again} == {first.task_id}
        assert other.task_id != first.task_id
        release.set()
        assert (await first.wait_result(timeout=5)).return_value == 1
        await other.wait_result(timeout=5)
        later = await rebuild.kiq(1)  # the first is final: a new task
        assert later.task_id != first.task_id
        await later.wait_result(timeout=5)
        assert sorted(runs) == [1, 1, 2]
    finally:
        await broker.shutdown()


async def test_debounce_runs_the_last_kick_and_supersedes_the_others() -> None:
    broker = _broker()
    ran: list[str] = []

    @broker.task(debounce=Debounce(0.2, key=lambda doc, **_: doc))
    async def reindex(doc: str, text: str) -> str:
        ran.append(text)
        return text

    await broker.startup()
    try:
        kicks = [await reindex.kiq("d1", f"v{i}") for i in range(4)]
        for task, successor in itertools.pairwise(kicks):
            record = await get_task_record(broker, task.task_id)
            assert record.status is TaskStatus.ABORTED
            assert record.reason == f"superseded by {successor.task_id}"
        assert (await kicks[-1].wait_result(timeout=5)).return_value == "v3"

        # The superseded deliveries (due at the same time) reach the gate and are dropped: wait
        # until the broker holds nothing delayed, ready or running, then count the runs.
        async def settled() -> bool:
            (queue,) = await queue_figures(broker)
            return queue.delayed == queue.ready == queue.in_flight == 0

        deadline = time.monotonic() + 5
        while not await settled():
            assert time.monotonic() < deadline, "the superseded deliveries never settled"
            await asyncio.sleep(0.01)
        assert ran == ["v3"]
    finally:
        await broker.shutdown()


def test_bad_options_fail_at_definition() -> None:
    broker = _broker()
    bad: list[tuple[str, object, type[Exception]]] = [
        ("rate_limit", "-1/s", InvalidFlowOptionError),
        ("rate_limit", "10/0s", InvalidFlowOptionError),
        ("rate_limit", "0/m", InvalidFlowOptionError),
        ("rate_limit", "ten per minute", InvalidFlowOptionError),
        ("rate_limit", RateLimit(5, per=0), InvalidFlowOptionError),
        ("rate_limit", RateLimit(5, per=-1.0), InvalidFlowOptionError),
        ("rate_limit", RateLimit(5, burst=0), InvalidFlowOptionError),
        ("rate_limit", 100, FlowOptionTypeError),
        ("rate_limit", RateLimit(5, key="customer"), FlowOptionTypeError),  # type: ignore[arg-type]
        ("concurrency", 0, InvalidFlowOptionError),
        ("concurrency", 2.5, FlowOptionTypeError),
        ("concurrency", Concurrency(1, lease=0.5), InvalidFlowOptionError),
        ("unique_for", 0, InvalidFlowOptionError),
        ("unique_for", "soon", FlowOptionTypeError),
        ("unique_for", Unique(float("inf")), InvalidFlowOptionError),
        ("debounce", -2, InvalidFlowOptionError),
        ("debounce", True, FlowOptionTypeError),
    ]
    for option, value, error in bad:
        with pytest.raises(error) as caught:
            broker.task(task_name=f"bad-{option}", **{option: value})(_noop)
        assert isinstance(caught.value, TaskiqKitError)
        assert option in str(caught.value)
    assert issubclass(FlowOptionTypeError, TypeError)
    with pytest.raises(InvalidFlowOptionError, match="not both"):
        broker.task(task_name="both", unique_for=5, debounce=1)(_noop)


async def _noop(*args: object, **kwargs: object) -> None:
    return None


async def test_a_key_function_that_fails_raises_at_kick_time() -> None:
    broker = _broker()

    @broker.task(rate_limit=RateLimit(5, key=lambda customer, **_: customer["id"]))
    async def charge(customer: dict[str, str]) -> None:
        return None

    @broker.task(unique_for=Unique(5, key=lambda *_, **__: None))
    async def weird() -> None:
        return None

    await broker.startup()
    try:
        with pytest.raises(FlowKeyError, match="KeyError") as caught:
            await charge.kiq({"name": "no id"})
        assert isinstance(caught.value, ValueError)
        with pytest.raises(FlowKeyError, match="returned None"):
            await weird.kiq()
        with pytest.raises(InvalidFlowOptionError):
            await charge.kicker().with_labels(rate_limit="5/0s").kiq({"id": "c1"})
    finally:
        await broker.shutdown()


def test_rate_text_forms() -> None:
    assert RateLimit.parse("100/m").interval == pytest.approx(0.6)
    assert RateLimit.parse("10/s").interval == pytest.approx(0.1)
    assert RateLimit.parse("5/2.5s").interval == pytest.approx(0.5)
    assert RateLimit.parse("3600/h").interval == pytest.approx(1.0)
    assert RateLimit.parse("2/30").interval == pytest.approx(15.0)
    assert RateLimit.parse("1/d").per == 86_400.0


async def test_a_plain_taskiq_kick_is_limited_too() -> None:
    """taskiq's own kicker (as its scheduler uses) sends no flow labels: the worker adds them."""
    from taskiq.kicker import AsyncKicker  # noqa: PLC0415

    broker = _broker()
    starts: list[float] = []

    @broker.task(rate_limit=RateLimit(1, per=10.0, key=lambda customer, **_: customer))
    async def charge(customer: str) -> None:
        starts.append(time.monotonic())

    await broker.startup()
    try:
        for customer in ("a", "a", "b"):
            kicker: AsyncKicker[Any, Any] = AsyncKicker(
                task_name=charge.task_name, broker=broker, labels=dict(charge.labels)
            )
            await kicker.kiq(customer=customer)
        await _until(lambda: len(starts) == 2)
        assert broker.flow.deferred == 1  # the second "a" waits; "b" has its own limit
    finally:
        await broker.shutdown()


async def test_a_store_of_one_process_is_refused_when_tasks_run_elsewhere() -> None:
    """``amqp://`` without ``result_url``: limits kept per process would be wrong; refused."""
    from taskiq_kit.exceptions import FlowStoreError  # noqa: PLC0415

    broker = make_broker("amqp://guest:guest@127.0.0.1:5672/")

    @broker.task(concurrency=1)
    async def capped() -> None:
        return None

    with pytest.raises(FlowStoreError, match="result_url="):
        await capped.kiq()


async def test_a_slot_is_renewed_while_its_run_outlasts_the_lease() -> None:
    broker = _broker()
    running = 0
    most = 0
    done: list[int] = []

    @broker.task(concurrency=Concurrency(1, lease=1.0))
    async def slow(i: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(1.5)  # longer than the lease: only renewals keep the slot
        running -= 1
        done.append(i)

    await broker.startup()
    try:
        await slow.kiq(1)
        await _until(lambda: running == 1)
        await slow.kiq(2)
        await _until(lambda: len(done) == 2)
        assert most == 1
        assert done == [1, 2]
    finally:
        await broker.shutdown()
