"""Poison detection blames only the task that was running: a real worker killed by its task."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from taskiq_kit import make_broker
from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.results.status import TaskStatus
from tests.brokers import in_process_worker
from tests.delivery.apps import start_worker, stop_worker
from tests.delivery.harness import (
    TRANSPORTS,
    broker_url,
    eventually,
    read_dead_letters,
    send_raw,
    started,
)
from tests.rabbit.harness import AMQP_URL
from tests.redis.harness import REDIS_URL


async def _never(*_: Any) -> None:
    raise AssertionError("runs in the worker process only")


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.rabbit
@pytest.mark.timeout(240)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_only_the_task_that_kills_its_worker_is_dead_lettered(
    transport: str, tmp_path: Path, unique_name: Callable[[str], str], redis_url: str, amqp_url: str
) -> None:
    name = unique_name("poison")
    seen: list[tuple[bytes, str]] = []
    async with started(transport, name) as kicker:
        pid = kicker.register_task(_never, task_name="pid")
        kill = kicker.register_task(_never, task_name="kill")
        # Queued before the worker starts: it prefetches the killer with the innocents, and the
        # innocents (0.3 s each) run beside it when it first kills the process.
        innocents = [await pid.kiq(n, 0.3) for n in range(25)]
        killer = await kill.kiq()
        innocents += [await pid.kiq(n, 0.3) for n in range(25, 50)]
        log = tmp_path / "worker.log"
        worker = start_worker(broker_url(transport), REDIS_URL, name, log)
        backend = kicker.result_backend
        try:

            async def finished() -> bool:
                dead = await read_dead_letters(kicker, seen)
                ready = [await backend.is_result_ready(task.task_id) for task in innocents]
                return bool(dead) and all(ready)

            await eventually(finished, 200, "the killer's dead letter and every innocent's result")
        finally:
            stop_worker(worker)
        dead = await read_dead_letters(kicker, seen)
        assert len(dead) == 1, [reason for _, reason in dead]
        body, reason = dead[0]
        assert json.loads(body)["task_id"] == killer.task_id
        assert reason.startswith("started 5 times without finishing"), reason
        for task in innocents:
            record = await backend.get_record(task.task_id)
            assert record is not None
            assert record.status is TaskStatus.SUCCESS
            assert record.runs <= 2, f"an innocent was blamed {record.runs} times"
        # The killer really killed its worker five times (taskiq restarted it each time).
        assert log.read_text().count("is dead. Scheduling reload") == 5


@pytest.mark.rabbit
async def test_a_spoofed_delivery_count_header_does_not_dead_letter(
    unique_name: Callable[[str], str], amqp_url: str
) -> None:
    name = unique_name("spoof")
    # The default store for RabbitMQ is process-local: there the delivery count is what counts.
    broker = make_broker(AMQP_URL, exchange=name, queue_name=name)
    assert isinstance(broker, RabbitBroker)
    ran: list[int] = []

    @broker.task(task_name="mark")
    async def mark(number: int) -> None:
        ran.append(number)

    bodies = [
        json.dumps(
            {
                "task_id": uuid.uuid4().hex,
                "task_name": "mark",
                "labels": {},
                "args": [n],
                "kwargs": {},
            }
        ).encode()
        for n in range(20)
    ]
    seen: list[tuple[bytes, str]] = []
    await broker.startup()
    try:
        # Published with RabbitMQ's own header (a republishing tool copies it, say): a first
        # delivery all the same.
        await send_raw(broker, bodies, headers={"x-delivery-count": 100})
        async with in_process_worker(broker):

            async def all_ran() -> bool:
                return len(ran) == 20

            await eventually(all_ran, 20, "every message with a spoofed header to run")
        assert await read_dead_letters(broker, seen) == []
    finally:
        await broker.shutdown()
        async with await aio_pika.connect(AMQP_URL) as connection:
            await broker.topology.delete(await connection.channel())
    assert sorted(ran) == list(range(20))
