"""A dead Redis worker's messages go to a live one within seconds; a live slow one keeps its own.

Real ``taskiq worker`` processes on the shared Redis, default heartbeat settings (1 s beats, dead
after 3 s) and the default 30 s ``idle_timeout``, so only the heartbeat path can be this fast.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from taskiq_kit.redis import RedisBroker, RedisKeys
from tests.redis.harness import REDIS_URL, make_test_broker
from tests.redis.processes import kill_group, worker_child_pid, worker_process
from tests.redis.waiting import eventually
from tests.redis.worker_app import done_key, hang_key, started_key, starts_key

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: The promise: a dead worker's tasks run elsewhere within 5 s of its death (measured ~3 s) ...
RECOVERY = 5.0
#: ... plus room for a loaded CI machine; the idle-timeout path alone takes 30 s.
MARGIN = 2.5
DEFAULTS = {"KIT_TEST_IDLE_TIMEOUT": "30"}


def _kicker(queue: str, url: str = REDIS_URL) -> tuple[RedisBroker, Any, Any]:
    broker = make_test_broker(queue, url)

    @broker.task(task_name="record")
    async def record(number: int, sleep: float = 0.0, *, block: bool = False) -> None:
        raise AssertionError("runs in the worker process")

    @broker.task(task_name="hang")
    async def hang(number: int) -> None:
        raise AssertionError("runs in the worker process")

    return broker, record, hang


async def _consumers(redis: Redis, keys: RedisKeys) -> dict[str, int]:
    if not await redis.exists(keys.ready):
        return {}
    infos = await redis.xinfo_consumers(keys.ready, keys.group)
    return {info["name"].decode(): int(info["pending"]) for info in infos}


async def _beating(redis: Redis, keys: RedisKeys) -> set[str]:
    return {name.decode() for name in await redis.zrange(keys.heartbeats, 0, -1)}


@pytest.mark.timeout(90)
async def test_killed_workers_tasks_run_on_a_live_worker_within_seconds(
    queue: str, redis: Redis, worker_url: str
) -> None:
    broker, _record, hang = _kicker(queue, worker_url)
    await broker.startup()
    try:
        with worker_process(queue, worker_url, "--max-async-tasks", "2", **DEFAULTS) as victim:
            # 2 tasks running (they hang until the worker dies) and 4 read ahead, not started.
            await redis.set(hang_key(queue), 1)
            await asyncio.gather(*(hang.kiq(number) for number in range(6)))

            async def victim_holds_all() -> bool:
                started = await redis.hvals(starts_key(queue))
                return (
                    len(started) == 2 and sum((await _consumers(redis, broker.keys)).values()) == 6
                )

            await eventually(victim_holds_all, 30, "the victim to hold all 6 tasks")
            (victim_name,) = await _consumers(redis, broker.keys)
            assert f"-{worker_child_pid(victim)}-" in victim_name
            with worker_process(queue, worker_url, **DEFAULTS):
                await eventually(
                    lambda: _beating_count(redis, broker.keys, 2), 30, "the survivor to beat"
                )
                kill_group(victim, signal.SIGKILL)
                killed = time.monotonic()
                await redis.delete(hang_key(queue))  # the same tasks run at once elsewhere
                await eventually(
                    lambda: _done_count(redis, queue, 6), 30, "the survivor to run all 6"
                )
                recovered = time.monotonic() - killed
                await eventually(
                    lambda: _gone(redis, broker.keys, victim_name), 10, "the victim's removal"
                )
    finally:
        await broker.shutdown()
    assert recovered < RECOVERY + MARGIN, f"took {recovered:.1f} s after the kill"
    # The prefetched 4 ran once (on the survivor), the 2 the victim had started twice.
    starts = sorted(int(count) for count in await redis.hvals(starts_key(queue)))
    assert starts == [1, 1, 1, 1, 2, 2], starts


async def _beating_count(redis: Redis, keys: RedisKeys, count: int) -> bool:
    return len(await _beating(redis, keys)) == count


async def _done_count(redis: Redis, queue: str, count: int) -> bool:
    return int(await redis.scard(done_key(queue))) == count


async def _nothing_pending(redis: Redis, keys: RedisKeys) -> bool:
    return int((await redis.xpending(keys.ready, keys.group))["pending"]) == 0


async def _gone(redis: Redis, keys: RedisKeys, name: str) -> bool:
    return name not in await _consumers(redis, keys) and name not in await _beating(redis, keys)


@pytest.mark.timeout(90)
async def test_a_live_worker_running_longer_than_dead_after_keeps_its_tasks(
    queue: str, redis: Redis
) -> None:
    broker, record, _hang = _kicker(queue)
    await broker.startup()
    try:
        with (
            worker_process(queue, REDIS_URL, **DEFAULTS),
            worker_process(queue, REDIS_URL, **DEFAULTS),
        ):
            await eventually(lambda: _beating_count(redis, broker.keys, 2), 30, "both to beat")
            # Twice the 3 s dead_after: one task awaits, one blocks its worker's event loop.
            await record.kiq(1, 6.0)
            await record.kiq(2, 6.0, block=True)
            await eventually(lambda: _done_count(redis, queue, 2), 40, "both tasks")
            # A robbed task would have started again on the other worker after ~3 s, before
            # the first run finished: the start counter would read 3.
            assert int(await redis.get(started_key(queue)) or 0) == 2
            await eventually(lambda: _nothing_pending(redis, broker.keys), 10, "the acks")
            assert len(await _beating(redis, broker.keys)) == 2, "a live worker was removed"
    finally:
        await broker.shutdown()
