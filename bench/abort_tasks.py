"""The broker and task of bench/abort_bench.py (imported by its worker process too)."""

from __future__ import annotations

import asyncio
import os
import time

import redis.asyncio as aioredis

from taskiq_kit import KitBroker, make_broker
from taskiq_kit.abort.running import CURRENT


def broker_for() -> KitBroker:
    url = os.environ.get("BENCH_BROKER_URL", "memory://")
    options = {}
    if url.startswith(("redis", "amqp")):
        options["queue_name"] = f"bench-abort-{os.environ.get('BENCH_RUN', 'x')}"
    return make_broker(url, result_url=os.environ.get("BENCH_RESULT_URL"), **options)


broker = broker_for()


@broker.task(task_name="bench_abort_long")
async def long_task(key: str) -> None:
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        stamp = time.time()
        client = aioredis.Redis.from_url(
            os.environ.get("BENCH_STAMP_URL", "redis://127.0.0.1:6379/0")
        )
        async with client:
            await client.hset(key, _task_id(), str(stamp))
        raise


def _task_id() -> str:
    run = CURRENT.get()
    return run.task_id if run is not None else "?"
