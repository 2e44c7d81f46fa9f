"""Delayed messages left in the classic ladder of an earlier release move to the quorum ladder."""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable

import aio_pika
import pytest
from aio_pika import ExchangeType

from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.rabbit.delay import delivery_binding, ladder_route, level_binding
from taskiq_kit.rabbit.publisher import DUE_AT_HEADER, QUEUE_HEADER, TASK_HEADER
from tests.brokers import in_process_worker
from tests.rabbit.harness import AMQP_URL, build, wait_until, wait_until_async

pytestmark = [pytest.mark.rabbit, pytest.mark.usefixtures("amqp_url")]

LEVELS = 4


async def _declare_classic_ladder(
    channel: aio_pika.abc.AbstractChannel, broker: RabbitBroker
) -> None:
    """The ladder as earlier releases declared it: classic queues under ``<exchange>.delay.<k>``."""
    names = broker.names
    below = await channel.declare_exchange(
        names.deliver,
        ExchangeType.TOPIC,
        durable=True,
        arguments={"alternate-exchange": names.dead_letter},
    )
    for k in range(LEVELS):
        exchange = await channel.declare_exchange(
            names.legacy_level(k), ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(
            names.legacy_level(k),
            durable=True,
            arguments={
                "x-queue-type": "classic",
                "x-message-ttl": 1000 * 2**k,
                "x-dead-letter-exchange": below.name,
            },
        )
        await queue.bind(exchange, routing_key=level_binding(k, LEVELS, "1"))
        await below.bind(exchange, routing_key=level_binding(k, LEVELS, "0"))
        below = exchange
    task_queue = await channel.declare_queue(names.default_queue, passive=True)
    await task_queue.bind(names.deliver, routing_key=delivery_binding(task_queue.name, LEVELS))


async def _delete_classic_ladder(
    channel: aio_pika.abc.AbstractChannel, broker: RabbitBroker
) -> None:
    for k in range(LEVELS):
        await channel.queue_delete(broker.names.legacy_level(k))
        await channel.exchange_delete(broker.names.legacy_level(k))


async def test_startup_moves_messages_out_of_the_classic_ladder(
    unique_name: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    async with build(unique_name, delay_levels=LEVELS) as harness:
        broker = harness.broker
        assert isinstance(broker, RabbitBroker)
        ran_at: list[float] = []

        @broker.task(task_name=f"old-{uuid.uuid4().hex}")
        async def old() -> None:
            ran_at.append(time.time())

        await broker.startup()  # a first start declares the task queue and the quorum ladder
        await broker.shutdown()
        connection = await aio_pika.connect(AMQP_URL)
        try:
            channel = await connection.channel()
            await _declare_classic_ladder(channel, broker)
            # A message an earlier release delayed by 8 s: in the classic level 3 for 8 s.
            due_at = time.time() + 8
            body = broker.formatter.dumps(old.kicker()._prepare_message()).message
            headers = {
                DUE_AT_HEADER: math.ceil(due_at * 1e6),
                QUEUE_HEADER: broker.names.default_queue,
                TASK_HEADER: old.task_name,
            }
            level, key = ladder_route(8, broker.names.default_queue, LEVELS)
            legacy = await channel.get_exchange(broker.names.legacy_level(level))
            await legacy.publish(aio_pika.Message(body, headers=headers, delivery_mode=2), key)
            old_queue = broker.names.legacy_level(level)
            assert (
                await channel.declare_queue(old_queue, passive=True)
            ).declaration_result.message_count == 1

            caplog.set_level(logging.INFO, logger="taskiq_kit.rabbit")
            await broker.startup()
            try:
                async with in_process_worker(broker):

                    async def moved() -> bool:
                        declared = await channel.declare_queue(old_queue, passive=True)
                        return declared.declaration_result.message_count == 0

                    moved_in_time = await wait_until_async(moved, 4)
                    assert moved_in_time, "the message stayed in the old ladder"
                    assert time.time() < due_at - 2, "too slow to tell a move from the old ladder"
                    assert await wait_until(lambda: bool(ran_at), 15)
            finally:
                await broker.shutdown()
            assert due_at <= ran_at[0] < due_at + 1.5
            found = [r for r in caplog.records if "classic delay ladder of an earlier" in r.message]
            assert len(found) == 1
            assert found[0].levelno == logging.WARNING
            assert any("Moved 1 delayed message" in r.message for r in caplog.records)
        finally:
            await _delete_classic_ladder(await connection.channel(), broker)
            await connection.close()
