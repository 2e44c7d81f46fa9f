"""The consumer's connection is closed by the server while deliveries are held or buffered."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from importlib.metadata import version

import aio_pika
import pytest

from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.rabbit.publisher import DUE_AT_HEADER, Outgoing
from tests.brokers import in_process_worker
from tests.private.rabbit import PrivateRabbit
from tests.rabbit.harness import AMQP_URL, build, wait_until

pytestmark = pytest.mark.rabbit


@pytest.mark.timeout(60)
async def test_worker_survives_losing_its_connection_with_held_deliveries(
    unique_name: Callable[[str], str], private_rabbit: PrivateRabbit
) -> None:
    # Connections are closed with rabbitmqctl: on the session's private node, not the shared one.
    async with build(unique_name, url=private_rabbit.url) as harness:
        broker = harness.broker
        assert isinstance(broker, RabbitBroker)
        # Hold deliveries up to 10 s in the worker (not the ladder), so the connection surely
        # drops while they are held, however slow rabbitmqctl is on a busy machine.
        broker.consumer.hold_limit = 10
        ran: Counter[str] = Counter()
        due_at = time.time() + 6

        @broker.task(task_name=f"held-{uuid.uuid4().hex}")
        async def held(tag: str) -> None:
            assert time.time() >= due_at, "ran early"
            ran[tag] += 1

        await broker.startup()
        try:
            async with in_process_worker(broker):
                headers = {DUE_AT_HEADER: math.ceil(due_at * 1e6)}
                for n in range(5):
                    body = broker.formatter.dumps(held.kicker()._prepare_message(f"d{n}")).message
                    out = Outgoing(body, headers, broker.names.default_queue, held.task_name)
                    await broker.publisher.send(out, None)  # straight to the task queue
                await asyncio.sleep(0.5)
                assert len(ran) == 0
                assert len(broker.consumer._held) == 5
                await asyncio.to_thread(
                    private_rabbit.close_connection, broker.consume_connection.name
                )
                assert time.time() < due_at - 1, "too slow to test held deliveries"
                assert await wait_until(lambda: len(ran) == 5, 20)
                await held.kiq("after")
                assert await wait_until(lambda: ran["after"] == 1, 10)
        finally:
            await broker.shutdown()
        # Deliveries from the dead channel were dropped, not run: RabbitMQ redelivered them.
        assert set(ran.values()) == {1}, ran


async def _queue_exists(name: str) -> bool:
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return False
        return True


@pytest.mark.timeout(60)
@pytest.mark.skipif(
    int(version("aiormq").split(".")[0]) < 7,
    reason="aiormq < 7 (Python 3.10) does not report consumers cancelled by RabbitMQ",
)
@pytest.mark.usefixtures("amqp_url")
async def test_worker_consumes_again_after_its_queue_is_deleted(
    unique_name: Callable[[str], str],
) -> None:
    """RabbitMQ cancels the consumer of a deleted queue; the worker declares it and consumes on."""
    async with build(unique_name) as harness:
        broker = harness.broker
        assert isinstance(broker, RabbitBroker)
        ran: list[str] = []

        @broker.task(task_name=f"survivor-{uuid.uuid4().hex}")
        async def survivor(tag: str) -> None:
            ran.append(tag)

        await broker.startup()
        try:
            async with in_process_worker(broker):
                await survivor.kiq("before")
                assert await wait_until(lambda: ran == ["before"], 10)
                queue = broker.names.default_queue
                async with await aio_pika.connect(AMQP_URL) as connection:
                    await (await connection.channel()).queue_delete(queue)
                deadline = time.monotonic() + 15
                while not await _queue_exists(queue):
                    assert time.monotonic() < deadline, "the worker did not declare its queue again"
                    await asyncio.sleep(0.2)
                await survivor.kiq("after")
                assert await wait_until(lambda: ran == ["before", "after"], 10), ran
        finally:
            await broker.shutdown()
