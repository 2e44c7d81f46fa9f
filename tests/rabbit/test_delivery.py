"""Confirmed kicks, typed errors, dead-lettering and delivery counting on the real RabbitMQ."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from taskiq.acks import AcknowledgeType
from taskiq.exceptions import SendTaskError
from taskiq.result import TaskiqResult
from taskiq.utils import maybe_awaitable

from taskiq_kit import BrokerNotAvailableError, UnroutableTaskError, make_broker
from taskiq_kit.kicker import KitKicker
from taskiq_kit.memory import MemoryResultBackend
from taskiq_kit.rabbit import RabbitBroker
from tests.brokers import in_process_worker
from tests.rabbit.harness import AMQP_URL, build, delete_topology, drain, wait_until
from tests.redis.harness import REDIS_URL

pytestmark = pytest.mark.rabbit


@pytest.mark.usefixtures("amqp_url")
@pytest.mark.parametrize("delay", [None, 5])
async def test_kick_to_a_queue_nobody_declared_raises(
    unique_name: Callable[[str], str], delay: int | None
) -> None:
    async with build(unique_name) as harness:
        await harness.broker.startup()
        try:

            @harness.broker.task(task_name="lost")
            async def lost() -> None:
                return None

            labels = {"queue": unique_name("nowhere")}
            if delay is not None:
                labels["delay"] = str(delay)
            # The typed error itself, which is a SendTaskError as taskiq's kiq() promises.
            with pytest.raises(UnroutableTaskError) as raised:
                await lost.kicker().with_labels(**labels).kiq()
            assert isinstance(raised.value, SendTaskError)
            assert "lost" in str(raised.value)
            # By name, as an API process that does not import the task's code kicks it.
            by_name = KitKicker[[], None](task_name="lost", broker=harness.broker, labels=labels)
            with pytest.raises(UnroutableTaskError):
                await by_name.kiq()
        finally:
            await harness.broker.shutdown()


async def test_kick_with_rabbitmq_down_raises_within_the_timeout() -> None:
    broker = make_broker("amqp://guest:guest@127.0.0.1:1/", publish_timeout=2, connect_timeout=2)

    @broker.task(task_name="nowhere")
    async def nowhere() -> None:
        return None

    started = time.monotonic()
    with pytest.raises(BrokerNotAvailableError) as raised:
        await nowhere.kiq()
    assert isinstance(raised.value, SendTaskError)
    assert "RabbitMQ" in str(raised.value)
    assert time.monotonic() - started < 3
    with pytest.raises(BrokerNotAvailableError):
        await broker.startup()
    assert time.monotonic() - started < 6


async def _crash_while_running(broker: RabbitBroker, *, start: bool = True) -> bytes:
    """Take one delivery as a worker would, start its task (or not), then die unsettled."""
    await broker.startup()
    listen = broker.listen()
    message = await anext(listen)
    if start:  # what taskiq's Receiver does first: the middlewares record the start
        for middleware in broker.middlewares:
            await maybe_awaitable(middleware.pre_execute(broker.formatter.loads(message.data)))
    # The task runs a moment (settling what the consumer settles on its own), then crashes:
    # the connection drops with the message unacknowledged.
    await asyncio.sleep(0.3)
    await broker.consume_connection.close()
    await listen.aclose()
    # The rest of the dead process goes too: its other connection, its abort listener and poll
    # (left open, they would be closed by GC later, or destroyed pending with the event loop).
    await broker.shutdown()
    return message.data


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("amqp_url", "redis_url")
@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_task_that_keeps_killing_workers_ends_in_the_dead_letter_queue(
    unique_name: Callable[[str], str], queue_type: str
) -> None:
    exchange, queue = unique_name("x"), unique_name("q")
    ran: list[int] = []

    def worker() -> RabbitBroker:
        # Records in a shared store: they count the runs that started across worker processes.
        broker = make_broker(
            AMQP_URL,
            result_url=REDIS_URL,
            result_options={"prefix": exchange},
            exchange=exchange,
            queue_name=queue,
            queue_type=queue_type,
            max_delivery_attempts=3,
        )
        assert isinstance(broker, RabbitBroker)
        broker.task(task_name="poison")(lambda: ran.append(1))
        return broker

    kicker = worker()
    await kicker.startup()
    channel = await (await kicker.connection.get()).channel()
    try:
        poison = kicker.find_task("poison")
        assert poison is not None
        task = await poison.kiq()
        # A delivery that dies before its task starts (prefetched by a dying worker) counts
        # nothing. (One only: RabbitMQ's own backstop, the quorum queue's x-delivery-limit of
        # max_delivery_attempts + 1, counts every return.)
        assert task.task_id.encode() in await _crash_while_running(worker(), start=False)
        for _ in range(3):
            assert task.task_id.encode() in await _crash_while_running(worker())
        record = await kicker.result_backend.get_record(task.task_id)
        assert record is not None
        assert record.runs == 3
        # The fifth delivery is refused by the gate and dead-lettered with the reason.
        survivor = worker()
        await survivor.startup()
        dead: list[tuple[bytes, str]] = []
        try:
            async with in_process_worker(survivor):
                deadline = time.monotonic() + 10
                while not dead and time.monotonic() < deadline:
                    dead = await drain(channel, kicker.names.dead_letter)
                    await asyncio.sleep(0.1)
        finally:
            await survivor.shutdown()
        assert ran == [], "the poison task ran again"
        assert len(dead) == 1
        body, reason = dead[0]
        assert task.task_id.encode() in body
        assert "started 3 times without finishing" in reason
    finally:
        await kicker.topology.delete(channel)
        await kicker.shutdown()
        redis = Redis.from_url(REDIS_URL)
        keys = [key async for key in redis.scan_iter(match=f"{exchange}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.mark.usefixtures("amqp_url")
async def test_priorities_on_classic_queues(unique_name: Callable[[str], str]) -> None:
    async with build(unique_name, queue_type="classic", max_priority=5) as harness:
        broker = harness.broker
        order: list[str] = []

        @broker.task(task_name="prio")
        async def prio(name: str) -> None:
            order.append(name)

        await broker.startup()
        try:
            for n in range(5):
                await prio.kicker().with_labels(priority=0).kiq(f"low{n}")
            await prio.kicker().with_labels(priority=5).kiq("high")
            async with in_process_worker(broker):
                await wait_until(lambda: len(order) == 6, timeout=10)
        finally:
            await broker.shutdown()
        assert order[0] == "high"


@pytest.mark.usefixtures("amqp_url")
async def test_queue_label_routes_to_another_task_queue(unique_name: Callable[[str], str]) -> None:
    other = unique_name("other")
    async with build(unique_name, queues=[other]) as harness:
        broker = harness.broker
        assert isinstance(broker, RabbitBroker)
        ran: list[str] = []

        @broker.task(task_name="where")
        async def where(tag: str) -> None:
            ran.append(tag)

        await broker.startup()
        try:
            # Nobody consumes yet: the messages must wait in the queue the label names.
            await where.kicker().with_labels(queue=other).kiq("now")
            await where.kicker().with_labels(queue=other, delay=1).kiq("later")
            await asyncio.sleep(1.5)
            channel = await (await broker.connection.get()).channel()
            default = await channel.declare_queue(broker.names.default_queue, passive=True)
            routed = await channel.declare_queue(other, passive=True)
            assert default.declaration_result.message_count == 0
            assert routed.declaration_result.message_count == 2
            await channel.close()
            async with in_process_worker(broker):
                assert await wait_until(lambda: len(ran) == 2, 10)
        finally:
            await broker.shutdown()
        assert sorted(ran) == ["later", "now"]


class _SlowSaves(MemoryResultBackend[Any]):
    """Holds every result save until released, so a crash can land before the ack."""

    def __init__(self) -> None:
        super().__init__()
        self.saving = asyncio.Event()
        self.release = asyncio.Event()

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        self.saving.set()
        await self.release.wait()
        await super().set_result(task_id, result)


@pytest.mark.usefixtures("amqp_url")
@pytest.mark.parametrize(
    ("ack_type", "runs_again"),
    [(AcknowledgeType.WHEN_SAVED, True), (AcknowledgeType.WHEN_RECEIVED, False)],
)
async def test_ack_waits_for_the_result_to_be_saved(
    unique_name: Callable[[str], str], ack_type: AcknowledgeType, runs_again: bool
) -> None:
    exchange, queue = unique_name("x"), unique_name("q")
    ran: list[str] = []

    def worker(backend: MemoryResultBackend[Any]) -> RabbitBroker:
        broker = make_broker(AMQP_URL, exchange=exchange, queue_name=queue)
        assert isinstance(broker, RabbitBroker)
        broker.result_backend = backend
        broker.task(task_name="job")(lambda: ran.append("run"))
        return broker

    slow = _SlowSaves()
    first = worker(slow)
    await first.startup()
    try:
        job = first.find_task("job")
        assert job is not None
        await job.kiq()
        async with in_process_worker(first, ack_type=ack_type):
            await asyncio.wait_for(slow.saving.wait(), 10)
            # The worker dies while the result is being saved.
            await first.consume_connection.close()
            slow.release.set()
        assert ran == ["run"]
        second = worker(MemoryResultBackend())
        await second.startup()
        try:
            async with in_process_worker(second):
                await wait_until(lambda: len(ran) == 2, 3)
        finally:
            await second.shutdown()
        assert len(ran) == (2 if runs_again else 1)
    finally:
        await first.shutdown()
        await delete_topology(first)
