"""The publisher's own confirmed publish (taskiq_kit.rabbit.confirmed) on the real RabbitMQ.

Each publish must be told RabbitMQ's answer to *that* publish: the tests make RabbitMQ answer
differently per message (a queue that refuses publishes beyond its length, unroutable messages
among routable ones) and check every outcome against what the queue really holds. They run on
the kit's publish and on aiormq's own ``basic_publish``, which must agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from importlib.metadata import version

import aiormq
import pytest
from pamqp.commands import Basic

from taskiq_kit import BrokerNotAvailableError, make_broker
from taskiq_kit.rabbit import RabbitBroker, confirmed
from taskiq_kit.rabbit.confirmed import publish_confirmed
from tests.private.rabbit import PrivateRabbit
from tests.rabbit.harness import AMQP_URL, delete_topology

pytestmark = [pytest.mark.rabbit, pytest.mark.usefixtures("amqp_url")]


@pytest.fixture(params=["kit", "aiormq"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run on the kit's publish, then on aiormq's ``basic_publish`` (the fallback)."""
    if request.param == "aiormq":
        monkeypatch.setattr(confirmed, "SUPPORTED", False)
    elif not confirmed.SUPPORTED:
        pytest.skip(f"aiormq {version('aiormq')}: the kit publishes through basic_publish")
    return str(request.param)


@pytest.fixture
async def channel() -> AsyncIterator[aiormq.Channel]:
    connection = await aiormq.connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        yield channel
    finally:
        await connection.close()


async def _publish(
    channel: aiormq.Channel, message_id: str | None, key: str, body: bytes, timeout: float = 10
) -> None:
    await publish_confirmed(
        channel,
        body,
        exchange="",
        routing_key=key,
        properties=Basic.Properties(message_id=message_id, delivery_mode=2),
        mandatory=True,
        timeout=timeout,
    )


async def _drain(channel: aiormq.Channel, queue: str) -> list[aiormq.abc.DeliveredMessage]:
    got = []
    while True:
        message = await channel.basic_get(queue, no_ack=True)
        if message.delivery_tag is None:  # GetEmpty
            return got
        got.append(message)


def test_the_kit_publish_is_used_with_this_aiormq() -> None:
    """Guards against a silent fallback: on aiormq 7 the kit's own publish must be on."""
    if version("aiormq").split(".")[0] != "7":
        pytest.skip("checked against aiormq 7 only")
    assert confirmed.SUPPORTED


async def test_each_publish_gets_its_own_ack_or_nack(
    path: str,
    channel: aiormq.Channel,
    unique_name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 100 queues that each take 4 messages and nack any publish beyond: of the 8 publishes that
    # go to each, RabbitMQ takes the first 4 to reach it. Publishes to all of them are mixed,
    # so a confirm matched to the wrong publish shows as a message held but reported refused,
    # or the reverse.
    queues = [unique_name(f"capped{n}") for n in range(100)]
    for queue in queues:
        await channel.queue_declare(
            queue, arguments={"x-max-length": 4, "x-overflow": "reject-publish"}
        )
    waits = 0
    put_by = confirmed._put_by

    async def counting_put_by(*args: object) -> None:
        nonlocal waits
        waits += 1
        await put_by(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(confirmed, "_put_by", counting_put_by)
    acked: set[str] = set()
    refused: set[str] = set()

    async def publisher(n: int) -> None:
        # One after another, so publishes join the write queue while others wait for room.
        for k in range(20):
            mid = f"m{n}-{k}"
            queue = queues[(n * 20 + k) * 37 % 100]  # 8 publishes to each queue
            try:
                await _publish(channel, mid, queue, mid.encode())
            except aiormq.exceptions.DeliveryError:
                refused.add(mid)
            else:
                acked.add(mid)

    try:
        await asyncio.gather(*(publisher(n) for n in range(40)))
        assert len(acked) == 400
        assert len(refused) == 400
        held: set[str] = set()
        for queue in queues:
            messages = await _drain(channel, queue)
            assert len(messages) == 4
            held.update(str(m.header.properties.message_id) for m in messages)
        assert held == acked
        if path == "kit":
            assert waits > 0  # publishes waited for room in the connection's write queue
        assert not channel.message_id_delivery_tag
        assert not [f for f in channel.confirmations.values() if not f.done()]
    finally:
        for queue in queues:
            await channel.queue_delete(queue)


async def test_unroutable_publishes_fail_and_their_neighbours_succeed(
    path: str, channel: aiormq.Channel, unique_name: Callable[[str], str]
) -> None:
    queue, nowhere = unique_name("routable"), unique_name("nowhere")
    await channel.queue_declare(queue)
    try:
        keys = [queue if n % 3 else nowhere for n in range(60)]
        outcomes = await asyncio.gather(
            *(_publish(channel, f"m{n}", key, b"x") for n, key in enumerate(keys)),
            return_exceptions=True,
        )
        for key, out in zip(keys, outcomes, strict=True):
            if key == nowhere:
                assert isinstance(out, aiormq.exceptions.PublishError), out
            else:
                assert out is None, out
        assert len(await _drain(channel, queue)) == keys.count(queue)
    finally:
        await channel.queue_delete(queue)


async def test_large_bodies_and_messages_without_an_id(
    path: str, channel: aiormq.Channel, unique_name: Callable[[str], str]
) -> None:
    queue = unique_name("big")
    await channel.queue_declare(queue)
    try:
        # Larger than RabbitMQ's frame size: split over several body frames.
        big = bytes(range(256)) * 2048
        assert len(big) > channel.max_content_size
        await _publish(channel, None, queue, big)
        await _publish(channel, None, queue, b"")
        # A return is matched by message id: one is made up when there is none (pamqp does not
        # send an empty one either).
        for no_id in (None, ""):
            with pytest.raises(aiormq.exceptions.PublishError):
                await _publish(channel, no_id, unique_name("nowhere"), b"lost")
        # No time left: nothing is sent.
        with pytest.raises(asyncio.TimeoutError):
            await _publish(channel, "late", queue, b"late", timeout=0)
        held = await _drain(channel, queue)
        assert [m.body for m in held] == [big, b""]
    finally:
        await channel.queue_delete(queue)


async def _unconfirmed_publishes(channel: aiormq.Channel, queue: str) -> None:
    """A publish RabbitMQ never confirms times out, or fails as the connection closes."""
    # RabbitMQ takes the publish that makes it block the connection; the later ones wait.
    with contextlib.suppress(asyncio.TimeoutError):
        await _publish(channel, "first", queue, b"x", timeout=0.3)

    async def after_a_swallowed_cancel() -> None:
        # Code that caught a CancelledError without uncancel(): the timeout is still a timeout.
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)
        with pytest.raises(asyncio.TimeoutError):
            await _publish(channel, "t", queue, b"x", timeout=0.3)

    await asyncio.create_task(after_a_swallowed_cancel())
    pending = asyncio.create_task(_publish(channel, "c", queue, b"x"))
    await asyncio.sleep(0.3)
    await channel.connection.close()
    # aiormq ends it with a CancelledError nobody asked for: the kick sees a connection error.
    with pytest.raises(ConnectionError):
        await pending


async def test_a_kick_that_rabbitmq_never_confirms_fails_within_the_timeout(
    path: str, unique_name: Callable[[str], str], private_rabbit: PrivateRabbit
) -> None:
    # In a memory alarm RabbitMQ stops reading from publishing connections: no confirm comes.
    # The alarm blocks every publisher of the server: the session's private node, not the shared.
    url = private_rabbit.url
    broker = make_broker(
        url, exchange=unique_name("x"), queue_name=unique_name("q"), publish_timeout=2
    )
    assert isinstance(broker, RabbitBroker)

    @broker.task(task_name="stuck")
    async def stuck() -> None:
        return None

    await broker.startup()
    # Connected before the alarm: RabbitMQ blocks a connection once it publishes in one.
    connection = await aiormq.connect(url)
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    queue = unique_name("direct")
    await channel.queue_declare(queue, auto_delete=True)
    try:
        await asyncio.to_thread(private_rabbit.set_memory_watermark, 0)
        try:
            started = time.monotonic()
            with pytest.raises(BrokerNotAvailableError):
                await stuck.kiq()
            assert time.monotonic() - started < 4
            if path == "kit":
                await _unconfirmed_publishes(channel, queue)
        finally:
            await asyncio.to_thread(private_rabbit.set_memory_watermark, 0.4)
        # The connection carries on once RabbitMQ reads again.
        await stuck.kiq()
    finally:
        await connection.close()
        await broker.shutdown()
        await delete_topology(broker)
