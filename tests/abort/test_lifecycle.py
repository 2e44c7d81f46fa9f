"""startup() and shutdown() are idempotent: twice is once, and shutdown leaves nothing running.

A second ``startup()`` (the app's own plus a ``Receiver(run_startup=True)``) used to open a second
abort subscription that outlived ``shutdown()`` and logged "subscription lost" from then on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from redis.asyncio import Redis
from taskiq import TaskiqEvents, TaskiqState

from taskiq_kit import KitBroker
from taskiq_kit.abort import RedisAbortSignal
from taskiq_kit.rabbit.abort_signal import RabbitAbortSignal
from tests.abort.helpers import rabbit_broker, redis_broker, wait_until

#: broker / where its abort signal lives
SETUPS = ["redis", "rabbit", "rabbit-redis"]


@asynccontextmanager
async def built(
    setup: str, request: pytest.FixtureRequest, name: Callable[[str], str]
) -> AsyncIterator[KitBroker]:
    redis_url: str = request.getfixturevalue("redis_url")
    async with AsyncExitStack() as stack:
        if setup == "redis":
            broker = await stack.enter_async_context(redis_broker(redis_url, name("p"), name("q")))
        else:
            amqp_url: str = request.getfixturevalue("amqp_url")
            store = redis_url if setup == "rabbit-redis" else None
            broker = await stack.enter_async_context(
                rabbit_broker(amqp_url, name("x"), store, name("p"))
            )
        yield broker


async def subscribers(redis_url: str, channel: str) -> int:
    async with Redis.from_url(redis_url) as client:
        counts = dict(await client.pubsub_numsub(channel))
    return int(counts[channel.encode()])


async def wait_subscribers(redis_url: str, channel: str, wanted: int) -> None:
    """Redis drops a closed subscriber when it notices the socket close: wait for that."""
    deadline = time.monotonic() + 10
    while (count := await subscribers(redis_url, channel)) != wanted:
        assert time.monotonic() < deadline, f"{count} subscribers to {channel}, expected {wanted}"
        await asyncio.sleep(0.02)


async def rabbit_channels(signal: object) -> int:
    """Channels open on a RabbitMQ abort signal's connection (0 for other signals)."""
    if not isinstance(signal, RabbitAbortSignal):
        return 0
    connection = await signal.connection.get()
    return len(connection.transport.connection.channels)


async def wait_no_tasks_beyond(before: set[asyncio.Task[object]]) -> None:
    """Wait until every task started since ``before`` has ended (closing ones may take a moment)."""
    current = asyncio.current_task()
    deadline = time.monotonic() + 10
    while left := {t for t in asyncio.all_tasks() if t not in before and t is not current}:
        assert time.monotonic() < deadline, f"tasks left running after shutdown: {left}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("setup", SETUPS)
async def test_startup_twice_is_once_and_shutdown_twice_is_once(
    setup: str,
    request: pytest.FixtureRequest,
    unique_name: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    calls: list[str] = []

    async with built(setup, request, unique_name) as broker:
        for event in (TaskiqEvents.CLIENT_STARTUP, TaskiqEvents.CLIENT_SHUTDOWN):

            async def handler(state: TaskiqState, event: TaskiqEvents = event) -> None:
                calls.append(event.value)

            broker.add_event_handler(event, handler)
        before = set(asyncio.all_tasks())

        await broker.startup()
        await broker.startup()  # e.g. a Receiver(run_startup=True) beside the app's own
        assert calls == [TaskiqEvents.CLIENT_STARTUP.value]
        signal = broker.aborts.signal
        if isinstance(signal, RedisAbortSignal):
            assert await subscribers(signal.url, signal.channel) == 1
        marker = f"marker-{unique_name('m')}"
        assert signal is not None
        await signal.publish(marker)
        await wait_until(lambda: broker.aborts.running.was_aborted(marker))

        await broker.shutdown()
        await broker.shutdown()
        assert calls == [TaskiqEvents.CLIENT_STARTUP.value, TaskiqEvents.CLIENT_SHUTDOWN.value]
        await wait_no_tasks_beyond(before)
        if isinstance(signal, RedisAbortSignal):
            await wait_subscribers(signal.url, signal.channel, 0)

        # Started again after a shutdown, it works again (and stops again).
        await broker.startup()
        await signal.publish(f"{marker}-again")
        await wait_until(lambda: broker.aborts.running.was_aborted(f"{marker}-again"))
        await broker.shutdown()
        await wait_no_tasks_beyond(before)

    assert not [r for r in caplog.records if "subscription lost" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize("setup", SETUPS)
async def test_abort_middleware_subscribes_once_however_often_started(
    setup: str, request: pytest.FixtureRequest, unique_name: Callable[[str], str]
) -> None:
    async with built(setup, request, unique_name) as broker:
        before = set(asyncio.all_tasks())
        await broker.startup()
        try:
            signal = broker.aborts.signal
            channels = await rabbit_channels(signal)
            await broker.aborts.startup()
            await broker.aborts.startup()
            if isinstance(signal, RedisAbortSignal):
                assert await subscribers(signal.url, signal.channel) == 1
            else:  # each subscription takes a channel of its own
                assert await rabbit_channels(signal) == channels
        finally:
            await broker.shutdown()
        await wait_no_tasks_beyond(before)
