"""A replayed dead letter meets flow control: its limits apply again, as to any fresh kick."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from taskiq.kicker import AsyncKicker

from taskiq_kit import KitBroker, get_task_record, make_broker
from taskiq_kit.flow import policy as wire
from taskiq_kit.flow.policy import kick_labels, read_policy
from taskiq_kit.inspect import list_tasks, replay_dead_letters
from taskiq_kit.results.record import TaskStatus
from tests.inspect.dead_letters_support import all_dead_letters, eventually, task_body
from tests.inspect.test_queues_figures import worker
from tests.results.conftest import delete_redis_keys


@pytest.fixture(params=["memory", "redis"])
async def running(
    request: pytest.FixtureRequest, unique_name: Callable[[str], str]
) -> AsyncIterator[KitBroker]:
    """A started broker consumed in this process whose store flow control can use."""
    if request.param == "memory":
        broker = make_broker("memory://")
    else:
        redis_url = request.getfixturevalue("redis_url")
        prefix = unique_name("flowreplay")
        broker = make_broker(
            redis_url, queue_name=prefix, key_prefix=prefix, result_options={"prefix": prefix}
        )
    await broker.startup()
    try:
        async with worker(broker):
            yield broker
    finally:
        await broker.shutdown()
        if request.param == "redis":
            await delete_redis_keys(redis_url, f"{prefix}:*")


async def test_replay_of_a_rate_deferred_dead_letter_is_rate_limited(
    running: KitBroker,
) -> None:
    broker = running
    name = f"limited-{uuid.uuid4().hex}"
    task_id = f"reserved-{uuid.uuid4().hex}"
    # A message that flow control had put off once (it holds a rate reservation, long used up)
    # and that was dead-lettered afterwards (here: its task unknown to the worker then).
    labels = kick_labels(read_policy({"rate_limit": "1/h"}, name), {}, name, (), {})
    labels |= {wire.FLOW: "1", wire.RESERVED: "1", wire.DEFERRALS: "1"}
    await broker.kick(task_body(broker, name, task_id, labels=labels))

    async def listed() -> bool:
        return any(d.task_id == task_id for d in await all_dead_letters(broker))

    await eventually(listed, 10, "the dead letter")
    (dead,) = [d for d in await all_dead_letters(broker) if d.task_id == task_id]

    ran: list[str] = []

    @broker.task(task_name=name, rate_limit="1/h")
    async def limited(tag: str = "kick") -> None:
        ran.append(tag)

    first = await limited.kiq("first")  # takes the hour's one run

    async def first_done() -> bool:
        return await broker.result_backend.is_result_ready(first.task_id)

    await eventually(first_done, 10, "the first run")
    deferred = broker.flow.deferred
    assert (await replay_dead_letters(broker, [dead.id])).replayed == 1

    async def put_off() -> bool:
        return broker.flow.deferred > deferred or len(ran) > 1

    await eventually(put_off, 10, "the replay to meet the rate limit")
    assert ran == ["first"], "the replay ran past the rate limit"
    record = await get_task_record(broker, task_id)
    assert record.status is TaskStatus.SCHEDULED
    assert record.reason is not None
    assert "rate limit" in record.reason


async def test_replay_of_a_debounced_dead_letter_runs_though_a_later_kick_was_the_latest(
    running: KitBroker,
) -> None:
    broker = running
    name = f"debounced-{uuid.uuid4().hex}"
    task_id = f"dead-debounced-{uuid.uuid4().hex}"
    key = f"debounce\x1f{name}\x1fdoc-1"
    await broker.kick(
        task_body(broker, name, task_id, labels={wire.FLOW: "1", wire.DEBOUNCE_KEY: key})
    )

    async def listed() -> bool:
        return any(d.task_id == task_id for d in await all_dead_letters(broker))

    await eventually(listed, 10, "the dead letter")
    (dead,) = [d for d in await all_dead_letters(broker) if d.task_id == task_id]
    # A later kick of the same key was the window's latest (and has run since).
    await broker.flow.store.set_latest(key, "a-later-kick", 60.0)

    ran = asyncio.Event()

    @broker.task(task_name=name)
    async def debounced() -> None:
        ran.set()

    # The operator sends it back on purpose: it runs, not "superseded" by that older kick.
    assert (await replay_dead_letters(broker, [dead.id])).replayed == 1

    async def settled() -> bool:
        return ran.is_set() or broker.flow.superseded > 0

    await eventually(settled, 10, "the replay to run or be dropped")
    assert broker.flow.superseded == 0, "the replay was dropped as superseded"
    assert ran.is_set()
    record = await get_task_record(broker, task_id)
    assert record.reason is None


async def test_a_replayed_task_record_keeps_its_queue_and_arguments(running: KitBroker) -> None:
    broker = running
    name = f"late-{uuid.uuid4().hex}"
    # Kicked with its arguments while no worker knows the task: dead-lettered.
    kicker: AsyncKicker[Any, Any] = AsyncKicker(task_name=name, broker=broker, labels={})
    task = await kicker.kiq(7, note="hello")
    before = await get_task_record(broker, task.task_id)
    assert before.queue is not None
    assert before.args == "[7]"

    async def listed() -> bool:
        return any(d.task_id == task.task_id for d in await all_dead_letters(broker))

    await eventually(listed, 10, "the dead letter")
    (dead,) = [d for d in await all_dead_letters(broker) if d.task_id == task.task_id]
    assert (await replay_dead_letters(broker, [dead.id])).replayed == 1
    record = await get_task_record(broker, task.task_id)
    assert record.kicked_at is not None
    assert before.kicked_at is not None
    assert record.kicked_at > before.kicked_at  # the replay's kick
    assert (record.queue, record.args, record.kwargs) == (before.queue, "[7]", before.kwargs)
    assert [t.task_id for t in (await list_tasks(broker, queue=before.queue)).tasks] == [
        task.task_id
    ]
