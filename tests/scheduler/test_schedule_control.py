"""Operating schedules (taskiq_kit.inspect.schedules) against a real Redis and a running replica.

The functions get a scheduler object that is never started (as in a dashboard or CLI process);
a second one, with the same group, runs the replica that fires. Firings are recorded by the task
itself; waits are on recorded firings, the replica's schedule version or the firing ledger.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
from redis.asyncio import Redis
from taskiq import Context, TaskiqDepends

from taskiq_kit import MemoryBroker, make_broker
from taskiq_kit.inspect.schedules import (
    list_schedules,
    pause_schedule,
    resume_schedule,
    run_schedule_now,
)
from taskiq_kit.scheduler import (
    FIRE_AT_LABEL,
    RUN_NOW_LABEL,
    CronSchedule,
    IntervalSchedule,
    KitScheduler,
    RedisScheduleStore,
    Schedule,
    ScheduleNotFoundError,
    SchedulerKeys,
    fire_task_id,
)

pytestmark = pytest.mark.redis

WAIT = 10.0  # seconds any awaited condition may take on a loaded machine


@dataclass(frozen=True)
class Run:
    schedule_id: str
    fire_at: float
    task_id: str
    run_now: bool
    n: int


class Recorder:
    """A memory broker whose tasks record each run, and a way to wait for runs."""

    def __init__(self) -> None:
        self.broker = make_broker("memory://")
        assert isinstance(self.broker, MemoryBroker)
        self.runs: list[Run] = []
        self._changed = asyncio.Condition()

        @self.broker.task(task_name="tick")
        async def tick(n: int = 0, context: Context = TaskiqDepends()) -> None:
            labels = context.message.labels
            run = Run(
                schedule_id=str(labels["schedule_id"]),
                fire_at=float(labels[FIRE_AT_LABEL]),
                task_id=context.message.task_id,
                run_now=bool(labels.get(RUN_NOW_LABEL, False)),
                n=n,
            )
            async with self._changed:
                self.runs.append(run)
                self._changed.notify_all()

        @self.broker.task(
            task_name="labelled", schedule=[{"interval": 3600, "schedule_id": "from-label"}]
        )
        async def labelled() -> None:
            pass

    def of(self, schedule_id: str) -> list[Run]:
        return [run for run in self.runs if run.schedule_id == schedule_id]

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), WAIT)

    async def runs_after(self, schedule_id: str, instant: float, count: int) -> None:
        """Wait until ``schedule_id`` has fired ``count`` times at instants after ``instant``."""
        await self.until(
            lambda: len([r for r in self.of(schedule_id) if r.fire_at > instant]) >= count
        )


async def eventually(predicate: Callable[[], Any]) -> None:
    """Poll a state no event announces (a replica's schedule version, a Redis hash)."""
    deadline = time.monotonic() + WAIT
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def make_scheduler(
    recorder: Recorder, redis_url: str, group: SchedulerKeys, *schedules: Schedule, **options: Any
) -> KitScheduler:
    return KitScheduler(
        recorder.broker,
        redis_url=redis_url,
        schedules=schedules,
        name=group.name,
        prefix=group.prefix,
        **options,
    )


@asynccontextmanager
async def replica(
    recorder: Recorder, redis_url: str, group: SchedulerKeys, *schedules: Schedule, **options: Any
) -> AsyncIterator[KitScheduler]:
    scheduler = make_scheduler(recorder, redis_url, group, *schedules, refresh=0.2, **options)
    await scheduler.startup()
    try:
        yield scheduler
    finally:
        await scheduler.shutdown()


async def applied(scheduler: KitScheduler, version: int) -> None:
    """Wait until the running replica fires by the group's schedule ``version`` (or later)."""

    async def reached() -> bool:
        return (scheduler.version or 0) >= version

    await eventually(reached)


TICK = IntervalSchedule(id="tick", task="tick", interval=0.5, args=[7])
CLOCK = IntervalSchedule(id="clock", task="tick", interval=0.5)


async def test_list_shows_static_label_and_dynamic_schedules(
    recorder: Recorder, redis_url: str, group: SchedulerKeys, redis_client: Redis
) -> None:
    nightly = CronSchedule(id="nightly", task="tick", cron="0 3 * * *", missed="run_once")
    static = (TICK, nightly)
    control = make_scheduler(recorder, redis_url, group, *static)
    store = RedisScheduleStore(redis_client, name=group.name, prefix=group.prefix)
    await store.add(IntervalSchedule(id="dyn", task="tick", interval=0.5))
    await store.add(IntervalSchedule(id="dyn-off", task="tick", interval=1, enabled=False))
    await store.add(IntervalSchedule(id="tick", task="other", interval=9))  # shadowed by static

    before = time.time()
    listed = {info.id: info for info in await list_schedules(control)}
    assert list(listed) == ["dyn", "dyn-off", "from-label", "nightly", "tick"]
    assert listed["tick"].task == "tick"  # the static one wins
    assert listed["tick"].dynamic is False
    assert listed["tick"].extra["source"] == "code"
    assert listed["tick"].extra["shadows_dynamic"] is True
    assert listed["tick"].describe == "every 0.5 s"
    assert listed["tick"].last_fire is None
    assert listed["tick"].next_fire is not None
    assert before < listed["tick"].next_fire <= time.time() + 0.5
    assert listed["from-label"].extra["source"] == "labels"
    assert listed["from-label"].task == "labelled"
    assert listed["nightly"].next_fire == nightly.next_fire(before)
    assert listed["nightly"].extra["missed"] == "run_once"
    assert listed["dyn"].dynamic is True
    assert listed["dyn"].extra["source"] == "store"
    assert listed["dyn-off"].paused is True
    assert listed["dyn-off"].next_fire is None

    async with replica(recorder, redis_url, group, *static) as running:
        await recorder.until(lambda: len(recorder.of("tick")) >= 2 and bool(recorder.of("dyn")))
        # What had fired before the listing (the replica goes on firing while it is read).
        fired_before = {
            schedule_id: max(run.fire_at for run in recorder.of(schedule_id))
            for schedule_id in ("tick", "dyn")
        }
        listed = {info.id: info for info in await list_schedules(control)}
        # The running scheduler object works as well as one never started.
        assert [info.id for info in await list_schedules(running)] == sorted(listed)
    for schedule_id in ("tick", "dyn"):
        info = listed[schedule_id]
        fired = fired_before[schedule_id]
        assert info.last_fire is not None
        assert info.last_fire >= fired
        assert info.next_fire is not None
        assert info.next_fire > info.last_fire
        assert info.next_fire % 0.5 == 0  # on the grid
    assert listed["nightly"].last_fire is None
    assert listed["dyn-off"].last_fire is None
    assert not recorder.of("dyn-off")


async def test_pausing_a_static_schedule_stops_its_firings_and_resume_restarts_them(
    recorder: Recorder, redis_url: str, group: SchedulerKeys, redis_client: Redis
) -> None:
    control = make_scheduler(recorder, redis_url, group, TICK, CLOCK)
    async with replica(recorder, redis_url, group, TICK, CLOCK) as running:
        await recorder.until(lambda: len(recorder.of("tick")) >= 2)

        paused = await pause_schedule(control, "tick")
        assert paused.paused is True
        assert paused.next_fire is None
        assert paused.extra["paused_at"] <= time.time()
        await applied(running, paused.extra["version"])
        applied_at = time.time()
        assert any(schedule.id == "tick" and not schedule.enabled for schedule in running.schedules)
        # The replica went on firing (three clock firings) while tick would have fired thrice.
        await recorder.runs_after("clock", applied_at, 3)
        assert all(run.fire_at <= applied_at for run in recorder.of("tick"))
        fired = float(await redis_client.hget(group.fired, "tick") or 0)
        assert fired <= applied_at
        assert next(i for i in await list_schedules(control) if i.id == "tick").paused is True

        resumed = await resume_schedule(control, "tick")
        assert resumed.paused is False
        assert resumed.next_fire is not None
        assert "paused_at" not in resumed.extra  # the switch is gone: code says enabled
        resumed_at = time.time()
        await recorder.runs_after("tick", resumed_at, 2)
    ticks = recorder.of("tick")
    assert len({run.fire_at for run in ticks}) == len(ticks)  # no firing twice
    assert all(run.task_id == fire_task_id(group.name, "tick", run.fire_at) for run in ticks)
    assert all(run.n == 7 for run in ticks)
    assert await redis_client.hgetall(group.switches) == {}


async def test_a_pause_outlives_restarts_and_a_disabled_static_schedule_can_be_resumed(
    recorder: Recorder, redis_url: str, group: SchedulerKeys
) -> None:
    off = IntervalSchedule(id="off", task="tick", interval=0.5, enabled=False)
    control = make_scheduler(recorder, redis_url, group, off, CLOCK)
    assert (await pause_schedule(control, "clock")).paused is True  # no replica runs yet
    resumed = await resume_schedule(control, "off")
    assert resumed.paused is False
    assert "resumed_at" in resumed.extra
    async with replica(recorder, redis_url, group, off, CLOCK):
        await recorder.runs_after("off", 0, 3)
        assert not recorder.of("clock")  # paused before this replica started
        info = await pause_schedule(control, "off")
        assert info.paused is True
        assert "paused_at" in info.extra


@pytest.mark.parametrize(("policy", "catch_up_runs"), [("skip", 0), ("run_once", 1)])
async def test_resume_follows_the_missed_policy(
    recorder: Recorder,
    redis_url: str,
    group: SchedulerKeys,
    redis_client: Redis,
    policy: str,
    catch_up_runs: int,
) -> None:
    now = time.time()
    anchor = datetime.fromtimestamp(now - 25, timezone.utc)  # grid: now-25, -15, -5, +5
    slow = IntervalSchedule(id="slow", task="tick", interval=10, anchor=anchor, missed=policy)
    latest_missed = round(anchor.timestamp() + 20, 6)
    # It last fired on the first grid point, then was paused: two firings fall due meanwhile.
    await redis_client.hset(group.fired, "slow", repr(anchor.timestamp()))
    control = make_scheduler(recorder, redis_url, group, slow, CLOCK)
    paused = await pause_schedule(control, "slow")
    async with replica(recorder, redis_url, group, slow, CLOCK) as running:
        await applied(running, paused.extra["version"])
        await recorder.runs_after("clock", time.time(), 2)  # the replica passed its firings
        assert float(await redis_client.hget(group.fired, "slow") or 0) == anchor.timestamp()

        await resume_schedule(control, "slow")

        async def handled() -> bool:
            return float(await redis_client.hget(group.fired, "slow") or 0) == latest_missed

        await eventually(handled)
        if catch_up_runs:
            await recorder.until(lambda: bool(recorder.of("slow")))
        handled_at = time.time()
        await recorder.runs_after("clock", handled_at, 2)
        assert time.time() < latest_missed + 10, "too slow: the next regular firing fell due"
    assert [run.fire_at for run in recorder.of("slow")] == [latest_missed] * catch_up_runs


async def test_run_now_sends_one_extra_run(
    recorder: Recorder, redis_url: str, group: SchedulerKeys, redis_client: Redis
) -> None:
    control = make_scheduler(recorder, redis_url, group, TICK)
    store = RedisScheduleStore(redis_client, name=group.name, prefix=group.prefix)
    off = IntervalSchedule(id="dyn-off", task="tick", interval=0.5, args=[3], enabled=False)
    await store.add(off)
    async with replica(recorder, redis_url, group, TICK):
        await recorder.until(lambda: bool(recorder.of("tick")))
        version = await store.version()

        task_id = await run_schedule_now(control, "tick")
        await recorder.until(lambda: any(run.task_id == task_id for run in recorder.runs))
        sent_at = time.time()
        paused_id = await run_schedule_now(control, "dyn-off")  # runs even while paused
        await recorder.until(lambda: any(run.task_id == paused_id for run in recorder.runs))
        await recorder.runs_after("tick", sent_at, 3)
    manual = [run for run in recorder.runs if run.run_now]
    assert sorted(run.task_id for run in manual) == sorted([task_id, paused_id])
    assert {run.schedule_id: run.n for run in manual} == {"tick": 7, "dyn-off": 3}
    regular = [run for run in recorder.of("tick") if not run.run_now]
    assert all(run.task_id == fire_task_id(group.name, "tick", run.fire_at) for run in regular)
    instants = [run.fire_at for run in regular]
    assert instants == sorted(set(instants))
    assert all(round(b - a, 6) == 0.5 for a, b in itertools.pairwise(instants))  # none displaced
    assert (await store.get("dyn-off")).enabled is False
    assert await store.version() == version  # run-now changes no schedule
    assert await redis_client.hget(group.fired, "dyn-off") is None


async def test_dynamic_pause_resume_and_unknown_ids(
    recorder: Recorder, redis_url: str, group: SchedulerKeys, redis_client: Redis
) -> None:
    control = make_scheduler(recorder, redis_url, group, TICK)
    store = RedisScheduleStore(redis_client, name=group.name, prefix=group.prefix)
    await store.add(IntervalSchedule(id="dyn", task="tick", interval=5))
    info = await pause_schedule(control, "dyn")
    assert (info.paused, info.dynamic, info.next_fire) == (True, True, None)
    assert (await store.get("dyn")).enabled is False
    info = await resume_schedule(control, "dyn")
    assert (info.paused, info.dynamic) == (False, True)
    assert (await store.get("dyn")).enabled is True
    assert await redis_client.hgetall(group.switches) == {}  # dynamic pauses stay in the store
    for operate in (pause_schedule, resume_schedule, run_schedule_now):
        with pytest.raises(ScheduleNotFoundError, match="'nope'"):
            await operate(control, "nope")
    assert not recorder.runs
