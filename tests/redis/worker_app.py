"""A broker module for ``taskiq worker tests.redis.worker_app:broker`` in the Redis tests.

Configured from the environment: ``KIT_TEST_REDIS_URL``, ``KIT_TEST_QUEUE``,
``KIT_TEST_IDLE_TIMEOUT``, ``KIT_TEST_READ_COUNT``, ``KIT_TEST_HEARTBEAT_INTERVAL``,
``KIT_TEST_DEAD_AFTER``. Tasks count their runs in Redis keys.
"""

from __future__ import annotations

import asyncio
import os
import time

from taskiq_kit import MemoryResultBackend
from taskiq_kit.redis import RedisBroker
from taskiq_kit.redis.connect import RedisClient, make_client

URL = os.environ.get("KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("KIT_TEST_QUEUE", "kit-test-worker")

broker = RedisBroker(
    URL,
    result_backend=MemoryResultBackend(),
    queue_name=QUEUE,
    idle_timeout=float(os.environ.get("KIT_TEST_IDLE_TIMEOUT", "2")),
    read_count=int(os.environ.get("KIT_TEST_READ_COUNT", "16")),
    heartbeat_interval=float(os.environ.get("KIT_TEST_HEARTBEAT_INTERVAL", "1")),
    dead_after=float(os.environ.get("KIT_TEST_DEAD_AFTER", "3")),
)

_clients: list[RedisClient] = []


def done_key(queue: str) -> str:
    return f"kit-test:{{{queue}}}:done"


def runs_key(queue: str) -> str:
    return f"kit-test:{{{queue}}}:runs"


def started_key(queue: str) -> str:
    return f"kit-test:{{{queue}}}:started"


def starts_key(queue: str) -> str:
    """Hash: task number -> runs started."""
    return f"kit-test:{{{queue}}}:starts"


def hang_key(queue: str) -> str:
    """While this key exists, ``hang`` tasks hang."""
    return f"kit-test:{{{queue}}}:hang"


def _client() -> RedisClient:
    if not _clients:
        _clients.append(make_client(URL))  # any kit Redis URL: one server, a cluster, Sentinels
    return _clients[0]


@broker.task(task_name="record")
async def record(number: int, sleep: float = 0.0, *, block: bool = False) -> None:
    """Mark ``number`` as done (a set) and count the run (a counter).

    ``block``: sleep without yielding, blocking the worker's event loop (a badly written task).
    """
    await _client().incr(started_key(QUEUE))
    if block:
        time.sleep(sleep)  # noqa: ASYNC251 - the point of the test
    elif sleep:
        await asyncio.sleep(sleep)
    await _done(number)


@broker.task(task_name="hang")
async def hang(number: int) -> None:
    """Count the start of ``number``; hang while :func:`hang_key` exists, then finish at once."""
    await _client().hincrby(starts_key(QUEUE), str(number), 1)
    while await _client().exists(hang_key(QUEUE)):  # noqa: ASYNC110 - the test process deletes it
        await asyncio.sleep(0.2)
    await _done(number)


async def _done(number: int) -> None:
    async with _client().pipeline(transaction=False) as pipe:
        pipe.sadd(done_key(QUEUE), number)
        pipe.incr(runs_key(QUEUE))
        await pipe.execute()
