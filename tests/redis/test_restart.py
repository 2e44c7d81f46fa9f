"""A Redis restart under a running worker: it reconnects by itself, no hot loop, no crash.

Uses a private ``redis-server`` on a free port, so the shared server stays up for other tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from tests.brokers import in_process_worker
from tests.private import redis as private
from tests.private.redis import PrivateRedis
from tests.redis.harness import make_test_broker
from tests.redis.waiting import eventually

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A redis-server of this test's own, without persistence, restartable on its port."""
    with private.private_redis(appendonly=False) as server:
        yield server


@pytest.mark.timeout(60)
async def test_worker_survives_a_redis_restart(private_redis: PrivateRedis) -> None:
    broker = make_test_broker("restart", url=private_redis.url, idle_timeout=1.0)
    ran: list[str] = []

    @broker.task(task_name="mark")
    async def mark(tag: str) -> None:
        ran.append(tag)

    await broker.startup()
    try:
        async with in_process_worker(broker) as receiver:
            await mark.kiq("before")
            await eventually(lambda: "before" in ran, 10, "before")
            await mark.kicker().with_labels(delay=30).kiq("lost with the data")

            private_redis.stop()
            cpu = time.process_time()
            await asyncio.sleep(3)
            spent = time.process_time() - cpu
            private_redis.start()

            # Without persistence the stream and the group are gone: the worker re-creates them.
            await mark.kiq("after")
            await eventually(lambda: "after" in ran, 15, "after")
            await mark.kicker().with_labels(delay=0.5).kiq("delayed after")
            await eventually(lambda: "delayed after" in ran, 10, "delayed after")
            assert receiver is not None
    finally:
        await broker.shutdown()
    assert spent < 1.0, f"the worker burnt {spent:.2f} s of CPU in 3 s of outage: a hot loop"
    client = Redis.from_url(private_redis.url)
    try:
        groups = await client.xinfo_groups(broker.keys.ready)
    finally:
        await client.aclose()
    assert [group["name"] for group in groups] == [broker.keys.group.encode()]
