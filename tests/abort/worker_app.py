"""Broker module for ``taskiq worker tests.abort.worker_app:broker`` in the abort tests.

The full kit path: ``make_broker`` with results and status in Redis, so the test process and the
worker processes share them. Configured by ``KIT_TEST_REDIS_URL`` and ``KIT_TEST_QUEUE``.
Tasks record in Redis the pid that started them and the pid that saw their cancellation.
"""

from __future__ import annotations

import asyncio
import os

from redis.asyncio import Redis
from taskiq import Context, TaskiqDepends

from taskiq_kit import make_broker

URL = os.environ.get("KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("KIT_TEST_QUEUE", "kit-test-abort")

broker = make_broker(
    URL,
    result_url=URL,
    queue_name=QUEUE,
    idle_timeout=2.0,
    read_count=int(os.environ.get("KIT_TEST_READ_COUNT", "1")),
)


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
