"""One rule for task ids: checked at kick, and the same in get_status and abort_task.

Ids such as ``order/1`` (what ``with_task_id`` users pick) work everywhere; ids no lookup could
serve are refused at kick, before anything is stored or sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis
from taskiq.kicker import AsyncKicker

from taskiq_kit import (
    AbortOutcome,
    InvalidTaskIdError,
    KitBroker,
    TaskNotFoundError,
    TaskStatus,
    abort_task,
    get_status,
    get_task_record,
)
from taskiq_kit.redis import RedisBroker
from tests.abort.helpers import redis_broker, running, wait_status

GOOD_IDS = ["order/1", "tenant:42/order#7?x=%20", "a.b-c_d~e|f", "x" * 200, "..."]
BAD_IDS = ["", "a b", "{tag}", "x" * 201, ".", "..", "caf\u00e9", "tab\t", "new\nline", "end\n"]


@pytest.fixture
async def broker(redis_url: str, unique_name: Callable[[str], str]) -> AsyncIterator[KitBroker]:
    async with (
        redis_broker(redis_url, unique_name("p"), unique_name("q")) as built,
        running(built),
    ):
        yield built


async def test_custom_ids_work_in_kick_status_and_abort(
    broker: KitBroker, unique_name: Callable[[str], str]
) -> None:
    @broker.task(task_name=unique_name("add"))
    async def add(a: int, b: int) -> int:
        return a + b

    for task_id in GOOD_IDS:
        handle = await add.kicker().with_task_id(task_id).kiq(1, 2)
        assert handle.task_id == task_id
        assert (await handle.wait_result(timeout=10, check_interval=0.02)).return_value == 3
        assert await get_status(broker, task_id) is TaskStatus.SUCCESS
        assert (await get_task_record(broker, task_id)).task_id == task_id
        assert await abort_task(broker, task_id) is AbortOutcome.ALREADY_FINISHED

    later = await add.kicker().with_task_id("order/2").with_labels(delay=60).kiq(1, 2)
    await wait_status(broker, later.task_id, TaskStatus.SCHEDULED)
    assert await abort_task(broker, "order/2") is AbortOutcome.ABORTED_BEFORE_START
    assert await get_status(broker, "order/2") is TaskStatus.ABORTED


@pytest.mark.parametrize("task_id", BAD_IDS)
async def test_bad_ids_are_refused_at_kick_before_anything_is_sent(
    broker: KitBroker, unique_name: Callable[[str], str], task_id: str
) -> None:
    ran: list[int] = []

    @broker.task(task_name=unique_name("never"))
    async def never() -> None:
        ran.append(1)

    assert isinstance(broker, RedisBroker)
    with pytest.raises(InvalidTaskIdError, match="printable ASCII") as caught:
        await never.kicker().with_task_id(task_id).kiq()
    assert isinstance(caught.value, ValueError)
    # taskiq's own kicker (as taskiq-pipelines and the scheduler use it) is held to the rule too.
    plain = AsyncKicker(task_name=never.task_name, broker=broker, labels={})
    with pytest.raises(InvalidTaskIdError):
        await plain.with_task_id(task_id).kiq()
    async with Redis.from_url(broker.url) as client:
        assert await client.xlen(broker.keys.ready) == 0
        assert await client.zcard(broker.keys.delayed) == 0
    assert ran == []

    for lookup in (get_status(broker, task_id), abort_task(broker, task_id)):
        with pytest.raises(InvalidTaskIdError, match="printable ASCII"):
            await lookup


async def test_unknown_good_id_is_not_found_not_invalid(broker: KitBroker) -> None:
    for call in (get_status(broker, "order/404"), abort_task(broker, "order/404")):
        with pytest.raises(TaskNotFoundError):
            await call
