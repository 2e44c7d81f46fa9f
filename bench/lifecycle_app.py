"""The brokers of ``bench/lifecycle_bench.py``, built from the environment (worker and client alike).

``BENCH_CONFIG`` picks the configuration, ``BENCH_NAME`` the uuid-ish name of this run's queues and
keys. Run by ``taskiq worker bench.lifecycle_app:broker --workers 1 --max-async-tasks 100``.
"""

from __future__ import annotations

import os
from typing import Any

from taskiq import AsyncBroker

AMQP_URL = os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")

#: Configuration name -> what it is, as printed.
CONFIGS = {
    "kit-redis": 'taskiq-kit make_broker("redis://")',
    "peer-redis": "taskiq-redis RedisStreamBroker + RedisAsyncResultBackend",
    "kit-rabbit-redis": 'taskiq-kit make_broker("amqp://", result_url="redis://")',
    "peer-rabbit-redis": "taskiq-aio-pika AioPikaBroker + RedisAsyncResultBackend",
    "kit-rabbit-pg": 'taskiq-kit make_broker("amqp://", result_url="postgresql://")',
}


def _peer_results(name: str) -> Any:
    from taskiq_redis import RedisAsyncResultBackend

    # The kit keeps results a day by default; the peer gets the same expiry (one SET ... EX).
    return RedisAsyncResultBackend(REDIS_URL, result_ex_time=86_400, prefix_str=name)


def build(config: str, name: str) -> AsyncBroker:
    """The broker of ``config``, its queues and keys named after ``name``."""
    if config == "kit-redis":
        from taskiq_kit import make_broker

        return make_broker(
            REDIS_URL, queue_name=name, key_prefix=name, result_options={"prefix": name}
        )
    if config in ("kit-rabbit-redis", "kit-rabbit-pg"):
        from taskiq_kit import make_broker

        store = REDIS_URL if config == "kit-rabbit-redis" else POSTGRES_URL
        options = {"prefix": name} if config == "kit-rabbit-redis" else {"table": name}
        return make_broker(
            AMQP_URL,
            result_url=store,
            result_options=options,
            exchange=name,
            queue_name=name,
        )
    if config == "peer-redis":
        from taskiq_redis import RedisStreamBroker

        return RedisStreamBroker(REDIS_URL, queue_name=name).with_result_backend(
            _peer_results(name)
        )
    if config == "peer-rabbit-redis":
        import aio_pika
        from taskiq_aio_pika import AioPikaBroker
        from taskiq_aio_pika.exchange import Exchange
        from taskiq_aio_pika.queue import Queue, QueueType

        return AioPikaBroker(
            AMQP_URL,
            exchange=Exchange(name=name, type=aio_pika.ExchangeType.DIRECT),
            task_queues=[Queue(name=name)],
            delay_queue=Queue(name=f"{name}.delay", type=QueueType.CLASSIC),
            dead_letter_queue=Queue(name=f"{name}.dlq"),
        ).with_result_backend(_peer_results(name))
    raise ValueError(f"unknown BENCH_CONFIG {config!r}; one of {', '.join(CONFIGS)}")


broker = build(os.environ.get("BENCH_CONFIG", "kit-redis"), os.environ.get("BENCH_NAME", "bench"))


@broker.task(task_name="noop")
async def noop(number: int) -> int:
    """Does nothing; its result is stored."""
    return number


if os.environ.get("BENCH_STATS"):
    import collections

    from redis.asyncio.client import Pipeline, Redis
    from taskiq import TaskiqEvents, TaskiqState

    _calls: collections.Counter[str] = collections.Counter()
    _execute = Redis.execute_command
    _pipe_execute = Pipeline.execute

    async def _counted(self: Any, *args: Any, **options: Any) -> Any:
        _calls[str(args[0])] += 1
        return await _execute(self, *args, **options)

    async def _counted_pipe(self: Any, *args: Any, **options: Any) -> Any:
        _calls["PIPELINE"] += 1
        return await _pipe_execute(self, *args, **options)

    Redis.execute_command = _counted  # type: ignore[method-assign]
    Pipeline.execute = _counted_pipe  # type: ignore[method-assign]

    def _print_stats() -> None:
        batcher = getattr(getattr(broker.result_backend, "_lifecycle", None), "_batcher", None)
        writes = "" if batcher is None else f"writes {batcher.items} in {batcher.flushes} trips; "
        print(f"BENCH_STATS {writes}redis calls {dict(_calls)}", flush=True)

    async def _print_forever() -> None:
        import asyncio

        while True:
            await asyncio.sleep(0.5)
            _print_stats()

    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    async def _stats(state: TaskiqState) -> None:
        import asyncio

        state.stats_printer = asyncio.create_task(_print_forever())
