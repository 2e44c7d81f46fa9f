"""What keeps firings exactly-once when things go wrong: failed kicks, a stolen lease, other sources."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from taskiq import AsyncBroker, ScheduledTask, ScheduleSource
from taskiq.message import BrokerMessage
from taskiq.schedule_sources import LabelScheduleSource

from taskiq_kit import make_broker
from taskiq_kit.scheduler import (
    FIRE_AT_LABEL,
    IntervalSchedule,
    KitScheduler,
    OnceSchedule,
    ScheduleConfigError,
    SchedulerKeys,
    fire_task_id,
)

pytestmark = pytest.mark.redis


class FlakyBroker(AsyncBroker):
    """Refuses the first ``failures`` kicks, records the rest as (task id, firing instant)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.kicks: list[tuple[str, float]] = []

    async def kick(self, message: BrokerMessage) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("broker down")
        self.kicks.append((message.task_id, float(message.labels.get(FIRE_AT_LABEL, "nan"))))

    async def listen(self) -> AsyncGenerator[bytes, None]:  # pragma: no cover - never consumed
        raise NotImplementedError
        yield b""


def scheduler_for(
    broker: AsyncBroker, redis_url: str, group: SchedulerKeys, **options: Any
) -> KitScheduler:
    return KitScheduler(
        broker, redis_url=redis_url, name=group.name, prefix=group.prefix, **options
    )


async def test_a_failed_kick_is_resent_with_the_same_task_id(
    redis_url: str, group: SchedulerKeys, redis_client: Redis
) -> None:
    broker = FlakyBroker(failures=1)
    at = datetime.fromtimestamp(round(time.time() + 0.3, 3), timezone.utc)
    launch = OnceSchedule(id="launch", task="tick", at=at)
    scheduler = scheduler_for(broker, redis_url, group, schedules=[launch], lease=1.0)
    await scheduler.startup()
    try:
        deadline = time.time() + 5
        while not broker.kicks:
            assert time.time() < deadline, "the failed firing was not re-sent"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.2)  # no second re-send
        assert await redis_client.hgetall(group.inflight) == {}
    finally:
        await scheduler.shutdown()
    assert broker.kicks == [(fire_task_id(group.name, "launch", at.timestamp()), at.timestamp())]


async def test_a_replica_whose_lease_is_taken_stops_firing(
    redis_url: str, group: SchedulerKeys, redis_client: Redis
) -> None:
    broker = FlakyBroker(failures=0)
    tick = IntervalSchedule(id="tick", task="tick", interval=0.2)
    scheduler = scheduler_for(broker, redis_url, group, schedules=[tick], lease=1.5)
    await scheduler.startup()
    try:
        await asyncio.sleep(0.7)
        assert scheduler.is_leader
        assert broker.kicks
        # Another replica took the lease (e.g. after a long pause of this one).
        await redis_client.set(group.lease, "someone-else", px=60_000)
        await asyncio.sleep(0.1)  # a claim already under way may still land
        count = len(broker.kicks)
        await asyncio.sleep(1.0)
        assert len(broker.kicks) == count  # every claim is fenced by the lease token
        assert not scheduler.is_leader
    finally:
        await scheduler.shutdown()


class OneShotSource(ScheduleSource):
    """A foreign taskiq source with one interval schedule, run by taskiq's own loop."""

    async def get_schedules(self) -> list[ScheduledTask]:
        return [ScheduledTask(task_name="tick", labels={}, args=[], kwargs={}, interval=1)]


async def test_other_sources_are_sent_by_the_leader_only(
    redis_url: str, group: SchedulerKeys
) -> None:
    broker = FlakyBroker(failures=0)
    source = OneShotSource()
    [task] = await source.get_schedules()
    scheduler = scheduler_for(broker, redis_url, group, sources=[source])
    await scheduler.on_ready(source, task)  # not started, so not the leader: nothing sent
    assert broker.kicks == []
    await scheduler.startup()
    try:
        await asyncio.sleep(0.3)
        assert scheduler.is_leader
        await scheduler.on_ready(source, task)  # what taskiq's loop calls when it is due
        assert len(broker.kicks) == 1
    finally:
        await scheduler.shutdown()


def test_label_source_is_refused(redis_url: str) -> None:
    broker = make_broker("memory://")
    with pytest.raises(ValueError, match="remove LabelScheduleSource"):
        KitScheduler(broker, redis_url=redis_url, sources=[LabelScheduleSource(broker)])
    KitScheduler(
        broker, redis_url=redis_url, sources=[LabelScheduleSource(broker)], use_labels=False
    )


def test_config_file_errors_raise_at_construction(tmp_path: Path, redis_url: str) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text('[schedules.bad]\ntask = "t"\ncron = "* * *"\n')
    with pytest.raises(ScheduleConfigError, match=r"schedule 'bad': cron: cron '\* \* \*'"):
        KitScheduler(make_broker("memory://"), redis_url=redis_url, config=path)
    path.write_text('[schedules.good]\ntask = "t"\ninterval = 3\n')
    scheduler = KitScheduler(make_broker("memory://"), redis_url=redis_url, config=path)
    assert [schedule.id for schedule in scheduler.static_schedules] == ["good"]
