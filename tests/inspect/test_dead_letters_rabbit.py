"""Dead letters RabbitMQ made itself (``x-death``: a quorum queue's delivery limit) list and replay."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import aio_pika
import pytest

from taskiq_kit import TaskStatus, get_status
from taskiq_kit.inspect import replay_dead_letters
from tests.brokers import BROKER_KINDS, in_process_worker
from tests.inspect.dead_letters_support import all_dead_letters, eventually, figures, idle_broker

pytestmark = pytest.mark.skipif("rabbit" not in BROKER_KINDS, reason="RabbitMQ not under test")


async def test_delivery_limit_dead_letter_is_listed_and_replayed(
    amqp_url: str, unique_name: Callable[[str], str]
) -> None:
    async with idle_broker("rabbit", unique_name) as built:
        broker = built.broker
        ran: list[int] = []

        @broker.task(task_name=f"count-{uuid.uuid4().hex}")
        async def count() -> None:
            ran.append(1)

        task = await count.kiq()
        queue = (await figures(broker)).name
        # A consumer that keeps giving the message back: RabbitMQ dead-letters it at the limit.
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            source = await channel.get_queue(queue, ensure=False)
            returned = 0
            for _ in range(200):
                message = await source.get(no_ack=False, fail=False)
                if message is None:
                    if (await figures(broker)).dead_lettered == 1:
                        break
                    await asyncio.sleep(0.02)
                    continue
                await message.nack(requeue=True)
                returned += 1
        finally:
            await connection.close()
        assert returned > 1
        (dead,) = await all_dead_letters(broker)
        assert dead.id.startswith("r")
        assert "delivery_limit" in dead.reason
        assert dead.queue == queue
        assert dead.task_id == task.task_id
        assert dead.dead_lettered_at is not None
        # Listing gives the messages back: the same id again.
        assert [d.id for d in await all_dead_letters(broker)] == [dead.id]

        report = await replay_dead_letters(broker, [dead.id])
        assert report.replayed == 1
        after = await figures(broker)
        assert (after.ready, after.dead_lettered) == (1, 0)
        async with in_process_worker(broker):

            async def succeeded() -> bool:
                return await get_status(broker, task.task_id) is TaskStatus.SUCCESS

            await eventually(succeeded, 10, "the replayed task to succeed")
        assert ran == [1]
