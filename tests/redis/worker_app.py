"""A broker module for ``taskiq worker tests.redis.worker_app:broker`` in the Redis tests.

Configured from the environment: ``KIT_TEST_REDIS_URL``, ``KIT_TEST_QUEUE``,
``KIT_TEST_IDLE_TIMEOUT``, ``KIT_TEST_READ_COUNT``. Tasks count their runs in Redis keys.
"""

from __future__ import annotations

import asyncio
import os

from redis.asyncio import Redis

from taskiq_kit import MemoryResultBackend
from taskiq_kit.redis import RedisBroker

URL = os.environ.get("KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("KIT_TEST_QUEUE", "kit-test-worker")

broker = RedisBroker(
    URL,
    result_backend=MemoryResultBackend(),
    queue_name=QUEUE,
    idle_timeout=float(os.environ.get("KIT_TEST_IDLE_TIMEOUT", "2")),
    read_count=int(os.environ.get("KIT_TEST_READ_COUNT", "16")),
)

_clients: list[Redis] = []


def done_key(queue: str) -> str:
    return f"kit-test:{{{queue}}}:done"


def runs_key(queue: str) -> str:
    return f"kit-test:{{{queue}}}:runs"


def started_key(queue: str) -> str:
    return f"kit-test:{{{queue}}}:started"


def _client() -> Redis:
    if not _clients:
        _clients.append(Redis.from_url(URL))
    return _clients[0]


@broker.task(task_name="record")
async def record(number: int, sleep: float = 0.0) -> None:
    """Mark ``number`` as done (a set) and count the run (a counter)."""
    await _client().incr(started_key(QUEUE))
    if sleep:
        await asyncio.sleep(sleep)
    async with _client().pipeline(transaction=False) as pipe:
        pipe.sadd(done_key(QUEUE), number)
        pipe.incr(runs_key(QUEUE))
        await pipe.execute()
