"""A redelivered run that flow control puts off keeps its number when it comes back.

The delivery gate counts the starts of a message whose worker died (its record says
``started``), so that a task killing its worker is dead-lettered after ``max_attempts``. A
redelivery that meets a rate limit is sent again through the delay path as a new message
(the transport's delivery count starts again); the count must travel with it, or a task that
kills its worker once per rate interval is never dead-lettered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from taskiq_kit import get_task_record, make_broker
from taskiq_kit.redis import RedisBroker
from taskiq_kit.results.record import TaskStatus
from tests.brokers import in_process_worker
from tests.inspect.dead_letters_support import eventually
from tests.results.conftest import delete_redis_keys


@pytest.mark.redis
async def test_a_redelivery_put_off_by_a_rate_limit_keeps_its_run_number(
    redis_url: str, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("flowruns")
    broker = make_broker(
        redis_url,
        queue_name=name,
        key_prefix=name,
        idle_timeout=0.3,
        result_options={"prefix": name},
    )
    assert isinstance(broker, RedisBroker)
    release = asyncio.Event()
    runs: list[int] = []

    @broker.task(task_name="hold", rate_limit="1/2s")
    async def hold() -> None:
        record = await get_task_record(broker, task.task_id)
        runs.append(record.runs)
        await release.wait()

    client = Redis.from_url(redis_url)
    await broker.startup()
    try:
        await client.xgroup_create(broker.keys.ready, broker.keys.group, id="0", mkstream=True)
        task = await hold.kiq()
        # A worker takes the message, is admitted (its rate slot reserved), records its start
        # and dies: nothing settles the entry.
        (_, [(_, fields)]), *_ = await client.xreadgroup(
            broker.keys.group, "dead-worker", {broker.keys.ready: ">"}, count=1
        )
        message = broker.formatter.loads(fields[b"data"])
        assert await broker.flow.admit(message)
        assert (await broker.lifecycle.started(message, run=1)).applied

        async with in_process_worker(broker):
            # Reclaimed (delivery 2): the record says it started once; the rate limit puts it
            # off 2 s, through the delay path; it then runs as the message's second start.
            async def running() -> bool:
                return bool(runs)

            await eventually(running, 10, "the reclaimed task to run")
            assert broker.flow.deferred == 1
            release.set()

            async def done() -> bool:
                return (await get_task_record(broker, task.task_id)).status is TaskStatus.SUCCESS

            await eventually(done, 10, "the run to finish")
        assert runs == [2], "the run put off by the rate limit was counted as a first start"
    finally:
        release.set()
        await broker.shutdown()
        await client.delete(*broker.keys.all())
        await client.aclose()
        await delete_redis_keys(redis_url, f"{name}:*")
