"""Real ``taskiq worker`` processes on the Redis broker: SIGKILL, SIGTERM, memory under load."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from taskiq_kit.redis import RedisBroker
from tests.brokers import in_process_worker
from tests.redis.harness import REDIS_URL, make_test_broker
from tests.redis.processes import kill_group, rss_bytes, worker_child_pid, worker_process
from tests.redis.waiting import eventually
from tests.redis.worker_app import done_key, runs_key, started_key

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _kicker(queue: str) -> tuple[RedisBroker, Any]:
    broker = make_test_broker(queue)

    @broker.task(task_name="record")
    async def record(number: int, sleep: float = 0.0) -> None:
        raise AssertionError("runs in the worker process")

    return broker, record


async def _wait_count(redis: Redis, key: str, target: int, timeout: float) -> None:
    async def reached() -> bool:
        if key.endswith(":done"):
            return int(await redis.scard(key)) >= target
        return int(await redis.get(key) or 0) >= target

    await eventually(reached, timeout, f"{key} to reach {target}")


@pytest.mark.timeout(120)
async def test_sigkill_mid_flow_loses_no_task(queue: str, redis: Redis) -> None:
    broker, record = _kicker(queue)
    await broker.startup()
    options = ("--max-async-tasks", "10")
    env = {"KIT_TEST_IDLE_TIMEOUT": "2", "KIT_TEST_READ_COUNT": "16"}
    try:
        with (
            worker_process(queue, REDIS_URL, *options, **env) as victim,
            worker_process(queue, REDIS_URL, *options, **env),
        ):
            for start in range(0, 1000, 100):
                await asyncio.gather(*(record.kiq(n, 0.03) for n in range(start, start + 100)))
            await _wait_count(redis, done_key(queue), 300, 60)
            victim_pid = worker_child_pid(victim)
            kill_group(victim, signal.SIGKILL)
            victim.wait(10)
            consumers = await redis.xinfo_consumers(broker.keys.ready, broker.keys.group)
            held = sum(
                int(c["pending"]) for c in consumers if f"-{victim_pid}-".encode() in c["name"]
            )
            assert held > 0, "the killed worker held no message: the test proves nothing"
            await _wait_count(redis, done_key(queue), 1000, 60)
            # Every entry is acknowledged and deleted by the surviving worker.
            await eventually(
                lambda: _settled(redis, broker), 10, "the survivor to settle every message"
            )
    finally:
        await broker.shutdown()
    runs = int(await redis.get(runs_key(queue)) or 0)
    # Duplicates are bounded by what the dead worker held: running tasks plus its read-ahead.
    assert 1000 <= runs <= 1000 + held, f"{runs} runs, the killed worker held {held}"


async def _only_consumer_left(redis: Redis, broker: RedisBroker) -> bool:
    """Whether the group and the heartbeats hold one consumer, the same."""
    consumers = {
        c["name"] for c in await redis.xinfo_consumers(broker.keys.ready, broker.keys.group)
    }
    beating = set(await redis.zrange(broker.keys.heartbeats, 0, -1))
    return len(consumers) == 1 and consumers == beating


async def _settled(redis: Redis, broker: RedisBroker) -> bool:
    pending = await redis.xpending(broker.keys.ready, broker.keys.group)
    return int(pending["pending"]) == 0 and await redis.xlen(broker.keys.ready) == 0


@pytest.mark.timeout(60)
async def test_sigterm_exits_in_time_and_leaves_the_task_claimable(
    queue: str, redis: Redis
) -> None:
    broker, record = _kicker(queue)
    await broker.startup()
    try:
        with worker_process(
            queue,
            REDIS_URL,
            "--wait-tasks-timeout",
            "1",
            "--shutdown-timeout",
            "3",
            KIT_TEST_IDLE_TIMEOUT="60",
        ) as worker:
            await record.kiq(7, 60.0)
            await _wait_count(redis, started_key(queue), 1, 30)
            stopped = time.monotonic()
            kill_group(worker, signal.SIGTERM)
            worker.wait(15)
            assert time.monotonic() - stopped < 8, "the worker overran its shutdown timeouts"
        pending = await redis.xpending(broker.keys.ready, broker.keys.group)
        assert int(pending["pending"]) == 1, "the unfinished task was settled or lost"
        # Released on shutdown: another worker takes it now, not after the 60 s idle timeout.
        ran: list[int] = []
        taker = make_test_broker(queue, idle_timeout=60)

        @taker.task(task_name="record")
        async def take(number: int, sleep: float = 0.0) -> None:
            ran.append(number)

        await taker.startup()
        try:
            async with in_process_worker(taker):
                await eventually(lambda: bool(ran), 10, "the released task")
                # The stopped worker declared itself dead: the taker deletes its consumer.
                await eventually(
                    lambda: _only_consumer_left(redis, broker), 10, "the stopped consumer's removal"
                )
        finally:
            await taker.shutdown()
        assert ran == [7]
    finally:
        await broker.shutdown()


@pytest.mark.timeout(120)
async def test_100k_pending_delayed_tasks_keep_worker_memory_flat(queue: str, redis: Redis) -> None:
    broker, record = _kicker(queue)
    await broker.startup()
    try:
        with worker_process(queue, REDIS_URL, KIT_TEST_IDLE_TIMEOUT="5") as worker:
            await record.kiq(-1)
            await _wait_count(redis, done_key(queue), 1, 30)
            await asyncio.sleep(0.5)
            pid = worker_child_pid(worker)
            before = rss_bytes(pid)
            # 100,000 tasks due in an hour, about 30 MB of bodies if a worker loaded them.
            template = broker.formatter.dumps(record.kicker()._prepare_message(0)).message
            padding = b" " * 200
            due = time.time() + 3600
            for start in range(0, 100_000, 5_000):
                async with redis.pipeline(transaction=False) as pipe:
                    pipe.zadd(
                        broker.keys.delayed,
                        {f"far-{n}": due + n / 1000 for n in range(start, start + 5_000)},
                    )
                    pipe.hset(
                        broker.keys.payloads,
                        mapping={
                            f"far-{n}": template + padding for n in range(start, start + 5_000)
                        },
                    )
                    await pipe.execute()
            # Meanwhile short delays keep the promoter busy in front of the big set.
            for start in range(0, 1000, 100):
                await asyncio.gather(
                    *(
                        record.kicker().with_labels(delay=0.5).kiq(n)
                        for n in range(start, start + 100)
                    )
                )
            await _wait_count(redis, done_key(queue), 1001, 60)
            await asyncio.sleep(1.5)
            after = rss_bytes(pid)
            assert worker.poll() is None
    finally:
        await broker.shutdown()
    assert await redis.zcard(broker.keys.delayed) == 100_000, "far tasks were promoted early"
    growth = after - before
    assert growth < 12 * 1024 * 1024, f"worker RSS grew by {growth / 1e6:.1f} MB"
