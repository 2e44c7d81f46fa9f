"""The scheduler in this process, on a memory broker, coordinating through a real Redis."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

import pytest
from redis.asyncio import Redis
from taskiq import Context, TaskiqDepends

from taskiq_kit import MemoryBroker, TaskStatus, get_status, make_broker
from taskiq_kit.scheduler import (
    FIRE_AT_LABEL,
    CronSchedule,
    IntervalSchedule,
    KitScheduler,
    OnceSchedule,
    RedisScheduleStore,
    Schedule,
    ScheduleExistsError,
    ScheduleNotFoundError,
    SchedulerKeys,
    fire_task_id,
)

pytestmark = pytest.mark.redis

Run = tuple[str, float, float]  # (task id, firing instant, execution time)


class Recorder:
    def __init__(self) -> None:
        self.broker = make_broker("memory://")
        assert isinstance(self.broker, MemoryBroker)
        self.runs: list[Run] = []

        @self.broker.task(task_name="tick")
        async def tick(context: Context = TaskiqDepends()) -> None:
            fire_at = float(context.message.labels[FIRE_AT_LABEL])
            self.runs.append((context.message.task_id, fire_at, time.time()))

    def instants(self) -> list[float]:
        return [fire_at for _, fire_at, _ in self.runs]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@asynccontextmanager
async def running(
    recorder: Recorder, redis_url: str, group: SchedulerKeys, *schedules: Schedule, **options: Any
) -> AsyncIterator[KitScheduler]:
    scheduler = KitScheduler(
        recorder.broker,
        redis_url=redis_url,
        schedules=schedules,
        name=group.name,
        prefix=group.prefix,
        **options,
    )
    await scheduler.startup()
    try:
        yield scheduler
    finally:
        await scheduler.shutdown()


async def test_interval_fires_on_the_second(
    recorder: Recorder, redis_url: str, group: SchedulerKeys
) -> None:
    tick = IntervalSchedule(id="tick", task="tick", interval=1)
    async with running(recorder, redis_url, group, tick):
        await asyncio.sleep(5.5)
    instants = recorder.instants()
    assert len(instants) >= 5
    assert all(b - a == 1.0 for a, b in itertools.pairwise(instants))  # no gap, no repeat
    for task_id, fire_at, ran_at in recorder.runs[1:]:  # the first may be up to `grace` late
        assert 0 <= ran_at - fire_at < 0.5
        assert task_id == fire_task_id(group.name, "tick", fire_at)


async def test_cron_with_seconds(recorder: Recorder, redis_url: str, group: SchedulerKeys) -> None:
    every_two = CronSchedule(id="tick", task="tick", cron="*/2 * * * * *")
    async with running(recorder, redis_url, group, every_two, grace=0.2):
        await asyncio.sleep(4.6)
    instants = recorder.instants()
    assert len(instants) >= 2
    assert all(instant % 2 == 0 for instant in instants)
    assert all(b - a == 2.0 for a, b in itertools.pairwise(instants))


async def test_once_fires_once(recorder: Recorder, redis_url: str, group: SchedulerKeys) -> None:
    at = datetime.fromtimestamp(round(time.time() + 1.5, 3), timezone.utc)
    past = datetime.fromtimestamp(time.time() - 60, timezone.utc)
    schedules = [
        OnceSchedule(id="soon", task="tick", at=at),
        OnceSchedule(id="missed-skip", task="tick", at=past),
        OnceSchedule(id="missed-run", task="tick", at=past, missed="run_once"),
    ]
    async with running(recorder, redis_url, group, *schedules):
        await asyncio.sleep(2.5)
    instants = sorted(recorder.instants())
    assert instants == [past.timestamp(), at.timestamp()]
    soon_run = next(run for run in recorder.runs if run[1] == at.timestamp())
    assert 0 <= soon_run[2] - at.timestamp() < 0.5


@pytest.mark.parametrize(("policy", "expected"), [("skip", 0), ("run_once", 1)])
async def test_missed_runs_policy(
    recorder: Recorder,
    redis_url: str,
    group: SchedulerKeys,
    redis_client: Redis,
    policy: str,
    expected: int,
) -> None:
    now = time.time()
    anchor = datetime.fromtimestamp(now - 12.5, timezone.utc)  # grid: now-12.5, -7.5, -2.5, +2.5
    schedule = IntervalSchedule(id="tick", task="tick", interval=5, anchor=anchor, missed=policy)
    # The last firing handled was the first grid point: two firings were missed since.
    await redis_client.hset(group.fired, "tick", repr(anchor.timestamp()))
    async with running(recorder, redis_url, group, schedule, grace=0.2):
        await asyncio.sleep(1.5)
        assert len(recorder.runs) == expected
        if expected:
            assert recorder.instants() == [round(now - 2.5, 6)]
        stored = float(await redis_client.hget(group.fired, "tick") or 0)
        assert stored == pytest.approx(now - 2.5, abs=1e-5)


async def test_dynamic_schedules(
    recorder: Recorder, redis_url: str, group: SchedulerKeys, redis_client: Redis
) -> None:
    store = RedisScheduleStore(redis_client, name=group.name, prefix=group.prefix)
    async with running(recorder, redis_url, group, refresh=0.2):
        tick = IntervalSchedule(id="dyn", task="tick", interval=0.5)
        await store.add(tick)
        with pytest.raises(ScheduleExistsError):
            await store.add(tick)
        assert await store.list() == [tick]
        await asyncio.sleep(1.6)
        assert len(recorder.runs) >= 2

        paused = await store.pause("dyn")
        assert paused.enabled is False
        assert (await store.get("dyn")).enabled is False
        await asyncio.sleep(0.4)  # a refresh
        count = len(recorder.runs)
        await asyncio.sleep(1.2)
        assert len(recorder.runs) == count

        await store.resume("dyn")
        await asyncio.sleep(1.4)
        assert len(recorder.runs) > count

        assert await store.delete("dyn") is True
        assert await store.delete("dyn") is False
        await asyncio.sleep(0.4)
        count = len(recorder.runs)
        await asyncio.sleep(1.2)
        assert len(recorder.runs) == count
        assert await store.list() == []
        with pytest.raises(ScheduleNotFoundError):
            await store.get("dyn")
        with pytest.raises(ScheduleNotFoundError):
            await store.pause("dyn")
    instants = recorder.instants()
    assert len(instants) == len(set(instants))


async def test_two_replicas_in_one_process_and_handover(
    recorder: Recorder, redis_url: str, group: SchedulerKeys
) -> None:
    tick = IntervalSchedule(id="tick", task="tick", interval=0.5)
    async with (
        running(recorder, redis_url, group, tick, lease=1.0) as first,
        running(recorder, redis_url, group, tick, lease=1.0) as second,
    ):
        await asyncio.sleep(1.2)
        assert first.is_leader != second.is_leader
        leader = first if first.is_leader else second
        await leader.shutdown()  # releases the lease: the other one takes over
        follower = second if leader is first else first
        await asyncio.sleep(1.5)
        assert follower.is_leader
    instants = recorder.instants()
    assert len(instants) == len(set(instants))  # each firing ran once
    gaps = [b - a for a, b in itertools.pairwise(instants)]
    assert max(gaps) <= 1.0  # the handover lost at most one firing


async def test_scheduled_tasks_get_kit_status_and_labels(
    recorder: Recorder, redis_url: str, group: SchedulerKeys
) -> None:
    tick = IntervalSchedule(id="tick", task="tick", interval=1, labels={"expires": 30})
    async with running(recorder, redis_url, group, tick):
        await asyncio.sleep(1.5)
        task_id = recorder.runs[0][0]
        assert await get_status(recorder.broker, task_id) == TaskStatus.SUCCESS


async def test_task_labels_schedule(redis_url: str, group: SchedulerKeys) -> None:
    broker = make_broker("memory://")
    ran: list[float] = []

    @broker.task(task_name="labelled", schedule=[{"interval": 1, "schedule_id": "lbl"}])
    async def labelled() -> None:
        ran.append(time.time())

    scheduler = KitScheduler(broker, redis_url=redis_url, name=group.name, prefix=group.prefix)
    await scheduler.startup()
    try:
        await asyncio.sleep(2.2)
        assert [schedule.id for schedule in scheduler.schedules] == ["lbl"]
    finally:
        await scheduler.shutdown()
    assert len(ran) >= 2


def test_bad_options(redis_url: str) -> None:
    with pytest.raises(ValueError, match=r"lease >= 0\.5"):
        KitScheduler(make_broker("memory://"), redis_url=redis_url, lease=0.1)


async def test_kick_ahead_uses_eta(
    recorder: Recorder, redis_url: str, group: SchedulerKeys
) -> None:
    tick = IntervalSchedule(id="tick", task="tick", interval=1)
    async with running(recorder, redis_url, group, tick, kick_ahead=0.5):
        await asyncio.sleep(3.4)
    assert len(recorder.runs) >= 3
    for _, fire_at, ran_at in recorder.runs[1:]:
        assert 0 <= ran_at - fire_at < 0.5  # the broker held it until its eta


@pytest.mark.parametrize(("policy", "expected_old"), [("skip", 0), ("run_once", 1)])
async def test_days_of_missed_seconds_are_caught_up_at_once(
    recorder: Recorder,
    redis_url: str,
    group: SchedulerKeys,
    redis_client: Redis,
    policy: str,
    expected_old: int,
) -> None:
    every_second = CronSchedule(id="tick", task="tick", cron="* * * * * *", missed=policy)
    three_days_ago = float(int(time.time()) - 3 * 86_400)
    await redis_client.hset(group.fired, "tick", repr(three_days_ago))
    # Start mid-second, so the latest missed instant is ~0.5 s old: beyond the grace time.
    await asyncio.sleep((1.45 - time.time() % 1) % 1)
    started = time.time()
    async with running(recorder, redis_url, group, every_second, grace=0.3):
        await asyncio.sleep(2.2)
    old = [instant for instant in recorder.instants() if instant < started]
    assert len(old) == expected_old
    recent = [instant for instant in recorder.instants() if instant >= started]
    assert len(recent) >= 2  # regular firings went on without a pause
