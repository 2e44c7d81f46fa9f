"""A long task's re-send that flow control puts off keeps its count of re-sends.

A sweep re-sends the kept message of a long task whose worker died, counting the re-sends so
that one killing every worker is dead-lettered after ``long_task_max_resends``. Flow control
sends a delivery over its rate limit again through the delay path, as a new message: the
count must travel with it, or such a task, rate-limited, is re-sent for ever.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import aio_pika
import pytest
from redis.asyncio import Redis

from taskiq_kit import TaskStatus, get_status, make_broker
from taskiq_kit.flow.long_parts import KeptMessage
from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.rabbit.long_tasks import RabbitLongTransport
from tests.brokers import in_process_worker
from tests.inspect.dead_letters_support import eventually
from tests.results.conftest import delete_redis_keys

pytestmark = [pytest.mark.rabbit, pytest.mark.redis]


async def test_a_rate_limited_resend_keeps_its_count_of_resends(
    amqp_url: str, redis_url: str, unique_name: Callable[[str], str]
) -> None:
    name = unique_name("longflow")
    broker = make_broker(
        amqp_url,
        exchange=name,
        queue_name=name,
        result_url=redis_url,
        result_options={"prefix": name},
    )
    assert isinstance(broker, RabbitBroker)
    release = asyncio.Event()

    @broker.task(task_name="hold", long=True, rate_limit="1/2s")
    async def hold(wait: bool) -> None:
        if wait:
            await release.wait()

    client = Redis.from_url(redis_url)
    await broker.startup()
    try:
        # The message of a long run whose worker died, as the sweep of another re-sends it
        # (its third re-send): taken off the queue here, sent back by the transport's resend.
        task = await hold.kiq(True)
        async with await aio_pika.connect(amqp_url) as connection:
            channel = await connection.channel()
            queue = await channel.get_queue(broker.names.default_queue, ensure=False)
            taken = await queue.get(timeout=5)
            assert taken is not None
            await taken.ack()
        kept_key = broker.result_backend.keys.long_kept()
        async with in_process_worker(broker):
            quick = await hold.kiq(False)  # takes the rate limit's slot for 2 s

            async def quick_done() -> bool:
                return await get_status(broker, quick.task_id) is TaskStatus.SUCCESS

            await eventually(quick_done, 10, "the first run")
            resent = KeptMessage(task.task_id, "hold", name, taken.body, resends=2)
            await RabbitLongTransport(broker.consumer, broker.publisher).resend(resent)

            async def kept() -> bool:
                return bool(await client.hexists(kept_key, task.task_id))

            # Put off by the rate limit (sent again through the delay path), then run and kept.
            await eventually(kept, 15, "the re-sent run to be kept in the store")
            assert broker.flow.deferred == 1
            record = json.loads(await client.hget(kept_key, task.task_id))
            release.set()

            async def done() -> bool:
                return await get_status(broker, task.task_id) is TaskStatus.SUCCESS

            await eventually(done, 10, "the long run to finish")
        assert record["resends"] == 3, "the re-send put off by the rate limit lost its count"
    finally:
        release.set()
        await broker.shutdown()
        async with await aio_pika.connect(amqp_url) as connection:
            await broker.topology.delete(await connection.channel())
        await client.aclose()
        await delete_redis_keys(redis_url, f"{name}:*")
