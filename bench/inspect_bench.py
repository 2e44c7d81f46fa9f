"""Time queue_figures() and list_dead_letters() on each broker (how cheap a 1 s poll is).

How to run (RabbitMQ and Redis on localhost)::

    .venv/bin/python bench/inspect_bench.py

Prints the median and the 95th percentile of 50 calls per broker, on uuid-named queues
(deleted after) holding 1,000 dead letters.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

from redis.asyncio import Redis
from taskiq.message import TaskiqMessage

from taskiq_kit import KitBroker, MemoryResultBackend, make_broker
from taskiq_kit.inspect import list_dead_letters, queue_figures
from taskiq_kit.rabbit import RabbitBroker
from taskiq_kit.rabbit.publisher import Outgoing
from taskiq_kit.redis import RedisBroker

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
REDIS = "redis://127.0.0.1:6379/0"
DEAD = 1000


def _body(broker: KitBroker) -> bytes:
    message = TaskiqMessage(
        task_id=uuid.uuid4().hex, task_name="lost", labels={}, args=[], kwargs={}
    )
    return broker.formatter.dumps(message).message


async def _fill(broker: KitBroker) -> None:
    if isinstance(broker, RabbitBroker):
        await asyncio.gather(
            *(
                broker.publisher.dead_letter(
                    Outgoing(_body(broker), {}, broker.names.default_queue, "lost"), "bench"
                )
                for _ in range(DEAD)
            )
        )
    elif isinstance(broker, RedisBroker):
        async with broker.client.pipeline(transaction=False) as pipe:
            for _ in range(DEAD):
                pipe.xadd(broker.keys.dead, {"data": _body(broker), "reason": "bench"})
            await pipe.execute()


async def _time(call: object, runs: int = 50) -> str:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return f"median {statistics.median(samples):.2f} ms, p95 {samples[int(runs * 0.95) - 1]:.2f} ms"


async def main() -> None:
    tag = uuid.uuid4().hex[:8]
    brokers: list[KitBroker] = [
        make_broker(AMQP, exchange=f"bench-x-{tag}", queue_name=f"bench-q-{tag}"),
        RedisBroker(REDIS, result_backend=MemoryResultBackend(), queue_name=f"bench-q-{tag}"),
    ]
    for broker in brokers:
        await broker.startup()
        try:
            await _fill(broker)
            figures = await _time(lambda b=broker: queue_figures(b))
            page = await _time(lambda b=broker: list_dead_letters(b, limit=50), runs=20)
            print(
                f"{type(broker).__name__}: queue_figures {figures}; "
                f"list_dead_letters(limit=50) of {DEAD}: {page}"
            )
        finally:
            if isinstance(broker, RabbitBroker):
                channel = await (await broker.connection.get()).channel()
                await broker.topology.delete(channel)
            elif isinstance(broker, RedisBroker):
                client = Redis.from_url(REDIS)
                await client.delete(*broker.keys.all())
                await client.aclose()
            await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
