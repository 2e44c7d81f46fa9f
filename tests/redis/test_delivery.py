"""Redis broker delivery, in-process: delays in order, redelivery, dead-lettering, cleanup."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from taskiq_kit import MemoryResultBackend, make_broker
from taskiq_kit.redis import RedisBroker, RedisKeys, RedisSettingError, scripts
from tests.brokers import in_process_worker
from tests.redis.harness import REDIS_URL, make_test_broker, read_dead_letters
from tests.redis.waiting import eventually

pytestmark = pytest.mark.redis


async def test_make_broker_builds_a_redis_broker(redis_url: str) -> None:
    broker = make_broker(redis_url, queue_name="factory-check", idle_timeout=7)
    assert isinstance(broker, RedisBroker)
    assert broker.keys.ready == "taskiq-kit:{factory-check}:ready"
    assert broker.idle_timeout == 7


async def test_prune_deletes_only_idle_consumers_that_hold_nothing(
    queue: str, redis: Redis
) -> None:
    keys = RedisKeys(queue=queue)
    await redis.xgroup_create(keys.ready, keys.group, id="0", mkstream=True)
    await redis.xadd(keys.ready, {"data": b"x"})
    await redis.xreadgroup(keys.group, "holder", {keys.ready: ">"})
    await redis.xgroup_createconsumer(keys.ready, keys.group, "gone")
    await redis.xgroup_createconsumer(keys.ready, keys.group, "me")
    await asyncio.sleep(0.05)
    prune = redis.register_script(scripts.PRUNE)
    assert await prune(keys=[keys.ready], args=[keys.group, 20, "me"]) == 1
    names = {c["name"] for c in await redis.xinfo_consumers(keys.ready, keys.group)}
    assert names == {b"holder", b"me"}


@pytest.mark.timeout(90)
async def test_mixed_delays_run_in_due_order_and_never_early(queue: str, redis: Redis) -> None:
    broker = make_test_broker(queue)
    ran: dict[int, float] = {}

    @broker.task(task_name="stamp")
    async def stamp(number: int) -> None:
        ran[number] = time.time()

    rng = random.Random(4)
    delays = [round(rng.uniform(0.2, 4.0), 3) for _ in range(300)]
    await broker.startup()
    try:
        async with in_process_worker(broker):
            due: dict[int, float] = {}
            for number, delay in enumerate(delays):
                due[number] = time.time() + delay
                await stamp.kicker().with_labels(delay=delay).kiq(number)
            await eventually(lambda: len(ran) == len(delays), 20, "all delayed tasks")
    finally:
        await broker.shutdown()
    early = {n: due[n] - ran[n] for n in ran if ran[n] < due[n]}
    assert not early, f"tasks ran before their due time: {early}"
    lateness = sorted(ran[n] - due[n] for n in ran)
    assert lateness[int(len(lateness) * 0.95)] < 0.5, lateness[-10:]
    # Due order is kept for tasks whose due times are apart by more than the scheduling noise.
    by_due = sorted(ran, key=due.__getitem__)
    for earlier, later in itertools.pairwise(by_due):
        if due[later] - due[earlier] > 0.15:
            assert ran[earlier] <= ran[later], (earlier, later)
    # Nothing is left behind: the delayed set is empty and acked entries were deleted.
    assert await redis.zcard(broker.keys.delayed) == 0
    assert await redis.hlen(broker.keys.payloads) == 0
    assert await redis.xlen(broker.keys.ready) == 0


async def test_message_of_a_dead_consumer_is_redelivered_without_new_traffic(
    queue: str, redis: Redis
) -> None:
    broker = make_test_broker(queue, idle_timeout=0.5)
    ran: list[str] = []

    @broker.task(task_name="once")
    async def once(tag: str) -> None:
        ran.append(tag)

    await broker.startup()
    try:
        await once.kiq("lost")
        # A worker that read the message and died: the entry is pending under its name.
        await redis.xgroup_create(broker.keys.ready, broker.keys.group, id="0", mkstream=True)
        read = await redis.xreadgroup(broker.keys.group, "ghost", {broker.keys.ready: ">"})
        assert len(read[0][1]) == 1
        async with in_process_worker(broker):
            await eventually(lambda: ran == ["lost"], 10, "the redelivery")
            await eventually(lambda: _pending_is_zero(redis, broker), 5, "the ack")
    finally:
        await broker.shutdown()
    assert await redis.xlen(broker.keys.ready) == 0


async def _pending_is_zero(redis: Redis, broker: RedisBroker) -> bool:
    pending = await redis.xpending(broker.keys.ready, broker.keys.group)
    return int(pending["pending"]) == 0


async def test_message_over_the_delivery_limit_is_dead_lettered(queue: str, redis: Redis) -> None:
    broker = make_test_broker(queue, idle_timeout=0.3, max_delivery_attempts=3)
    ran: list[int] = []

    @broker.task(task_name="crashy")
    async def crashy(number: int) -> None:
        ran.append(number)

    await broker.startup()
    try:
        await crashy.kiq(1)
        await redis.xgroup_create(broker.keys.ready, broker.keys.group, id="0", mkstream=True)
        read = await redis.xreadgroup(broker.keys.group, "ghost", {broker.keys.ready: ">"})
        entry_id = read[0][1][0][0]
        # As if three workers in a row had died running it.
        await redis.xclaim(
            broker.keys.ready, broker.keys.group, "ghost", 0, [entry_id], retrycount=3
        )
        async with in_process_worker(broker):
            await eventually(
                lambda: _has_dead_letter(redis, broker), 10, "the message in the dead letters"
            )
            await crashy.kiq(2)
            await eventually(lambda: ran == [2], 10, "the next task")
    finally:
        await broker.shutdown()
    (body, reason), *_ = await read_dead_letters(redis, broker.keys)
    assert b"crashy" in body
    assert "delivered 4 times" in reason
    assert ran == [2]
    assert await redis.xlen(broker.keys.ready) == 0


async def _has_dead_letter(redis: Redis, broker: RedisBroker) -> bool:
    return bool(await redis.xlen(broker.keys.dead))


async def test_dead_letter_records_reason_and_settles(queue: str, redis: Redis) -> None:
    broker = make_test_broker(queue)
    body = b"not json " + uuid.uuid4().hex.encode()
    await broker.startup()
    try:
        await redis.xadd(broker.keys.ready, {"data": body})
        async with in_process_worker(broker):
            await eventually(lambda: _has_dead_letter(redis, broker), 10, "the dead letter")
            await eventually(lambda: _pending_is_zero(redis, broker), 5, "the settlement")
    finally:
        await broker.shutdown()
    entries = await redis.xrange(broker.keys.dead)
    assert entries[0][1][b"data"] == body
    assert b"unparseable" in entries[0][1][b"reason"]
    assert entries[0][1][b"attempt"] == b"1"
    assert await redis.xlen(broker.keys.ready) == 0


async def test_redis_url_in_repr_hides_password() -> None:
    broker = RedisBroker(
        "redis://user:s3cret@127.0.0.1:6379/0",
        result_backend=make_test_broker("x").result_backend,
    )
    assert "s3cret" not in repr(broker)
    assert REDIS_URL


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"queue_name": "a{b}"}, "queue_name='a{b}'"),
        ({"key_prefix": "has space"}, "key_prefix"),
        ({"read_count": 0}, "read_count=0"),
        ({"idle_timeout": 0}, "idle_timeout=0"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(RedisSettingError, match=re.escape(fragment)):
        RedisBroker(REDIS_URL, result_backend=MemoryResultBackend(), **options)
