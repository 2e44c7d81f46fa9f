"""Schedules as an operator sees them: list with next and last firing, pause, resume, run now.

Works from any process given the :class:`~taskiq_kit.scheduler.KitScheduler` object of the app
(started or not: a dashboard or the CLI does not run a scheduler replica); it reads and changes
the group's state in the scheduler's Redis, which every replica follows::

    for info in await list_schedules(scheduler):
        print(info.id, info.describe, info.paused, info.next_fire, info.last_fire)
    await pause_schedule(scheduler, "nightly-report")   # static or dynamic
    await resume_schedule(scheduler, "nightly-report")  # missed firings follow its `missed` policy
    task_id = await run_schedule_now(scheduler, "nightly-report")

Each call opens a Redis client of its own for ``scheduler.redis_url`` (one server, a
``redis+cluster://`` Redis Cluster or ``redis+sentinel://`` Sentinels, as the replicas use) and
closes it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskiq_kit._compat import require
from taskiq_kit.inspect.models import ScheduleInfo
from taskiq_kit.scheduler.config import schedules_from_labels
from taskiq_kit.scheduler.control import (
    ScheduleSwitches,
    Switch,
    apply_switches,
    schedule_kicker,
)
from taskiq_kit.scheduler.lease import FiringLedger
from taskiq_kit.scheduler.runner import FIRE_AT_LABEL, RUN_NOW_LABEL
from taskiq_kit.scheduler.store import RedisScheduleStore, ScheduleNotFoundError

if TYPE_CHECKING:
    from taskiq_kit.redis.connect import RedisClient
    from taskiq_kit.scheduler.models import Schedule
    from taskiq_kit.scheduler.scheduler import KitScheduler

require("redis.asyncio", extra="scheduler", feature="the replica-safe scheduler")
from taskiq_kit.redis.connect import close_client, make_client  # noqa: E402 - after the extra check

#: Seconds one Redis call of these functions may take.
_TIMEOUT = 5.0


async def list_schedules(scheduler: KitScheduler) -> list[ScheduleInfo]:
    """Every schedule of the group (static, task labels, dynamic), with its next and last firing.

    A static schedule shadows a dynamic one with the same id (as on the replicas): the list
    holds each id once, sorted by id.
    """
    async with _client(scheduler) as client:
        group = await _Group.read(scheduler, client)
    return [group.info(schedule_id) for schedule_id in sorted(group.ids())]


async def pause_schedule(scheduler: KitScheduler, schedule_id: str) -> ScheduleInfo:
    """Stop firing ``schedule_id`` (static or dynamic) until it is resumed.

    Replicas apply the pause when they next re-read the schedules (within ``refresh`` seconds);
    ``extra["version"]`` of the result is the group's version after the change, which
    ``scheduler.version`` of the leader reaches once it fires by it. A firing already under way
    at that moment is still sent. A static schedule's pause is kept in Redis (code and
    configuration are not changed), so it outlives restarts and deployments until resumed.

    Raises:
        ScheduleNotFoundError: when the group has no such schedule.

    """
    async with _client(scheduler) as client:
        static = _static_by_id(scheduler).get(schedule_id)
        if static is not None:
            await ScheduleSwitches(client, scheduler.keys).set(schedule_id, paused=True)
        else:
            await _store(scheduler, client).pause(schedule_id)
        return await _changed(scheduler, client, schedule_id)


async def resume_schedule(scheduler: KitScheduler, schedule_id: str) -> ScheduleInfo:
    """Fire ``schedule_id`` again.

    Firings that fell due while it was paused follow the schedule's ``missed`` policy, as after
    a time with no replica running: ``skip`` drops them, ``run_once`` sends one catch-up run.
    Resuming a static schedule disabled in code or configuration (``enabled=False``) makes it
    fire until it is paused again. ``extra["version"]`` is as for :func:`pause_schedule`.

    Raises:
        ScheduleNotFoundError: when the group has no such schedule.

    """
    async with _client(scheduler) as client:
        static = _static_by_id(scheduler).get(schedule_id)
        if static is None:
            await _store(scheduler, client).resume(schedule_id)
        elif static.enabled:
            await ScheduleSwitches(client, scheduler.keys).clear(schedule_id)
        else:
            await ScheduleSwitches(client, scheduler.keys).set(schedule_id, paused=False)
        return await _changed(scheduler, client, schedule_id)


async def run_schedule_now(scheduler: KitScheduler, schedule_id: str) -> str:
    """Send ``schedule_id``'s task now, once, besides its firings; returns the task id.

    The run has the schedule's task, args, kwargs and labels, a fresh task id, and the labels
    ``schedule_id``, ``kit_fire_at`` (now) and ``kit_run_now`` (``True``). The schedule's own
    firings are not touched: the next one is sent on time, and a paused schedule stays paused.
    The broker must be started (as for any ``kiq``).

    Raises:
        ScheduleNotFoundError: when the group has no such schedule.
        SendTaskError: when the broker cannot send the task.

    """
    schedule = _static_by_id(scheduler).get(schedule_id)
    if schedule is None:
        async with _client(scheduler) as client:
            schedule = await _store(scheduler, client).get(schedule_id)
    labels: dict[str, Any] = {FIRE_AT_LABEL: time.time(), RUN_NOW_LABEL: True}
    kicker = schedule_kicker(scheduler.broker, schedule, labels)
    task = await kicker.kiq(*schedule.args, **schedule.kwargs)
    return str(task.task_id)


@asynccontextmanager
async def _client(scheduler: KitScheduler) -> AsyncIterator[RedisClient]:
    client = make_client(
        scheduler.redis_url, max_connections=4, connect_timeout=_TIMEOUT, socket_timeout=_TIMEOUT
    )
    try:
        yield client
    finally:
        await close_client(client)


def _store(scheduler: KitScheduler, client: RedisClient) -> RedisScheduleStore:
    return RedisScheduleStore(client, name=scheduler.keys.name, prefix=scheduler.keys.prefix)


def _static_by_id(scheduler: KitScheduler) -> dict[str, Schedule]:
    return {schedule.id: schedule for schedule in scheduler.all_static_schedules()}


async def _changed(scheduler: KitScheduler, client: RedisClient, schedule_id: str) -> ScheduleInfo:
    group = await _Group.read(scheduler, client)
    info = group.info(schedule_id)
    info.extra["version"] = group.version
    return info


@dataclass
class _Group:
    """One reading of a group's schedules and firing records."""

    static: dict[str, Schedule]
    label_ids: set[str]
    dynamic: dict[str, Schedule]
    switches: dict[str, Switch]
    fired: dict[str, float]
    in_flight: dict[str, float]
    version: int
    now: float

    @classmethod
    async def read(cls, scheduler: KitScheduler, client: RedisClient) -> _Group:
        store = _store(scheduler, client)
        # Read-only: the ledger's fencing token is used by claims only.
        ledger = FiringLedger(client, scheduler.keys, token="")
        version = await store.version()  # first: a change after it shows as a newer version
        switches = await ScheduleSwitches(client, scheduler.keys).read()
        static = apply_switches(scheduler.all_static_schedules(), switches)
        labelled = schedules_from_labels(scheduler.broker) if scheduler.use_labels else []
        return cls(
            static={schedule.id: schedule for schedule in static},
            label_ids={schedule.id for schedule in labelled},
            dynamic={schedule.id: schedule for schedule in await store.list()},
            switches=switches,
            fired=await ledger.last_fired(),
            in_flight=await ledger.in_flight(),
            version=version,
            now=time.time(),
        )

    def ids(self) -> set[str]:
        return self.static.keys() | self.dynamic.keys()

    def info(self, schedule_id: str) -> ScheduleInfo:
        """The state of one schedule; a static one shadows a dynamic one with its id."""
        schedule = self.static.get(schedule_id)
        if schedule is None:
            schedule = self.dynamic.get(schedule_id)
        if schedule is None:
            raise ScheduleNotFoundError(schedule_id=schedule_id)
        dynamic = schedule_id not in self.static
        extra: dict[str, Any] = {
            "source": "store" if dynamic else "labels" if schedule_id in self.label_ids else "code",
            "kind": schedule.kind,
            "missed": schedule.missed,
        }
        switch = None if dynamic else self.switches.get(schedule_id)
        if switch is not None:
            extra["paused_at" if switch.paused else "resumed_at"] = switch.at
        if not dynamic and schedule_id in self.dynamic:
            extra["shadows_dynamic"] = True
        if schedule_id in self.in_flight:
            extra["in_flight"] = self.in_flight[schedule_id]
        next_fire: float | None = None
        if schedule.enabled:
            try:
                next_fire = schedule.next_fire(self.now)
            except ValueError:  # a cron expression croniter cannot step (logged by the runner)
                next_fire = None
        return ScheduleInfo(
            id=schedule_id,
            task=schedule.task,
            describe=schedule.describe(),
            paused=not schedule.enabled,
            dynamic=dynamic,
            next_fire=next_fire,
            last_fire=self.fired.get(schedule_id),
            extra=extra,
        )
