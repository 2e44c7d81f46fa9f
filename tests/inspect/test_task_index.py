"""The task index contract, on every store: list_tasks and count_tasks through the public API."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from taskiq.middlewares import SimpleRetryMiddleware

from taskiq_kit import KitBroker
from taskiq_kit.exceptions import InvalidCursorError, InvalidQueryError
from taskiq_kit.inspect import count_tasks, list_tasks
from taskiq_kit.redis.connect import close_client, make_client
from taskiq_kit.results.record import TaskStatus
from tests.inspect.conftest import MakeBroker, redis_store_url


def tasks_of(broker: KitBroker) -> tuple[Any, Any]:
    @broker.task(task_name="inspect.add")
    async def add(a: int, b: int = 0) -> int:
        return a + b

    @broker.task(task_name="inspect.boom")
    async def boom(reason: str) -> None:
        raise ValueError(reason)

    return add, boom


async def settle(broker: KitBroker, tasks: list[Any]) -> None:
    for task in tasks:
        await task.wait_result(timeout=10)


async def test_statuses_counts_and_status_filter(make_kit: MakeBroker) -> None:
    broker = await make_kit()
    add, boom = tasks_of(broker)
    done = [await add.kiq(i, b=1) for i in range(4)]
    failed = [await boom.kiq("no") for _ in range(2)]
    later = await add.kicker().with_labels(delay=60).kiq(100)
    await settle(broker, done + failed)

    counts = await count_tasks(broker)
    assert counts[TaskStatus.SUCCESS] == 4
    assert counts[TaskStatus.FAILURE] == 2
    assert counts[TaskStatus.SCHEDULED] == 1
    assert set(counts) == set(TaskStatus)
    assert sum(counts.values()) == 7

    page = await list_tasks(broker, status=["failure", "scheduled"])
    assert {r.task_id for r in page.tasks} == {t.task_id for t in failed} | {later.task_id}
    assert page.next_cursor is None
    only = await list_tasks(broker, status=TaskStatus.SUCCESS)
    assert {r.task_id for r in only.tasks} == {t.task_id for t in done}


async def test_filters(make_kit: MakeBroker) -> None:
    broker = await make_kit()
    add, boom = tasks_of(broker)
    first = [await add.kiq(i) for i in range(3)]
    await settle(broker, first)
    middle = time.time()
    await asyncio.sleep(0.01)
    second = [await add.kiq(i) for i in range(2)] + [await boom.kiq("x")]
    await settle(broker, second)

    by_name = await list_tasks(broker, task_name="inspect.boom")
    assert [r.task_id for r in by_name.tasks] == [second[-1].task_id]
    assert (await count_tasks(broker, task_name="inspect.add"))[TaskStatus.SUCCESS] == 5
    by_queue = await list_tasks(broker, queue="memory")
    assert len(by_queue.tasks) == 6
    assert (await list_tasks(broker, queue="elsewhere")).tasks == []
    since = await list_tasks(broker, since=middle)
    assert {r.task_id for r in since.tasks} == {t.task_id for t in second}
    until = await list_tasks(broker, until=middle)
    assert {r.task_id for r in until.tasks} == {t.task_id for t in first}
    counted = await count_tasks(broker, until=middle)
    assert counted[TaskStatus.SUCCESS] == 3
    assert counted[TaskStatus.FAILURE] == 0

    wanted = second[0].task_id
    piece = wanted[5:14].upper()
    assert [r.task_id for r in (await list_tasks(broker, search=piece)).tasks] == [wanted]
    assert len((await list_tasks(broker, search="BOO")).tasks) == 1
    assert (await count_tasks(broker, search="inspect.A"))[TaskStatus.SUCCESS] == 5
    combined = await list_tasks(broker, status="failure", task_name="inspect.add")
    assert combined.tasks == []


async def test_pages_cover_every_task_once_newest_first(make_kit: MakeBroker) -> None:
    broker = await make_kit()
    add, _ = tasks_of(broker)
    kicked = [await add.kiq(i) for i in range(23)]
    await settle(broker, kicked)

    seen: list[str] = []
    kicks: list[float] = []
    cursor = None
    pages = 0
    while True:
        page = await list_tasks(broker, limit=5, cursor=cursor)
        pages += 1
        assert len(page.tasks) <= 5
        seen += [r.task_id for r in page.tasks]
        kicks += [r.kicked_at or 0.0 for r in page.tasks]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 5
    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == {t.task_id for t in kicked}
    assert kicks == sorted(kicks, reverse=True)
    # A filtered listing pages the same way.
    first = await list_tasks(broker, task_name="inspect.add", limit=20)
    rest = await list_tasks(broker, task_name="inspect.add", limit=20, cursor=first.next_cursor)
    assert len(first.tasks) == 20
    assert len(rest.tasks) == 3
    assert rest.next_cursor is None


async def test_record_keeps_queue_arguments_and_timeline(make_kit: MakeBroker) -> None:
    broker = await make_kit()
    add, boom = tasks_of(broker)
    ok = await add.kiq(2, b=3)
    bad = await boom.kiq("bad input")
    await settle(broker, [ok, bad])

    page = await list_tasks(broker)
    records = {r.task_id: r for r in page.tasks}
    record = records[ok.task_id]
    assert record.queue == "memory"
    assert json.loads(record.args or "") == [2]
    assert json.loads(record.kwargs or "") == {"b": 3}
    assert not record.args_truncated
    assert [status for status, _ in record.timeline] == ["pending", "started", "success"]
    times = [at for _, at in record.timeline]
    assert times == sorted(times)
    assert record.kicked_at is not None
    assert times[0] >= record.kicked_at
    assert [status for status, _ in records[bad.task_id].timeline][-1] == "failure"


async def test_arguments_cut_redacted_or_left_out(make_kit: MakeBroker) -> None:
    def mask(name: str, args: Any, kwargs: Any) -> tuple[list[Any], dict[str, Any]] | None:
        if name == "inspect.boom":
            return None
        return ["***" for _ in args], dict.fromkeys(kwargs, "***")

    masked = await make_kit(record_args=mask, record_args_limit=32)
    add, boom = tasks_of(masked)
    shown = await add.kiq(7, b=8)
    hidden = await boom.kiq("secret")
    await settle(masked, [shown, hidden])
    records = {r.task_id: r for r in (await list_tasks(masked)).tasks}
    assert json.loads(records[shown.task_id].args or "") == ["***"]
    assert json.loads(records[shown.task_id].kwargs or "") == {"b": "***"}
    assert records[hidden.task_id].args is None

    long_args = await make_kit(record_args_limit=32)
    add, _ = tasks_of(long_args)
    task = await add.kiq(10**60, b=1)
    await settle(long_args, [task])
    (record,) = (await list_tasks(long_args)).tasks
    assert record.args_truncated
    assert record.args is not None
    assert len(record.args.encode()) <= 32
    assert record.args.endswith("...")

    nothing = await make_kit(record_args=False)
    add, _ = tasks_of(nothing)
    task = await add.kiq(1)
    await settle(nothing, [task])
    (record,) = (await list_tasks(nothing)).tasks
    assert record.args is None
    assert record.kwargs is None


async def test_expired_records_leave_index_and_counts(
    make_kit: MakeBroker, store: str, request: pytest.FixtureRequest
) -> None:
    broker = await make_kit(result_ttl=1.0)
    add, _ = tasks_of(broker)
    kicked = [await add.kiq(i) for i in range(5)]
    await settle(broker, kicked)
    assert (await count_tasks(broker))[TaskStatus.SUCCESS] == 5

    deadline = time.monotonic() + 10
    while True:
        left = sum((await count_tasks(broker)).values())
        if not left or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert left == 0
    assert (await list_tasks(broker)).tasks == []
    if store.startswith("redis"):
        # The index's sorted sets are trimmed too, not only hidden.
        backend: Any = broker.result_backend
        client = make_client(redis_store_url(request, store))
        try:
            index = backend.keys.index()
            assert await client.zcard(index + "all") == 0
            assert await client.hlen(index + "entries") == 0
            assert await client.zcard(index + "status:success") == 0
        finally:
            await close_client(client)


@pytest.mark.parametrize(
    "store",
    [
        "redis",
        pytest.param("redis-cluster", marks=[pytest.mark.slow, pytest.mark.cluster]),
        pytest.param("redis-sentinel", marks=[pytest.mark.slow, pytest.mark.cluster]),
    ],
)
async def test_redis_listing_drops_entries_whose_record_is_gone(
    make_kit: MakeBroker, store: str, request: pytest.FixtureRequest
) -> None:
    broker = await make_kit()
    add, _ = tasks_of(broker)
    kicked = [await add.kiq(i) for i in range(3)]
    await settle(broker, kicked)
    backend: Any = broker.result_backend
    client = make_client(redis_store_url(request, store))
    try:
        await client.delete(backend.keys.status(kicked[0].task_id))
        page = await list_tasks(broker)
        assert {r.task_id for r in page.tasks} == {t.task_id for t in kicked[1:]}
        assert await client.zscore(backend.keys.index() + "all", kicked[0].task_id) is None
    finally:
        await close_client(client)
    assert (await count_tasks(broker))[TaskStatus.SUCCESS] == 2


async def test_bad_input_raises_typed_errors(make_kit: MakeBroker) -> None:
    broker = await make_kit()
    add, _ = tasks_of(broker)
    kicked = [await add.kiq(i) for i in range(3)]
    await settle(broker, kicked)
    page = await list_tasks(broker, limit=1)
    assert page.next_cursor is not None

    with pytest.raises(InvalidCursorError, match="not a cursor"):
        await list_tasks(broker, cursor="not-a-cursor")
    with pytest.raises(InvalidCursorError, match="other filters"):
        await list_tasks(broker, limit=1, cursor=page.next_cursor, status="failure")
    with pytest.raises(InvalidQueryError, match="status"):
        await list_tasks(broker, status=["success", "done"])
    for limit in (0, 1001, "5", True):
        with pytest.raises(InvalidQueryError, match="limit"):
            await list_tasks(broker, limit=limit)  # type: ignore[arg-type]
    with pytest.raises(InvalidQueryError, match="since"):
        await count_tasks(broker, since=10.0, until=5.0)
    # The cursor still works with its own filters.
    rest = await list_tasks(broker, limit=1, cursor=page.next_cursor)
    assert rest.tasks[0].task_id != page.tasks[0].task_id


async def test_a_retry_continues_the_timeline(make_kit: MakeBroker) -> None:
    broker = await make_kit()
    broker.add_middlewares(SimpleRetryMiddleware(default_retry_count=2))
    runs: list[int] = []

    @broker.task(task_name="inspect.flaky", retry_on_error=True)
    async def flaky() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("first run fails")
        return "ok"

    task = await flaky.kiq()
    result = await task.wait_result(timeout=10)
    assert result.return_value == "ok"
    (record,) = (await list_tasks(broker, task_name="inspect.flaky")).tasks
    assert record.attempt == 2
    assert [status for status, _ in record.timeline] == [
        "pending",
        "started",
        "retrying",
        "started",
        "success",
    ]
