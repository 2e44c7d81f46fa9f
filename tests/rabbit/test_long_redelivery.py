"""A repeated delivery of a message the store keeps (a long task's) is dropped, not run."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import aio_pika
import pytest

from taskiq_kit.flow.long import KeptMessage, lease_store_of
from taskiq_kit.rabbit import RabbitBroker
from tests.brokers import in_process_worker
from tests.rabbit.harness import AMQP_URL, build, wait_until
from tests.results.conftest import delete_redis_keys

pytestmark = [pytest.mark.rabbit, pytest.mark.redis]


async def test_repeated_delivery_of_a_kept_message_is_dropped(
    unique_name: Callable[[str], str], redis_url: str
) -> None:
    # The worker that kept it lost its channel before its early ack went out: RabbitMQ delivers
    # the message again, but the store owns it now (its lease re-sends it if that worker dies).
    prefix = unique_name("long")
    async with build(
        unique_name, result_url=redis_url, result_options={"prefix": prefix}
    ) as harness:
        broker = harness.broker
        assert isinstance(broker, RabbitBroker)
        ran: list[int] = []

        @broker.task(task_name=f"long-{uuid.uuid4().hex}")
        async def record(n: int) -> None:
            ran.append(n)

        await broker.startup()
        try:
            kept = await record.kiq(1)
            store = lease_store_of(broker.result_backend)
            assert store is not None
            async with await aio_pika.connect(AMQP_URL) as connection:
                channel = await connection.channel()
                queue = await channel.get_queue(broker.names.default_queue, ensure=False)
                taken = await queue.get(no_ack=False, timeout=5)
                assert taken.message_id == kept.task_id
                await store.keep(
                    KeptMessage(kept.task_id, record.task_name, queue.name, taken.body),
                    owner="another worker",
                    until=time.time() + 60,
                )
            # The channel closed unacknowledged: the message is back, marked redelivered.
            after = await record.kiq(2)
            async with in_process_worker(broker):
                assert not (await after.wait_result(timeout=10)).is_err
                assert await wait_until(lambda: broker.consumer.kept_dropped == 1, 10)
            assert ran == [2]
            assert await store.is_kept(kept.task_id)  # still the other worker's
        finally:
            await broker.shutdown()
            await delete_redis_keys(redis_url, f"{prefix}:*")
