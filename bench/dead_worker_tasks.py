"""The broker and task of bench/redis_dead_worker.py (imported by its worker processes too)."""

from __future__ import annotations

import asyncio
import os

import redis.asyncio as aioredis

from taskiq_kit import make_broker

URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("BENCH_QUEUE", "bench-dead")


def hang_key(queue: str) -> str:
    """While this key exists, ``hang`` tasks of ``queue`` hang."""
    return f"{queue}:hang"


def done_key(queue: str) -> str:
    """Set of the numbers of the ``hang`` tasks of ``queue`` done."""
    return f"{queue}:done"


# The kit's default configuration (results in the same Redis, 30 s idle_timeout, 1 s heartbeats,
# dead after 3 s) unless BENCH_DEAD_AFTER says otherwise.
_options = (
    {"dead_after": float(os.environ["BENCH_DEAD_AFTER"])}
    if "BENCH_DEAD_AFTER" in os.environ
    else {}
)
broker = make_broker(URL, queue_name=QUEUE, **_options)
_clients: list[aioredis.Redis] = []


def _client() -> aioredis.Redis:
    if not _clients:
        _clients.append(aioredis.Redis.from_url(URL))
    return _clients[0]


@broker.task(task_name="hang")
async def hang(number: int) -> None:
    """Wait while :func:`hang_key` exists, then mark ``number`` done."""
    while await _client().exists(hang_key(QUEUE)):
        await asyncio.sleep(0.05)
    await _client().sadd(done_key(QUEUE), number)
