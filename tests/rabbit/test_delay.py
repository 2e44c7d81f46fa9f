"""Delays on the TTL ladder, against the real RabbitMQ."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable

import aio_pika
import pytest

from taskiq_kit import BrokerNotAvailableError
from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.rabbit import broker as rabbit_broker
from taskiq_kit.rabbit.delay import DelayMode, ladder_route
from taskiq_kit.rabbit.topology import ladder_queue_arguments
from tests.brokers import in_process_worker, make_harness
from tests.rabbit.harness import AMQP_URL, build, wait_until, wait_until_async

pytestmark = pytest.mark.rabbit


def test_ladder_route_spells_the_delay_in_binary() -> None:
    level, key = ladder_route(5, "orders", 4)
    assert level == 2
    assert key == "0.1.0.1.orders"
    with pytest.raises(ValueError, match="does not fit"):
        ladder_route(16, "orders", 4)


@pytest.mark.usefixtures("amqp_url")
async def test_short_delay_kicked_after_a_long_one_runs_on_time(
    unique_name: Callable[[str], str],
) -> None:
    async with make_harness("rabbit", unique_name) as harness:
        ran: dict[str, float] = {}

        @harness.broker.task(task_name=f"mark-{uuid.uuid4().hex}")
        async def mark(name: str) -> None:
            ran[name] = time.time()

        await mark.kicker().with_labels(delay=20).kiq("long")
        start = time.time()
        short = await mark.kicker().with_labels(delay=1).kiq("short")
        await short.wait_result(timeout=10)
        assert "long" not in ran
        assert 1.0 <= ran["short"] - start < 1.8


@pytest.mark.timeout(60)
@pytest.mark.usefixtures("amqp_url")
async def test_random_delays_never_run_early(unique_name: Callable[[str], str]) -> None:
    async with make_harness("rabbit", unique_name) as harness:
        lateness: dict[int, float] = {}
        due: dict[int, float] = {}

        @harness.broker.task(task_name=f"due-{uuid.uuid4().hex}")
        async def check(n: int) -> None:
            lateness[n] = time.time() - due[n]

        rng = random.Random(7)
        for n in range(200):
            delay = rng.uniform(0, 10)
            due[n] = time.time() + delay
            await check.kicker().with_labels(delay=delay).kiq(n)
        await wait_until(lambda: len(lateness) == 200, timeout=25)
        assert len(lateness) == 200, f"only {len(lateness)} of 200 delayed tasks ran"
        early = {n: late for n, late in lateness.items() if late < 0}
        assert not early, f"tasks ran early: {early}"
        # Generous on a shared 2-core machine; the benchmark measures precision.
        assert max(lateness.values()) < 2.0


@pytest.mark.usefixtures("amqp_url")
async def test_delay_longer_than_the_ladder_goes_round_again(
    unique_name: Callable[[str], str],
) -> None:
    # Two levels hold 3 s at most; a 4.5 s delay needs a second trip.
    async with build(unique_name, delay_levels=2) as harness:
        broker = harness.broker
        ran_at: list[float] = []

        @broker.task(task_name=f"long-{uuid.uuid4().hex}")
        async def stamp() -> None:
            ran_at.append(time.time())

        await broker.startup()
        try:
            async with in_process_worker(broker):
                due = time.time() + 4.5
                await stamp.kicker().with_labels(delay=4.5).kiq()
                assert await wait_until(lambda: bool(ran_at), 10)
        finally:
            await broker.shutdown()
        assert due <= ran_at[0] < due + 1.0


@pytest.mark.usefixtures("amqp_url")
async def test_ladder_queues_are_quorum_queues_dead_lettering_at_least_once(
    unique_name: Callable[[str], str],
) -> None:
    async with build(unique_name) as harness:
        broker = harness.broker
        assert isinstance(broker, RabbitBroker)
        await broker.startup()
        try:
            async with await aio_pika.connect(AMQP_URL) as connection:
                channel = await connection.channel()
                level = broker.names.level(3)
                # Declaring with the same arguments succeeds; any other would be refused.
                await channel.declare_queue(
                    level, durable=True, arguments=ladder_queue_arguments(3, broker.names.level(2))
                )
                # The dead-letter queue is a quorum queue too (with quorum task queues).
                await channel.declare_queue(
                    broker.names.dead_letter, durable=True, arguments={"x-queue-type": "quorum"}
                )
            arguments = ladder_queue_arguments(3, broker.names.level(2))
            assert arguments["x-queue-type"] == "quorum"
            assert arguments["x-dead-letter-strategy"] == "at-least-once"
            assert arguments["x-overflow"] == "reject-publish"
            assert arguments["x-message-ttl"] == 8000
        finally:
            await broker.shutdown()


@pytest.mark.usefixtures("amqp_url")
async def test_delayed_kick_whose_queue_is_deleted_meanwhile_is_dead_lettered(
    unique_name: Callable[[str], str],
) -> None:
    extra = unique_name("extra")
    async with build(unique_name, queues=[extra]) as harness:
        broker = harness.broker

        @broker.task(task_name=f"orphan-{uuid.uuid4().hex}")
        async def orphan() -> None:
            return None

        await broker.startup()
        try:
            await orphan.kicker().with_labels(delay=1.5, queue=extra).kiq()
            async with await aio_pika.connect(AMQP_URL) as connection:
                await (await connection.channel()).queue_delete(extra)
            dead: list[tuple[bytes, str]] = []

            async def arrived() -> bool:
                dead[:] = await harness.read_dead_letters()
                return bool(dead)

            await wait_until_async(arrived, 10)
            assert len(dead) == 1, "the delayed kick for the deleted queue was not dead-lettered"
        finally:
            await broker.shutdown()


@pytest.mark.usefixtures("amqp_url")
async def test_auto_mode_uses_the_ladder_even_where_the_plugin_is_enabled(
    unique_name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # This server has no plugin: a probe that finds one stands in for a server that has it.
    probed: list[str] = []

    async def plugin_enabled(url: str, exchange: str, *, timeout: float) -> bool:
        probed.append(exchange)
        return True

    monkeypatch.setattr(rabbit_broker, "probe_plugin", plugin_enabled)
    async with build(unique_name) as harness:
        broker = harness.broker
        assert isinstance(broker, RabbitBroker)
        assert broker.delay_mode is DelayMode.AUTO
        await broker.startup()
        try:
            assert not broker.publisher.plugin
            assert probed == []
        finally:
            await broker.shutdown()


@pytest.mark.usefixtures("amqp_url")
async def test_plugin_mode_fails_startup_without_the_plugin(
    unique_name: Callable[[str], str],
) -> None:
    async with build(unique_name, delay_mode="plugin") as harness:
        with pytest.raises(
            BrokerNotAvailableError, match="x-delayed-message plugin is not enabled"
        ):
            await harness.broker.startup()
        await harness.broker.shutdown()
