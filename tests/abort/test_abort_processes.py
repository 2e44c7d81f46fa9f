"""Abort across real ``taskiq worker`` processes, on Redis and on RabbitMQ (abort signals and
tombstones in Redis): several worker processes, and a worker started after the abort."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable

import aio_pika
import pytest
from redis.asyncio import Redis

from taskiq_kit import AbortOutcome, TaskStatus, abort_task, get_status
from tests.processes import taskiq_worker
from tests.rabbit.harness import delete_topology

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: broker / where results, tombstones and abort signals live
BROKER_KINDS = ["redis", "rabbit", "rabbit-postgres"]


def worker(queue: str, *args: str) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    return taskiq_worker("tests.abort.worker_app:broker", *args, env={"KIT_TEST_QUEUE": queue})


@pytest.fixture(params=BROKER_KINDS)
async def app(
    request: pytest.FixtureRequest,
    redis_url: str,
    unique_name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[object]:
    """The worker module, imported in this process as the client, on a queue of its own."""
    queue = unique_name("abort")
    rabbit = request.param.startswith("rabbit")
    broker_url = request.getfixturevalue("amqp_url") if rabbit else redis_url
    if request.param == "rabbit-postgres":  # no Redis in the kit: a fanout exchange carries aborts
        monkeypatch.setenv("KIT_TEST_RESULT_URL", request.getfixturevalue("postgres_url"))
    else:
        monkeypatch.setenv("KIT_TEST_RESULT_URL", redis_url)
    monkeypatch.setenv("KIT_TEST_REDIS_URL", redis_url)
    monkeypatch.setenv("KIT_TEST_BROKER_URL", broker_url)
    monkeypatch.setenv("KIT_TEST_QUEUE", queue)
    sys.modules.pop("tests.abort.worker_app", None)
    module = importlib.import_module("tests.abort.worker_app")

    await module.broker.startup()
    try:
        yield module
    finally:
        await module.broker.shutdown()
        if rabbit:
            await delete_topology(module.broker)
            async with await aio_pika.connect(broker_url) as connection:
                channel = await connection.channel()
                await channel.exchange_delete(f"{queue}-x.abort")
        async with Redis.from_url(redis_url) as client:
            keys = [key async for key in client.scan_iter(match=f"*{queue}*")]
            if keys:
                await client.delete(*keys)
        sys.modules.pop("tests.abort.worker_app", None)


async def wait_status(
    broker: object, task_id: str, wanted: TaskStatus, timeout: float = 15
) -> None:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = await get_status(broker, task_id)  # type: ignore[arg-type]
        if status is wanted:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"task {task_id} is {status}, expected {wanted}")


@pytest.mark.timeout(90)
async def test_only_the_process_running_the_task_cancels_it(app: object, redis_url: str) -> None:
    module = app
    broker, sleepy, queue = module.broker, module.sleepy, module.QUEUE  # type: ignore[attr-defined]
    # Each process holds at most 3 (2 running, 1 read ahead): 6 tasks put 2 running in each.
    with worker(queue, "--workers", "2", "--max-async-tasks", "2"):
        tasks = [await sleepy.kiq(20) for _ in range(6)]
        deadline = time.monotonic() + 30
        while True:
            started = await _hash(redis_url, module.started_key(queue))  # type: ignore[attr-defined]
            if len(started) == 4:
                break
            assert time.monotonic() < deadline, f"only {len(started)} tasks started"
            await asyncio.sleep(0.05)
        assert len(set(started.values())) == 2, "both worker processes run tasks"
        victim = next(iter(started))
        others = [task_id for task_id in started if task_id != victim]
        await wait_status(broker, victim, TaskStatus.STARTED)
        assert await abort_task(broker, victim) is AbortOutcome.ABORTED_WHILE_RUNNING
        await asyncio.sleep(1.0)
        cancelled = await _hash(redis_url, module.cancelled_key(queue))  # type: ignore[attr-defined]
        assert cancelled == {victim: started[victim]}, "cancelled once, by the process running it"
        for task_id in others:
            assert await get_status(broker, task_id) is TaskStatus.STARTED
        assert await get_status(broker, victim) is TaskStatus.ABORTED
        assert {task.task_id for task in tasks} >= set(started)


async def _hash(url: str, key: str) -> dict[str, str]:
    async with Redis.from_url(url) as client:
        return {k.decode(): v.decode() for k, v in (await client.hgetall(key)).items()}


@pytest.mark.timeout(90)
async def test_abort_is_honoured_by_a_worker_started_after_it(app: object, redis_url: str) -> None:
    module = app
    broker, sleepy, queue = module.broker, module.sleepy, module.QUEUE  # type: ignore[attr-defined]
    with worker(queue, "--workers", "1") as first:
        warmup = await sleepy.kiq(0)
        await wait_status(broker, warmup.task_id, TaskStatus.SUCCESS, timeout=30)
        delayed = await sleepy.kicker().with_labels(delay=3).kiq(0)
        os.killpg(first.pid, signal.SIGKILL)  # the worker dies with the delayed task pending
        first.wait(10)
    queued = await sleepy.kiq(0)  # no worker at all now
    assert await abort_task(broker, delayed.task_id) is AbortOutcome.ABORTED_BEFORE_START
    assert await abort_task(broker, queued.task_id) is AbortOutcome.ABORTED_BEFORE_START
    with worker(queue, "--workers", "1"):
        control = await sleepy.kiq(0)
        await wait_status(broker, control.task_id, TaskStatus.SUCCESS, timeout=30)
        await asyncio.sleep(4)  # past the delayed task's due time
    async with Redis.from_url(redis_url) as client:
        started = await client.hgetall(module.started_key(queue))  # type: ignore[attr-defined]
    ran = {key.decode() for key in started}
    assert delayed.task_id not in ran
    assert queued.task_id not in ran
    assert control.task_id in ran
    assert await get_status(broker, delayed.task_id) is TaskStatus.ABORTED
    assert await get_status(broker, queued.task_id) is TaskStatus.ABORTED
