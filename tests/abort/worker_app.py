"""Broker module for ``taskiq worker tests.abort.worker_app:broker`` in the abort tests.

The full kit path: ``make_broker`` (Redis or RabbitMQ, ``KIT_TEST_BROKER_URL``) with results,
status and tombstones in Redis or PostgreSQL (``KIT_TEST_RESULT_URL``), shared by the test process
and the worker processes; ``KIT_TEST_QUEUE`` names the queue. Redis (``KIT_TEST_REDIS_URL``) is
also the tests' side channel.
Tasks record in Redis the pid that started them and the pid that saw their cancellation.
"""

from __future__ import annotations

import asyncio
import os

from redis.asyncio import Redis
from taskiq import Context, TaskiqDepends

from taskiq_kit import make_broker

URL = os.environ.get("KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BROKER_URL = os.environ.get("KIT_TEST_BROKER_URL", URL)
QUEUE = os.environ.get("KIT_TEST_QUEUE", "kit-test-abort")

# Each worker process holds at most 3 tasks: 2 running (--max-async-tasks 2) and 1 read ahead.
if BROKER_URL.startswith("amqp"):
    options: dict[str, object] = {"exchange": f"{QUEUE}-x", "prefetch_count": 3}
else:
    options = {"idle_timeout": 2.0, "read_count": 1}
RESULT_URL = os.environ.get("KIT_TEST_RESULT_URL", URL)
broker = make_broker(BROKER_URL, result_url=RESULT_URL, queue_name=QUEUE, **options)


def started_key(queue: str) -> str:
    return f"kit-test:{{{queue}}}:started"


def cancelled_key(queue: str) -> str:
    return f"kit-test:{{{queue}}}:cancelled"


@broker.task(task_name="abort_test.sleepy")
async def sleepy(seconds: float, context: Context = TaskiqDepends()) -> str:
    task_id = context.message.task_id
    async with Redis.from_url(URL) as client:
        await client.hset(started_key(QUEUE), task_id, os.getpid())
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            await client.hset(cancelled_key(QUEUE), task_id, os.getpid())
            raise
    return "slept"
