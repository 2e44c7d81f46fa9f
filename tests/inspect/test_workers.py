"""The worker registry: real ``taskiq worker`` processes appear, count their work, and vanish."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from taskiq_kit import KitBroker
from taskiq_kit.inspect import WorkerInfo, list_workers
from taskiq_kit.inspect.workers import MISSED_BEATS, cli_concurrency
from tests.inspect.conftest import drop_tables
from tests.inspect.worker_app import HEARTBEAT, REDIS_URL, build, register
from tests.processes import kill_group, taskiq_worker
from tests.results.conftest import delete_redis_keys


@pytest.fixture
async def named(
    request: pytest.FixtureRequest, redis_url: str, postgres_url: str
) -> AsyncIterator[str]:
    """A unique name for queues, keys and tables; everything under it is removed afterwards."""
    name = f"kit-test-inspect-{uuid.uuid4().hex[:10]}"
    yield name
    await delete_redis_keys(redis_url, f"{name}:*")
    await drop_tables(postgres_url, name.replace("-", "_"))


async def poll(
    read: Callable[[], Awaitable[list[WorkerInfo]]],
    done: Callable[[list[WorkerInfo]], bool],
    timeout: float,
) -> list[WorkerInfo]:
    deadline = time.monotonic() + timeout
    while True:
        workers = await read()
        if done(workers) or time.monotonic() > deadline:
            return workers
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    "store",
    [
        "redis",
        "postgres",
        pytest.param("redis-cluster", marks=[pytest.mark.slow, pytest.mark.cluster]),
    ],
)
async def test_clean_shutdown_leaves_the_registry(
    store: str, named: str, request: pytest.FixtureRequest
) -> None:
    url = REDIS_URL
    if store == "redis-cluster":
        store, url = "redis", request.getfixturevalue("redis_cluster").url
    # A long heartbeat: the entry could only vanish this fast by the worker's own leave().
    worker = build(store, named, heartbeat=60.0, url=url)
    worker.is_worker_process = True
    client = build(store, named, url=url)
    await client.startup()
    try:
        await worker.startup()
        try:
            (me,) = await list_workers(client)
            assert me.pid == os.getpid()
            assert me.host == socket.gethostname()
            assert me.queues == [named]
            assert me.processed == 0
            assert me.running == []
        finally:
            await worker.shutdown()
        assert await list_workers(client) == []
    finally:
        await client.shutdown()


def test_concurrency_comes_from_the_worker_command_line() -> None:
    assert cli_concurrency(["taskiq", "worker", "a:b", "--max-async-tasks", "7"]) == 7
    assert cli_concurrency(["taskiq", "worker", "a:b", "--max-async-tasks=9"]) == 9
    assert cli_concurrency(["taskiq", "worker", "a:b"]) == 100
    assert cli_concurrency(["worker", "a:b", "--max-async-tasks", "3"]) == 3  # as taskiq leaves it
    assert cli_concurrency(["uvicorn", "app:app"]) is None


@pytest.mark.slow
@pytest.mark.parametrize("store", ["redis", "postgres"])
async def test_worker_process_counts_work_and_vanishes_after_sigkill(
    store: str, named: str
) -> None:
    client: KitBroker = build(store, named)
    ok, fail = register(client)
    await client.startup()
    env = {"KIT_TEST_NAME": named, "KIT_TEST_STORE": store}
    args = ("--workers", "1", "--max-async-tasks", "7")
    try:
        with taskiq_worker("tests.inspect.worker_app:broker", *args, env=env) as process:
            workers = await poll(lambda: list_workers(client), bool, 30)
            assert len(workers) == 1, "the worker never registered"
            tasks = [await ok.kiq(i) for i in range(3)] + [await fail.kiq() for _ in range(2)]
            for task in tasks:
                await task.wait_result(timeout=20)
            workers = await poll(
                lambda: list_workers(client), lambda w: bool(w) and w[0].processed == 5, 10
            )
            (worker,) = workers
            assert worker.processed == 5
            assert worker.failed == 2
            assert worker.running == []
            assert os.getpgid(worker.pid) == process.pid  # the taskiq worker's child
            assert worker.concurrency == 7
            assert worker.queues == [named]
            assert worker.last_heartbeat >= worker.started_at

            kill_group(process, signal.SIGKILL)
            killed = time.monotonic()
            process.wait(10)
            left = await poll(lambda: list_workers(client), lambda w: not w, 10)
            gone_after = time.monotonic() - killed
        assert left == []
        assert gone_after <= HEARTBEAT * (MISSED_BEATS + 2)
    finally:
        await client.shutdown()
