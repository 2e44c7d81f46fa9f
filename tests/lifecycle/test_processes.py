"""The lifecycle across real processes: a crash between the result write and the ack, and a
store that lives in another process's memory."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from redis.asyncio import Redis

from taskiq_kit import (
    KitBroker,
    ProcessLocalStoreError,
    TaskStatus,
    abort_task,
    get_status,
    get_task_record,
)
from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.redis import RedisBroker
from tests.brokers import in_process_worker
from tests.lifecycle.worker_app import AMQP_URL, REDIS_URL, build, runs_key
from tests.processes import spawned
from tests.redis.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


def worker(
    config: str, name: str, log: Path, **env: str
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """``taskiq worker tests.lifecycle.worker_app:broker``, its output in ``log``."""
    args = [sys.executable, "-m", "taskiq", "worker", "tests.lifecycle.worker_app:broker"]
    return spawned(
        "lifecycle worker",
        [*args, "--workers", "1"],
        {"KIT_TEST_CONFIG": config, "KIT_TEST_NAME": name, **env},
        log_path=log,
    )


async def _cleanup(broker: KitBroker, name: str) -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"*{name}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
    if isinstance(broker, RabbitBroker):
        async with await aio_pika.connect(AMQP_URL) as connection:
            channel = await connection.channel()
            levels = broker.topology.levels
            for queue in broker.names.all_queues(levels):
                await channel.queue_delete(queue)
            for exchange in broker.names.all_exchanges(levels):
                await channel.exchange_delete(exchange)


@contextlib.asynccontextmanager
async def kicker(config: str, name: str, **options: Any) -> AsyncIterator[tuple[KitBroker, Any]]:
    """A started broker of ``config`` in this process, with the ``once`` task registered."""
    broker = build(config, name, **options)
    runs: list[str] = []

    @broker.task(task_name="once")
    async def once(tag: str) -> str:
        runs.append(tag)
        return tag

    await broker.startup()
    try:
        yield broker, once
    finally:
        await broker.shutdown()
        await _cleanup(broker, name)


async def _runs(name: str) -> int:
    client = Redis.from_url(REDIS_URL)
    try:
        return int(await client.get(runs_key(name)) or 0)
    finally:
        await client.aclose()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("config", ["redis", "rabbit"])
async def test_crash_between_result_write_and_ack(
    config: str, tmp_path: Path, amqp_url: str, redis_url: str
) -> None:
    """The worker dies after the result and final status are stored, before the ack: the message
    comes back, and the next worker drops it as a duplicate without running it again."""
    name = f"kit_test_{uuid.uuid4().hex[:10]}"
    options: dict[str, Any] = {"idle_timeout": 0.5} if config == "redis" else {}
    async with kicker(config, name, **options) as (broker, once):
        with worker(config, name, tmp_path / "worker.log", KIT_TEST_CRASH_AFTER_SAVE="1") as proc:
            task = await once.kiq("a")
            await asyncio.to_thread(proc.wait, 60)
        assert proc.returncode == -signal.SIGKILL, (tmp_path / "worker.log").read_text()[-3000:]
        assert await _runs(name) == 1
        record = await get_task_record(broker, task.task_id)
        assert record.status is TaskStatus.SUCCESS
        assert (await task.get_result()).return_value == "a"
        # The message was not acknowledged: another worker gets it again.
        async with in_process_worker(broker):
            await eventually(
                lambda: broker.gate.duplicates_dropped == 1, 30, "the redelivery to be dropped"
            )
            if isinstance(broker, RedisBroker):
                await eventually(lambda: _settled(broker), 10, "the redelivery to be acked")
        assert await _runs(name) == 1
        record = await get_task_record(broker, task.task_id)
        assert (record.status, record.attempt) == (TaskStatus.SUCCESS, 1)
        assert (await task.get_result()).return_value == "a"


async def _settled(broker: RedisBroker) -> bool:
    pending = await broker.client.xpending(broker.keys.ready, broker.keys.group)
    return int(pending["pending"]) == 0


@pytest.mark.timeout(90)
async def test_a_process_local_store_is_refused_in_other_processes(
    tmp_path: Path, amqp_url: str, redis_url: str
) -> None:
    """``amqp://`` without ``result_url``: the worker warns at start; a process that does not
    consume gets a clear error naming ``result_url`` at once, never a ``pending`` forever."""
    name = f"kit_test_{uuid.uuid4().hex[:10]}"
    log = tmp_path / "worker.log"
    async with kicker("rabbit-local", name) as (broker, once):
        with worker("rabbit-local", name, log):
            task = await once.kiq("a")
            await eventually(lambda: _ran(name), 30, "the worker to run the task")
            for read in (
                get_status(broker, task.task_id),
                task.wait_result(timeout=30),
                task.is_ready(),
                abort_task(broker, task.task_id),
            ):
                with pytest.raises(ProcessLocalStoreError, match="result_url="):
                    await asyncio.wait_for(read, 5)
        text = log.read_text()
        assert "no other process can read them" in text
        assert "result_url=" in text


async def _ran(name: str) -> bool:
    return await _runs(name) >= 1
