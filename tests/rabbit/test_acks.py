"""Batched acknowledgements (``Settler``) against the real RabbitMQ: a ``multiple`` ack never
covers a delivery that is not done, whatever order deliveries finish in."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import aio_pika
import pytest
from aiormq.abc import DeliveredMessage

from taskiq_kit.rabbit.settle import Settler
from tests.rabbit.harness import AMQP_URL, wait_until

pytestmark = [pytest.mark.rabbit, pytest.mark.usefixtures("amqp_url")]


async def _fill(channel: aio_pika.abc.AbstractChannel, queue: str, count: int) -> None:
    for n in range(count):
        await channel.default_exchange.publish(aio_pika.Message(str(n).encode()), queue)


async def _consume_and_settle(
    queue: str, count: int, settle: Callable[[Settler, list[DeliveredMessage]], object]
) -> None:
    """Consume ``count`` deliveries of ``queue`` and let ``settle`` settle them; then close."""
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=count)
        underlay = await channel.get_underlay_channel()
        settler = Settler(underlay, batch=1_000, linger=0.05)
        got: list[DeliveredMessage] = []

        async def on_message(message: DeliveredMessage) -> None:
            assert message.delivery_tag is not None
            settler.delivered(message.delivery_tag)
            got.append(message)

        await underlay.basic_consume(queue, on_message)
        assert await wait_until(lambda: len(got) == count, 10)
        result = settle(settler, got)
        if asyncio.iscoroutine(result):
            await result
        await settler.drain()
        await asyncio.sleep(0.2)  # let the frames reach the server before the channel closes


async def _left_after(
    queue: str, count: int, settle: Callable[[Settler, list[DeliveredMessage]], object]
) -> set[int]:
    """Fill ``queue`` with ``count`` messages, settle them with ``settle``; return what is left."""
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True)
        try:
            await _fill(channel, queue, count)
            await _consume_and_settle(queue, count, settle)
            left: set[int] = set()
            while (message := await declared.get(no_ack=True, fail=False)) is not None:
                left.add(int(message.body))
            return left
        finally:
            await channel.queue_delete(queue)


async def test_out_of_order_acks_never_cover_unfinished_deliveries(
    unique_name: Callable[[str], str],
) -> None:
    queue = unique_name("acks")
    count = 200
    rng = random.Random(7)
    unfinished = set(rng.sample(range(count), 40))

    async def settle(settler: Settler, got: list[DeliveredMessage]) -> None:
        order = list(got)
        rng.shuffle(order)
        for message in order:
            assert message.delivery_tag is not None
            if int(message.body) in unfinished:
                continue  # still "running" when the channel closes
            if rng.random() < 0.2:
                await settler.ack_now(message.delivery_tag)
            else:
                settler.ack(message.delivery_tag)
            if rng.random() < 0.3:
                await asyncio.sleep(0)  # some acks in later loop turns

    # Exactly the unfinished deliveries went back to the queue: no ack covered them, and every
    # finished one was acknowledged.
    assert await _left_after(queue, count, settle) == unfinished


async def test_acks_batch_into_few_frames(unique_name: Callable[[str], str]) -> None:
    queue = unique_name("acks")
    count = 100
    frames = 0

    def settle(settler: Settler, got: list[DeliveredMessage]) -> None:
        nonlocal frames
        real_ack = settler.channel.basic_ack

        async def counting(tag: int, multiple: bool = False, wait: bool = True) -> None:
            nonlocal frames
            frames += 1
            await real_ack(tag, multiple=multiple, wait=wait)

        settler.channel.basic_ack = counting  # type: ignore[method-assign]
        for message in got:
            assert message.delivery_tag is not None
            settler.ack(message.delivery_tag)

    assert await _left_after(queue, count, settle) == set()
    assert frames == 1
