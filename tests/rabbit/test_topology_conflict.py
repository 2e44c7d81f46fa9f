"""An exchange or queue of the kit's names declared otherwise: a clear error, not an outage."""

from __future__ import annotations

from collections.abc import Callable

import aio_pika
import pytest

from taskiq_kit import make_broker
from taskiq_kit.exceptions import BrokerNotAvailableError, TopologyConflictError

pytestmark = pytest.mark.rabbit


async def test_a_classic_queue_of_the_same_name_is_named_in_the_error(
    amqp_url: str, unique_name: Callable[[str], str]
) -> None:
    queue, exchange = unique_name("q"), unique_name("x")
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        # What taskiq-aio-pika leaves behind: a classic queue of the same name.
        await channel.declare_queue(queue, durable=True)
        broker = make_broker(amqp_url, exchange=exchange, queue_name=queue)
        try:
            with pytest.raises(TopologyConflictError) as caught:
                await broker.startup()
            assert not isinstance(caught.value, BrokerNotAvailableError)
            text = str(caught.value)
            assert f"queue '{queue}'" in text
            assert "inequivalent arg" in text
            assert "queue_name=" in text
            assert "delete_queue" in text
        finally:
            await broker.shutdown()
            channel = await connection.channel()
            await channel.queue_delete(queue)
            cleanup = make_broker(amqp_url, exchange=exchange, queue_name=unique_name("q"))
            assert hasattr(cleanup, "topology")
            await cleanup.topology.delete(channel)


async def test_an_exchange_of_another_type_is_named_in_the_error(
    amqp_url: str, unique_name: Callable[[str], str]
) -> None:
    queue, exchange = unique_name("q"), unique_name("x")
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        broker = make_broker(amqp_url, exchange=exchange, queue_name=queue)
        try:
            with pytest.raises(TopologyConflictError, match=f"exchange '{exchange}'"):
                await broker.startup()
        finally:
            await broker.shutdown()
            channel = await connection.channel()
            await channel.exchange_delete(exchange)
            assert hasattr(broker, "topology")
            await broker.topology.delete(channel)
