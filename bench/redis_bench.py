"""Redis broker benchmark, run by hand (not part of the tests).

How to run (a Redis server on the URL, taskiq-redis installed from the ``bench`` group)::

    .venv/bin/pip install taskiq-redis
    .venv/bin/python bench/redis_bench.py [--url redis://127.0.0.1:6379/0] [--tasks 20000]

Measures end-to-end no-op tasks/s (kick with 100 concurrent producers while one in-process
taskiq Receiver consumes, first kick to last completion) for raw LPUSH/BRPOP, taskiq-redis'
ListQueueBroker and RedisStreamBroker, and taskiq-kit's RedisBroker; then the lateness of
1,000 delayed tasks with delays spread over 0.5-10 s on taskiq-kit's broker.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from taskiq.abc.broker import AsyncBroker
from taskiq.receiver import Receiver
from taskiq_redis import ListQueueBroker, RedisStreamBroker

from taskiq_kit import MemoryResultBackend
from taskiq_kit.redis import RedisBroker

PRODUCERS = 100


async def _produce(count: int, kick: Any) -> None:
    numbers = iter(range(count))

    async def producer() -> None:
        for number in numbers:
            await kick(number)

    await asyncio.gather(*(producer() for _ in range(PRODUCERS)))


async def bench_raw(url: str, count: int) -> float:
    client = Redis(connection_pool=BlockingConnectionPool.from_url(url, max_connections=50))
    key = f"bench-raw-{uuid.uuid4().hex}"
    payload = b"x" * 300
    done = asyncio.Event()

    async def consume() -> None:
        seen = 0
        while seen < count:
            if await client.brpop([key], timeout=1) is not None:
                seen += 1
        done.set()

    consumer = asyncio.create_task(consume())
    start = time.perf_counter()
    await _produce(count, lambda _n: client.lpush(key, payload))
    await done.wait()
    elapsed = time.perf_counter() - start
    await consumer
    await client.delete(key)
    await client.aclose(close_connection_pool=True)
    return count / elapsed


async def bench_broker(broker: AsyncBroker, count: int) -> float:
    done = asyncio.Event()
    seen = 0

    @broker.task(task_name=f"noop-{uuid.uuid4().hex}")
    async def noop(number: int) -> None:
        nonlocal seen
        seen += 1
        if seen >= count:
            done.set()

    await broker.startup()
    finish = asyncio.Event()
    with ThreadPoolExecutor(4) as pool:
        receiver = Receiver(broker=broker, executor=pool, run_startup=False, max_async_tasks=100)
        consumer = asyncio.create_task(receiver.listen(finish))
        await asyncio.sleep(0.5)  # let the consumer (and its group) start
        start = time.perf_counter()
        await _produce(count, noop.kiq)
        await done.wait()
        elapsed = time.perf_counter() - start
        finish.set()
        await asyncio.wait_for(consumer, 30)
    await broker.shutdown()
    return count / elapsed


async def bench_lateness(url: str, queue: str, count: int) -> tuple[float, float, float, int]:
    broker = RedisBroker(url, result_backend=MemoryResultBackend(), queue_name=queue)
    lateness: list[float] = []
    done = asyncio.Event()

    @broker.task(task_name="stamp")
    async def stamp(due: float) -> None:
        lateness.append(time.time() - due)
        if len(lateness) >= count:
            done.set()

    await broker.startup()
    finish = asyncio.Event()
    with ThreadPoolExecutor(4) as pool:
        receiver = Receiver(broker=broker, executor=pool, run_startup=False, max_async_tasks=100)
        consumer = asyncio.create_task(receiver.listen(finish))
        rng = random.Random(1)
        for _ in range(count):
            delay = rng.uniform(0.5, 10.0)
            await stamp.kicker().with_labels(delay=delay).kiq(time.time() + delay)
        await asyncio.wait_for(done.wait(), 60)
        finish.set()
        await asyncio.wait_for(consumer, 30)
    await broker.shutdown()
    ordered = sorted(lateness)
    p50 = statistics.median(ordered)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    early = sum(1 for value in ordered if value < 0)
    return p50, p99, ordered[-1], early


async def _cleanup(url: str, prefixes: list[str]) -> None:
    client = Redis.from_url(url)
    for prefix in prefixes:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    await client.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--delayed", type=int, default=1_000)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    names = {
        "list": f"bench-list-{run}",
        "stream": f"bench-stream-{run}",
        "kit": f"bench-kit-{run}",
        "delay": f"bench-delay-{run}",
    }
    try:
        results: dict[str, float] = {}
        results["raw LPUSH/BRPOP"] = await bench_raw(args.url, args.tasks)
        results["taskiq-redis ListQueueBroker"] = await bench_broker(
            ListQueueBroker(args.url, queue_name=names["list"]), args.tasks
        )
        results["taskiq-redis RedisStreamBroker"] = await bench_broker(
            RedisStreamBroker(args.url, queue_name=names["stream"]), args.tasks
        )
        results["taskiq-kit RedisBroker"] = await bench_broker(
            RedisBroker(args.url, result_backend=MemoryResultBackend(), queue_name=names["kit"]),
            args.tasks,
        )
        print(f"End-to-end no-op tasks/s ({args.tasks} tasks, {PRODUCERS} producers, 1 receiver):")
        for name, rate in results.items():
            print(f"  {name:32s} {rate:10.0f}")
        ratio = results["taskiq-kit RedisBroker"] / results["taskiq-redis RedisStreamBroker"]
        print(f"  ours / RedisStreamBroker          {ratio:10.2f}x")
        p50, p99, worst, early = await bench_lateness(args.url, names["delay"], args.delayed)
        print(f"Delay lateness, {args.delayed} tasks, delays 0.5-10 s:")
        print(
            f"  p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms, early {early}"
        )
    finally:
        await _cleanup(
            args.url, [*names.values(), *(f"taskiq-kit:{{{name}}}" for name in names.values())]
        )


if __name__ == "__main__":
    asyncio.run(main())
