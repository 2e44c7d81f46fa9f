"""The Redis task index (its keys built inside Lua from the store's prefix) with odd prefixes."""

from __future__ import annotations

import uuid

import pytest

from taskiq_kit import TaskStatus, make_broker
from taskiq_kit.inspect import count_tasks, list_tasks
from taskiq_kit.results.redis_keys import ResultKeys
from tests.results.conftest import delete_redis_keys


@pytest.mark.redis
@pytest.mark.parametrize("odd", ["with space %s*?[x]", "a:b:c", "quote'\"\\", "ünï€ode"])
async def test_the_index_works_under_a_prefix_with_odd_characters(redis_url: str, odd: str) -> None:
    plain = f"kit-test-odd-{uuid.uuid4().hex[:8]}-"
    prefix = plain + odd
    broker = make_broker("memory://", result_url=redis_url, result_options={"prefix": prefix})

    @broker.task(task_name="odd.add")
    async def add(x: int) -> int:
        return x + 1

    await broker.startup()
    try:
        kicked = [await add.kiq(i) for i in range(3)]
        for task in kicked:
            assert (await task.wait_result(timeout=5)).return_value is not None
        first = await list_tasks(broker, limit=2)
        assert first.next_cursor is not None
        rest = await list_tasks(broker, limit=2, cursor=first.next_cursor)
        listed = [t.task_id for t in first.tasks + rest.tasks]
        assert sorted(listed) == sorted(task.task_id for task in kicked)
        assert (await count_tasks(broker, task_name="odd.add"))[TaskStatus.SUCCESS] == 3
    finally:
        await broker.shutdown()
        await delete_redis_keys(redis_url, f"{plain}*")


def test_a_prefix_with_a_nul_is_refused() -> None:
    # The record script separates the parts of a write with NUL, its event channel among them.
    with pytest.raises(ValueError, match="NUL"):
        ResultKeys("bad\0prefix")
