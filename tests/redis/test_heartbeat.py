"""Heartbeats of Redis consumers: who counts as dead, what is claimed, what is left alone.

The sweep runs against the real server with hand-made consumers; the processes that really die
are in ``test_dead_worker.py``.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest
from redis.asyncio import Redis

from taskiq_kit import MemoryResultBackend
from taskiq_kit.redis import RedisBroker, RedisKeys, RedisSettingError
from taskiq_kit.redis.heartbeat import Liveness
from tests.brokers import in_process_worker
from tests.redis.harness import REDIS_URL, make_test_broker
from tests.redis.waiting import eventually

pytestmark = pytest.mark.redis


async def _server_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def _hold(redis: Redis, keys: RedisKeys, consumer: str, count: int) -> list[bytes]:
    """``count`` new entries, read (so pending) by ``consumer``."""
    for number in range(count):
        await redis.xadd(keys.ready, {"data": f"{consumer}-{number}".encode()})
    reply = await redis.xreadgroup(keys.group, consumer, {keys.ready: ">"}, count=count)
    return [entry_id for entry_id, _fields in reply[0][1]]


async def _owners(redis: Redis, keys: RedisKeys) -> dict[bytes, int]:
    if not await redis.exists(keys.ready):
        return {}
    return {
        c["name"]: int(c["pending"]) for c in await redis.xinfo_consumers(keys.ready, keys.group)
    }


def _liveness(redis: Redis, keys: RedisKeys, name: str = "me") -> Liveness:
    def no_thread() -> Redis:
        raise AssertionError("the sweep needs no heartbeat thread")

    return Liveness(redis, no_thread, keys, name=name, interval=1.0, dead_after=3.0)


async def _settled_clock(redis: Redis, keys: RedisKeys, now: int) -> None:
    """Redis has been answering heartbeats for a minute (no recent silence)."""
    await redis.hset(keys.heartbeat_clock, mapping={"seen": now, "resumed": now - 60_000})


async def test_sweep_claims_only_dead_consumers_and_deletes_them(queue: str, redis: Redis) -> None:
    keys = RedisKeys(queue=queue)
    await redis.xgroup_create(keys.ready, keys.group, id="0", mkstream=True)
    dead = await _hold(redis, keys, "dead", 3)
    await _hold(redis, keys, "slow", 2)  # alive, its tasks running for long
    await _hold(redis, keys, "old", 1)  # a worker without heartbeat: the idle reclaim's job
    await redis.xgroup_createconsumer(keys.ready, keys.group, "me")
    now = await _server_ms(redis)
    await redis.zadd(keys.heartbeats, {"dead": now - 1, "slow": now + 60_000, "me": now + 3000})
    await _settled_clock(redis, keys, now)

    claimed = await _liveness(redis, keys).sweep(32)

    assert sorted(entry_id.encode() for entry_id, _body, _attempt in claimed) == sorted(dead)
    assert {body for _id, body, _attempt in claimed} == {b"dead-0", b"dead-1", b"dead-2"}
    # One claim is one more delivery: the second, for messages read once.
    assert {attempt for _id, _body, attempt in claimed} == {2}
    pending = await redis.xpending_range(keys.ready, keys.group, "-", "+", 10, "me")
    assert sorted(p["times_delivered"] for p in pending) == [2, 2, 2]
    assert await _owners(redis, keys) == {b"slow": 2, b"old": 1, b"me": 3}
    assert set(await redis.zrange(keys.heartbeats, 0, -1)) == {b"slow", b"me"}


async def test_sweep_claims_no_more_than_asked_and_finishes_later(queue: str, redis: Redis) -> None:
    keys = RedisKeys(queue=queue)
    await redis.xgroup_create(keys.ready, keys.group, id="0", mkstream=True)
    await _hold(redis, keys, "dead", 5)
    now = await _server_ms(redis)
    await redis.zadd(keys.heartbeats, {"dead": now - 1, "me": now + 3000})
    await _settled_clock(redis, keys, now)
    liveness = _liveness(redis, keys)

    assert len(await liveness.sweep(3)) == 3
    assert (await _owners(redis, keys))[b"dead"] == 2, "the rest stays with the dead consumer"
    assert liveness.seconds_to_sweep(0.0) == 0.0, "a full sweep is followed by another"
    assert len(await liveness.sweep(3)) == 2
    assert b"dead" not in await _owners(redis, keys)
    assert await redis.zscore(keys.heartbeats, "dead") is None


async def test_a_dead_consumers_entry_without_data_is_dead_lettered(
    queue: str, redis: Redis
) -> None:
    broker = make_test_broker(queue, heartbeat_interval=0.1, dead_after=0.3)
    keys = broker.keys
    await redis.xgroup_create(keys.ready, keys.group, id="0", mkstream=True)
    entry_id = await redis.xadd(keys.ready, {"junk": b"not a message"})
    await redis.xreadgroup(keys.group, "ghost", {keys.ready: ">"})
    await redis.zadd(keys.heartbeats, {"ghost": 0})  # its deadline passed long ago
    await broker.startup()
    try:
        async with in_process_worker(broker):
            await eventually(lambda: _dead_letters(redis, keys, 1), 10, "the dead letter")
            await eventually(lambda: _beating(redis, keys, 1), 5, "the ghost's removal")
    finally:
        await broker.shutdown()
    ((_id, fields),) = await redis.xrange(keys.dead)
    assert fields[b"id"] == entry_id
    assert b"'data' field" in fields[b"reason"]
    assert await redis.xlen(keys.ready) == 0


async def _dead_letters(redis: Redis, keys: RedisKeys, count: int) -> bool:
    return int(await redis.xlen(keys.dead)) == count


@pytest.mark.parametrize("case", ["after a silence of Redis", "own heartbeat stale"])
async def test_sweep_waits_when_it_cannot_tell_dead_from_silent(
    queue: str, redis: Redis, case: str
) -> None:
    keys = RedisKeys(queue=queue)
    await redis.xgroup_create(keys.ready, keys.group, id="0", mkstream=True)
    await _hold(redis, keys, "other", 2)
    now = await _server_ms(redis)
    await redis.zadd(keys.heartbeats, {"other": now - 1, "me": now + 3000})
    if case == "after a silence of Redis":
        # Nobody ran a heartbeat script for 10 s (Redis down or stalled): every deadline passed
        # meanwhile, "other" may be alive and not have beaten again yet.
        await redis.hset(keys.heartbeat_clock, mapping={"seen": now - 10_000, "resumed": 0})
    else:
        await _settled_clock(redis, keys, now)
        await redis.zadd(keys.heartbeats, {"me": now - 1})

    assert await _liveness(redis, keys).sweep(32) == []
    assert await _owners(redis, keys) == {b"other": 2}
    if case == "after a silence of Redis":
        resumed = int(await redis.hget(keys.heartbeat_clock, "resumed") or 0)
        assert resumed >= now, "the silence was not noticed"


async def test_a_consuming_worker_beats_and_is_removed_once_it_stops(
    queue: str, redis: Redis
) -> None:
    # Loose timings: a loaded machine must not make either look dead while both run.
    first = make_test_broker(queue, heartbeat_interval=0.5, dead_after=2.5)
    second = make_test_broker(queue, heartbeat_interval=0.5, dead_after=2.5)
    await first.startup()
    await second.startup()
    try:
        async with in_process_worker(second):
            await eventually(lambda: _beating(redis, first.keys, 1), 10, "the second to beat")
            (survivor,) = await redis.zrange(first.keys.heartbeats, 0, -1)
            async with in_process_worker(first):
                await eventually(lambda: _beating(redis, first.keys, 2), 10, "the first to beat")
                now = await _server_ms(redis)
                beats = await redis.zrange(first.keys.heartbeats, 0, -1, withscores=True)
                assert all(deadline - now <= 2500 for _name, deadline in beats), beats
                await _settled_clock(redis, first.keys, now)  # sweeps start at once
            # Shutting down declares the consumer dead: the other one deletes it within a sweep
            # (0.25 s), well before its last deadline (at least 2 s away) passes.
            await first.shutdown()
            await eventually(lambda: _beating(redis, first.keys, 1), 1.5, "the removal")
            assert await redis.zrange(first.keys.heartbeats, 0, -1) == [survivor]
            assert set(await _owners(redis, first.keys)) <= {survivor}
    finally:
        await first.shutdown()
        await second.shutdown()


async def _beating(redis: Redis, keys: RedisKeys, count: int) -> bool:
    return int(await redis.zcard(keys.heartbeats)) == count


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"heartbeat_interval": 0}, "heartbeat_interval=0"),
        ({"heartbeat_interval": 2.0}, "dead_after=3.0: must be at least twice heartbeat_interval"),
        ({"dead_after": 1.5}, "dead_after=1.5: must be at least twice heartbeat_interval (1.0 s)"),
        ({"dead_after": float("nan")}, "dead_after=nan"),
        ({"dead_after": float("inf")}, "dead_after=inf"),
        ({"heartbeat_interval": float("nan")}, "heartbeat_interval=nan: must be a number"),
    ],
)
def test_bad_heartbeat_settings_are_refused(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(RedisSettingError, match=re.escape(fragment)):
        RedisBroker(REDIS_URL, result_backend=MemoryResultBackend(), **options)


def _heartbeat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("taskiq-kit-heartbeat-")]


async def test_shutdown_ends_the_heartbeat_thread(queue: str, redis: Redis) -> None:
    broker = make_test_broker(queue, heartbeat_interval=0.05, dead_after=0.1)
    before = set(_heartbeat_threads())
    await broker.startup()
    try:
        async with in_process_worker(broker):
            await eventually(lambda: _beating(redis, broker.keys, 1), 10, "the first beat")
            assert len(set(_heartbeat_threads()) - before) == 1
    finally:
        await broker.shutdown()
    assert set(_heartbeat_threads()) - before == set()
