"""Dead letters through the public API, on every transport: list, replay, delete, purge, bad input."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from taskiq_kit import TaskNotFoundError, TaskStatus, get_status, get_task_record
from taskiq_kit.exceptions import DeadLetterNotFoundError, InvalidCursorError
from taskiq_kit.inspect import (
    delete_dead_letters,
    list_dead_letters,
    list_tasks,
    purge_dead_letters,
    replay_all_dead_letters,
    replay_dead_letters,
)
from taskiq_kit.inspect.dead_letters import PREVIEW_CHARS, encode_cursor
from taskiq_kit.labels import RETRIES
from tests.brokers import BROKER_KINDS, BrokerHarness
from tests.inspect.dead_letters_support import (
    all_dead_letters,
    eventually,
    figures,
    task_body,
)
from tests.inspect.test_queues_figures import worker


async def make_dead_letters(harness: BrokerHarness, count: int) -> list[str]:
    """Kick ``count`` messages of a task no worker knows; return their task ids, in kick order."""
    broker = harness.broker
    before = len(await all_dead_letters(broker))
    ids = []
    for index in range(count):
        task_id = f"dead-{index}-{uuid.uuid4().hex}"
        ids.append(task_id)
        await broker.kick(task_body(broker, f"unknown-{uuid.uuid4().hex}", task_id))

    async def all_there() -> bool:
        return len(await all_dead_letters(broker)) == before + count

    await eventually(all_there, 10, f"{count} dead letters")
    return ids


@pytest.fixture(params=BROKER_KINDS)
async def running(
    request: pytest.FixtureRequest, unique_name: Callable[[str], str]
) -> AsyncIterator[BrokerHarness]:
    from tests.inspect.dead_letters_support import idle_broker  # noqa: PLC0415

    async with idle_broker(request.param, unique_name) as built, worker(built.broker):
        yield built


async def test_poison_is_listed_replayed_and_run(running: BrokerHarness) -> None:
    broker = running.broker
    name = f"late-{uuid.uuid4().hex}"
    task_id = f"poison-{uuid.uuid4().hex}"
    # Its third attempt (a retry middleware's re-kick): the replay makes it a first one.
    message = task_body(broker, name, task_id, labels={RETRIES: "2"})
    await broker.kick(message)

    async def listed() -> bool:
        return any(d.task_id == task_id for d in await all_dead_letters(broker))

    await eventually(listed, 10, "the dead letter")
    (dead,) = [d for d in await all_dead_letters(broker) if d.task_id == task_id]
    assert "unknown task" in dead.reason
    assert dead.task_name == name
    assert dead.queue == (await figures(broker)).name
    assert dead.dead_lettered_at is not None
    assert dead.preview.startswith("{")
    assert task_id in dead.preview
    assert len(dead.preview) <= PREVIEW_CHARS

    # Its record says so (a failure whose result is the dead-lettering), so a caller waiting for
    # the result is not left waiting, and "which tasks failed" lists it.
    async def recorded() -> bool:
        try:
            return await get_status(broker, task_id) is TaskStatus.FAILURE
        except TaskNotFoundError:
            return False

    await eventually(recorded, 10, "the dead-lettered task's failure record")
    failed = await get_task_record(broker, task_id)
    assert failed.reason is not None
    assert failed.reason.startswith("dead-lettered: unknown task")
    assert failed.error is not None
    assert failed.error.type.endswith("TaskDeadLetteredError")
    result = await broker.result_backend.get_result(task_id)
    assert result.is_err
    assert task_id in [t.task_id for t in (await list_tasks(broker, status="failure")).tasks]

    ran: list[str] = []

    @broker.task(task_name=name)  # the fix is deployed: the worker knows the task now
    async def late() -> str:
        ran.append("ran")
        return "done"

    report = await replay_dead_letters(broker, [dead.id])
    assert report.replayed == 1
    assert report.missing == []

    async def succeeded() -> bool:
        try:
            return await get_status(broker, task_id) is TaskStatus.SUCCESS
        except TaskNotFoundError:
            return False

    await eventually(succeeded, 10, "the replayed task to succeed")
    assert ran == ["ran"]
    record = await get_task_record(broker, task_id)
    assert record.attempt == 1
    assert record.kicked_at is not None
    assert record.kicked_at > (dead.dead_lettered_at or 0) - 1
    assert [d for d in await all_dead_letters(broker) if d.task_id == task_id] == []


async def test_pages_are_oldest_first_and_cursors_checked(running: BrokerHarness) -> None:
    broker = running.broker
    ids = await make_dead_letters(running, 5)
    seen: list[str] = []
    cursor = None
    sizes = []
    while True:
        page = await list_dead_letters(broker, limit=2, cursor=cursor)
        assert page.total == 5
        sizes.append(len(page.dead_letters))
        seen.extend(d.task_id or "" for d in page.dead_letters)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sizes == [2, 2, 1]
    assert sorted(seen) == sorted(ids)
    times = [d.dead_lettered_at or 0 for d in await all_dead_letters(broker)]
    assert times == sorted(times)
    kind = running.kind
    for bad in (
        "garbage",
        "",
        encode_cursor("elsewhere", "1"),
        encode_cursor(kind, "not a position"),
        "eyJ4IjoxfQ",
    ):
        with pytest.raises(InvalidCursorError):
            await list_dead_letters(broker, cursor=bad)


async def test_missing_ids_are_reported_and_the_others_done(running: BrokerHarness) -> None:
    broker = running.broker
    await make_dead_letters(running, 3)
    first, second, third = await all_dead_letters(broker)
    with pytest.raises(DeadLetterNotFoundError, match="no-such-id") as raised:
        await replay_dead_letters(broker, [first.id, "no-such-id", "1-1"])
    assert "1 other(s) done" in str(raised.value)

    # The replayed one is dead-lettered again (its task is still unknown), under a new id.
    async def first_back() -> bool:
        return any(d.task_id == first.task_id for d in await all_dead_letters(broker))

    await eventually(first_back, 10, "the replayed message back in the dead letters")
    with pytest.raises(DeadLetterNotFoundError, match=first.id):
        await delete_dead_letters(broker, [second.id, first.id])
    left = await all_dead_letters(broker)
    assert sorted(d.task_id or "" for d in left) == sorted(
        [third.task_id or "", first.task_id or ""]
    )
    assert first.id not in [d.id for d in left]
    assert await purge_dead_letters(broker) == 2
    assert await all_dead_letters(broker) == []
    assert (await figures(broker)).dead_lettered == 0
    # Replaying all of nothing is no error.
    assert (await replay_all_dead_letters(broker)).replayed == 0


async def test_replay_all_reports_progress_and_resets_the_record(running: BrokerHarness) -> None:
    broker = running.broker
    ids = await make_dead_letters(running, 4)
    calls: list[tuple[int, int]] = []
    report = await replay_all_dead_letters(
        broker, progress=lambda done, total: calls.append((done, total))
    )
    assert report.replayed == 4
    assert calls[-1] == (4, 4)
    # The task is still unknown: each is dead-lettered again, as a fresh kick (attempt 1).

    async def back() -> bool:
        return len(await all_dead_letters(broker)) == 4

    await eventually(back, 10, "the replayed messages to be dead-lettered again")
    assert sorted(d.task_id or "" for d in await all_dead_letters(broker)) == sorted(ids)
    assert all("unknown task" in d.reason for d in await all_dead_letters(broker))
