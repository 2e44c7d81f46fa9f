"""What operators change on a running group, and how a schedule's task is kicked.

Static schedules (code, configuration, task labels) are pausable too: a pause is a *switch* kept
in the group's Redis keys beside them, which every replica applies when it re-reads the schedules
(each change bumps the group's version counter, as a change of the dynamic store does). Dynamic
schedules keep their pause in their own ``enabled`` field (see ``RedisScheduleStore``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskiq_kit.kicker import KitKicker

if TYPE_CHECKING:
    from taskiq.abc.broker import AsyncBroker

    from taskiq_kit.redis.connect import RedisClient
    from taskiq_kit.scheduler.keys import SchedulerKeys
    from taskiq_kit.scheduler.models import Schedule

logger = logging.getLogger("taskiq_kit.scheduler")


@dataclass(frozen=True, slots=True)
class Switch:
    """An operator's pause (or resume) of a static schedule.

    Attributes:
        paused: whether the schedule is paused (``False``: resumed although disabled in code).
        at: when the switch was set (unix seconds).

    """

    paused: bool
    at: float


class ScheduleSwitches:
    """The pause switches of a group's static schedules.

    Args:
        client: the Redis client.
        keys: the group's key names.

    """

    def __init__(self, client: RedisClient, keys: SchedulerKeys) -> None:
        self.client = client
        self.keys = keys

    async def read(self) -> dict[str, Switch]:
        """Schedule id -> its switch; unreadable entries are logged and left out."""
        raw: dict[Any, Any] = await self.client.hgetall(self.keys.switches)
        switches: dict[str, Switch] = {}
        for key, value in raw.items():
            name = key.decode() if isinstance(key, bytes) else str(key)
            try:
                data = json.loads(value)
                switches[name] = Switch(paused=bool(data["paused"]), at=float(data["at"]))
            except (ValueError, TypeError, KeyError):
                logger.warning("Ignoring the unreadable pause switch of schedule %r.", name)
        return switches

    async def set(self, schedule_id: str, *, paused: bool) -> Switch:
        """Pause (or resume) ``schedule_id``; replicas apply it on their next refresh."""
        switch = Switch(paused=paused, at=time.time())
        body = json.dumps({"paused": switch.paused, "at": switch.at})
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.switches, schedule_id, body)
            pipe.incr(self.keys.version)
            await pipe.execute()
        return switch

    async def clear(self, schedule_id: str) -> None:
        """Drop the switch of ``schedule_id``: it fires as its code or configuration says."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.switches, schedule_id)
            pipe.incr(self.keys.version)
            await pipe.execute()


def apply_switches(schedules: Iterable[Schedule], switches: dict[str, Switch]) -> list[Schedule]:
    """``schedules`` with each switch applied to the ``enabled`` field of its schedule."""
    result: list[Schedule] = []
    for schedule in schedules:
        switch = switches.get(schedule.id)
        if switch is None or schedule.enabled != switch.paused:
            result.append(schedule)
        else:
            result.append(schedule.model_copy(update={"enabled": not switch.paused}))
    return result


def schedule_kicker(
    broker: AsyncBroker, schedule: Schedule, labels: dict[str, Any]
) -> KitKicker[Any, Any]:
    """A kicker of ``schedule``'s task with the schedule's labels, then ``labels``, and its id.

    ``kiq(*schedule.args, **schedule.kwargs)`` on it sends one run.
    """
    merged: dict[str, Any] = {**schedule.labels, "schedule_id": schedule.id, **labels}
    return KitKicker(schedule.task, broker, merged)
