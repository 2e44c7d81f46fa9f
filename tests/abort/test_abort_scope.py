"""An abort reaches only its own app: Redis pub/sub is server-wide, whatever the database.

Two apps with the same queue on databases 10 and 11 of one Redis (and two RabbitMQ apps on
different exchanges, with their aborts on RabbitMQ or in Redis) run a task with the same id. Aborting
it in one app must leave the other's run alone.

Nothing is "waited for not to happen": after the abort, a marker is pushed on the other app's own
channel and the test waits until that app has heard it. Pushes on one channel arrive in order, so had
the abort been on the same channel, the other app would have heard it first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack

import pytest

from taskiq_kit import AbortOutcome, KitBroker, TaskStatus, abort_task, get_status
from taskiq_kit.abort import RedisAbortSignal
from taskiq_kit.rabbit.abort_signal import RabbitAbortSignal
from tests.abort.helpers import (
    gated_task,
    rabbit_broker,
    redis_broker,
    running,
    wait_status,
    wait_until,
    with_db,
)

SETUPS = ["redis-db10-db11", "rabbit-exchanges", "rabbit-redis-db10-db11"]


async def two_apps(
    setup: str, stack: AsyncExitStack, request: pytest.FixtureRequest, name: Callable[[str], str]
) -> tuple[KitBroker, KitBroker]:
    redis_url: str = request.getfixturevalue("redis_url")
    if setup == "redis-db10-db11":
        # The same prefix and queue: only the database tells the two apps apart.
        prefix, queue = name("p"), name("q")
        return (
            await stack.enter_async_context(redis_broker(with_db(redis_url, 10), prefix, queue)),
            await stack.enter_async_context(redis_broker(with_db(redis_url, 11), prefix, queue)),
        )
    amqp_url: str = request.getfixturevalue("amqp_url")
    if setup == "rabbit-exchanges":
        return (
            await stack.enter_async_context(rabbit_broker(amqp_url, name("xa"))),
            await stack.enter_async_context(rabbit_broker(amqp_url, name("xb"))),
        )
    prefix = name("p")
    return (
        await stack.enter_async_context(
            rabbit_broker(amqp_url, name("xa"), with_db(redis_url, 10), prefix)
        ),
        await stack.enter_async_context(
            rabbit_broker(amqp_url, name("xb"), with_db(redis_url, 11), prefix)
        ),
    )


@pytest.mark.parametrize("setup", SETUPS)
async def test_abort_stops_only_the_task_of_its_own_app(
    setup: str, request: pytest.FixtureRequest, unique_name: Callable[[str], str]
) -> None:
    async with AsyncExitStack() as stack:
        app_a, app_b = await two_apps(setup, stack, request, unique_name)
        expected = RedisAbortSignal if setup.endswith("db11") else RabbitAbortSignal
        assert isinstance(app_a.aborts.signal, expected)
        assert isinstance(app_b.aborts.signal, expected)
        task_name = unique_name("gated")
        job_a, job_b = gated_task(app_a, task_name), gated_task(app_b, task_name)
        await stack.enter_async_context(running(app_a))
        await stack.enter_async_context(running(app_b))

        task_id = uuid.uuid4().hex
        await job_a.task.kicker().with_task_id(task_id).kiq()
        handle_b = await job_b.task.kicker().with_task_id(task_id).kiq()
        for app, job in ((app_a, job_a), (app_b, job_b)):
            await wait_until(job.started.is_set)
            await wait_status(app, task_id, TaskStatus.STARTED)

        assert await abort_task(app_a, task_id) is AbortOutcome.ABORTED_WHILE_RUNNING
        await wait_status(app_a, task_id, TaskStatus.ABORTED)

        marker = f"marker-{uuid.uuid4().hex}"
        assert app_b.aborts.signal is not None
        await app_b.aborts.signal.publish(marker)
        await wait_until(lambda: app_b.aborts.running.was_aborted(marker))
        assert not app_b.aborts.running.was_aborted(task_id)

        job_b.release.set()
        result = await handle_b.wait_result(timeout=10)
        assert not result.is_err, result.error
        assert result.return_value == "done"
        assert await get_status(app_b, task_id) is TaskStatus.SUCCESS
        assert await get_status(app_a, task_id) is TaskStatus.ABORTED


def test_redis_channel_names_the_database_and_the_scope() -> None:
    on_10 = RedisAbortSignal("redis://127.0.0.1:6379/10", scope="kit:q")
    on_11 = RedisAbortSignal("redis://127.0.0.1:6379/11", scope="kit:q")
    other_queue = RedisAbortSignal("redis://127.0.0.1:6379/10", scope="kit:other")
    by_query = RedisAbortSignal("redis://127.0.0.1:6379?db=10", scope="kit:q")
    assert len({on_10.channel, on_11.channel, other_queue.channel}) == 3
    assert by_query.channel == on_10.channel
    assert RedisAbortSignal("redis://127.0.0.1:6379").channel.endswith(":db0")
