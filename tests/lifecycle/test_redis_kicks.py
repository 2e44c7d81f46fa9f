"""Kicks on a Redis broker whose store is the same Redis: record and ``XADD`` in one round trip."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from taskiq_kit import TaskStatus, get_status, make_broker
from taskiq_kit.redis import RedisBroker
from tests.brokers import in_process_worker
from tests.private.redis import private_redis

pytestmark = [pytest.mark.redis]


async def _script_calls(client: Redis) -> int:
    stats = await client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("eval", "evalsha")
    )


async def test_a_kick_is_one_round_trip_and_survives_a_flushed_script_cache() -> None:
    with private_redis(appendonly=False) as server:
        broker = make_broker(server.url, queue_name=f"q-{uuid.uuid4().hex[:8]}")
        assert isinstance(broker, RedisBroker)
        ran: list[int] = []

        @broker.task(task_name="note")
        async def note(number: int) -> int:
            ran.append(number)
            return number

        await broker.startup()
        monitor = Redis.from_url(server.url)
        try:
            await note.kiq(0)  # scripts loaded
            before = await _script_calls(monitor)
            first = await asyncio.gather(*(note.kiq(n) for n in range(1, 51)))
            # 50 kicks: two script calls in one pipeline (the record writes, the appends), not
            # a record write and an append each.
            assert await _script_calls(monitor) - before == 2
            for task in first:
                assert await get_status(broker, task.task_id) is TaskStatus.PENDING
            # A server that lost its scripts (restarted, SCRIPT FLUSH) still takes kicks.
            await monitor.script_flush()
            second = await note.kiq(51)
            assert await get_status(broker, second.task_id) is TaskStatus.PENDING
            async with in_process_worker(broker):
                result = await second.wait_result(timeout=10, check_interval=0.02)
                await asyncio.gather(
                    *(t.wait_result(timeout=10, check_interval=0.02) for t in first)
                )
            assert result.return_value == 51
            assert sorted(ran) == list(range(52))
        finally:
            await monitor.aclose()
            await broker.shutdown()
