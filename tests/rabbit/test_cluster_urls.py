"""Multi-host RabbitMQ URLs: parsing, validation, and connecting to the first host that answers."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import aio_pika
import pytest

from taskiq_kit import make_broker
from taskiq_kit.exceptions import BrokerNotAvailableError, InvalidURLError
from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.urls import parse_url, split_hosts
from tests.private.redis import free_port
from tests.rabbit.harness import wait_until_async


def test_a_host_list_gives_one_url_per_host_sharing_credentials_vhost_and_query() -> None:
    url = "amqp://user:s%40cret@h1:5672, h2 ,[::1]:5674/my-vhost?heartbeat=10"
    assert parse_url(url, accepted=("amqp",)).scheme == "amqp"
    assert split_hosts(url) == (
        "amqp://user:s%40cret@h1:5672/my-vhost?heartbeat=10",
        "amqp://user:s%40cret@h2/my-vhost?heartbeat=10",
        "amqp://user:s%40cret@[::1]:5674/my-vhost?heartbeat=10",
    )
    assert split_hosts("amqps://h1:5671/") == ("amqps://h1:5671/",)


@pytest.mark.parametrize(
    ("hosts", "fragment"),
    [
        ("h1:5672,h2:56x2,h3", "host 2 of 3 ('h2:56x2'): the port is not a number"),
        ("h1:5672,,h3", "host 2 of 3 ('') is empty"),
        ("h1:5672,h2:99999", "host 2 of 2 ('h2:99999'): the port is not a number"),
        ("h1,:5673", "host 2 of 2 (':5673') has no host name"),
    ],
)
def test_a_bad_host_of_the_list_is_named_and_the_password_is_not(hosts: str, fragment: str) -> None:
    with pytest.raises(InvalidURLError) as caught:
        make_broker(f"amqp://user:hunter2@{hosts}/")
    assert fragment in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_broker_shows_every_host_but_no_password() -> None:
    broker = make_broker("amqp://user:hunter2@h1:5672,h2:5673/")
    assert isinstance(broker, RabbitBroker)
    assert repr(broker) == "RabbitBroker('amqp://user:***@h1:5672,h2:5673/')"
    assert broker.connection.urls == (
        "amqp://user:hunter2@h1:5672/",
        "amqp://user:hunter2@h2:5673/",
    )


async def test_startup_skips_hosts_that_do_not_answer(
    amqp_url: str, unique_name: Callable[[str], str]
) -> None:
    parts = urlsplit(amqp_url)
    up = f"{parts.hostname}:{parts.port}"
    closed = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    url = f"amqp://guest:guest@{closed[0]},{closed[1]},{up}{parts.path}"
    broker = make_broker(url, exchange=unique_name("x"), queue_name=unique_name("q"))
    assert isinstance(broker, RabbitBroker)
    try:
        await broker.startup()
        assert f"@{up}/" in broker.connection.current_url
        await broker.register_task(lambda: None, task_name=unique_name("t")).kiq()
        async with await aio_pika.connect(amqp_url) as connection:
            queue = await (await connection.channel()).get_queue(broker.names.default_queue)
            assert await wait_until_async(lambda: _count(queue, 1), 5)
    finally:
        await broker.shutdown()
        async with await aio_pika.connect(amqp_url) as connection:
            await broker.topology.delete(await connection.channel())


async def test_startup_with_no_host_answering_names_the_url_without_password() -> None:
    url = f"amqp://guest:hunter2@127.0.0.1:{free_port()},127.0.0.1:{free_port()}/"
    broker = make_broker(url, connect_timeout=2)
    with pytest.raises(BrokerNotAvailableError) as caught:
        await broker.startup()
    await broker.shutdown()
    assert "127.0.0.1" in str(caught.value)
    assert "hunter2" not in str(caught.value)


async def _count(queue: aio_pika.abc.AbstractQueue, expected: int) -> bool:
    declared = await queue.declare()
    return declared.message_count == expected
