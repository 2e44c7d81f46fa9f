"""Switching from taskiq-aio-pika: tasks left in the old queue are announced, then moved and run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aio_pika
import pytest
from taskiq.message import TaskiqMessage

from taskiq_kit import make_broker
from taskiq_kit.rabbit import RabbitBroker, RabbitNames, move_queue
from taskiq_kit.rabbit.migrate import OLD_DEFAULT_QUEUE, warn_of_stranded
from tests.brokers import in_process_worker
from tests.private.rabbit import PrivateRabbit
from tests.rabbit.harness import delete_topology

pytestmark = pytest.mark.rabbit


def test_the_kit_does_not_share_taskiq_aio_pikas_default_names() -> None:
    names = RabbitNames()
    assert names.exchange != "taskiq"
    assert OLD_DEFAULT_QUEUE not in names.queues


async def test_tasks_in_a_foreign_queue_move_to_the_kit_and_run(
    amqp_url: str, unique_name: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    old_queue = unique_name("old")
    broker = make_broker(amqp_url, exchange=unique_name("x"), queue_name=unique_name("q"))
    assert isinstance(broker, RabbitBroker)
    ran: list[int] = []
    done = asyncio.Event()

    @broker.task(task_name="migrate.record")
    async def record(n: int) -> int:
        ran.append(n)
        if len(ran) == 5:
            done.set()
        return n

    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        # As taskiq-aio-pika leaves it: a classic queue of taskiq message bodies.
        queue = await channel.declare_queue(old_queue, durable=True)
        for n in range(5):
            body = broker.formatter.dumps(
                TaskiqMessage(
                    task_id=f"old-{n}", task_name="migrate.record", labels={}, args=[n], kwargs={}
                )
            ).message
            await channel.default_exchange.publish(
                aio_pika.Message(body, message_id=f"old-{n}"), routing_key=old_queue
            )
        await broker.startup()
        try:
            assert await move_queue(broker, old_queue) == 5
            declared = await channel.declare_queue(old_queue, passive=True)
            assert declared.declaration_result.message_count == 0
            async with in_process_worker(broker):
                await asyncio.wait_for(done.wait(), 20)
            assert sorted(ran) == [0, 1, 2, 3, 4]
            # A source that does not exist moves nothing; the broker's own queue is refused.
            assert await move_queue(broker, unique_name("none")) == 0
            with pytest.raises(ValueError, match="own queues"):
                await move_queue(broker, broker.names.default_queue)
        finally:
            await broker.shutdown()
            await queue.delete(if_unused=False, if_empty=False)
            await delete_topology(broker)


async def test_tasks_stranded_in_the_old_default_queue_are_announced(
    private_rabbit: PrivateRabbit, caplog: pytest.LogCaptureFixture
) -> None:
    # The old default queue is named "taskiq" on every vhost: use the harness's private node.
    url = private_rabbit.url
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(OLD_DEFAULT_QUEUE, durable=True)
        broker = make_broker(url)
        assert isinstance(broker, RabbitBroker)
        try:
            for _ in range(3):
                await channel.default_exchange.publish(
                    aio_pika.Message(b"{}"), routing_key=OLD_DEFAULT_QUEUE
                )
            with caplog.at_level(logging.WARNING, logger="taskiq_kit.rabbit"):
                await broker.startup()
            stranded = [r for r in caplog.records if "no taskiq-kit worker consumes" in r.message]
            assert len(stranded) == 1, "the startup should say that tasks wait in the old queue"
            assert "3 message(s)" in stranded[0].getMessage()
            assert await move_queue(broker) == 3
            assert await warn_of_stranded(broker) == 0
        finally:
            await broker.shutdown()
            await queue.delete(if_unused=False, if_empty=False)
            await delete_topology(broker)
