"""Dynamic schedules kept in Redis: add, list, pause, resume and delete them at runtime.

Every change bumps a version counter, so a scheduler notices changes with one ``GET`` per
refresh and reads the schedules again only when something changed::

    store = RedisScheduleStore.from_url("redis://localhost:6379/0")
    await store.add(IntervalSchedule(id="poll", task="app.tasks:poll", interval=30))
    await store.pause("poll")
    await store.delete("poll")
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from taskiq_kit._compat import require
from taskiq_kit.exceptions import TaskiqKitError
from taskiq_kit.scheduler.keys import DEFAULT_NAME, DEFAULT_PREFIX, SchedulerKeys
from taskiq_kit.scheduler.models import Schedule, schedule_adapter

if TYPE_CHECKING:
    from taskiq_kit.redis.connect import RedisClient

_redis = require("redis.asyncio", extra="scheduler", feature="the replica-safe scheduler")

from taskiq_kit.redis.connect import close_client, make_client  # noqa: E402 - after the extra check

logger = logging.getLogger("taskiq_kit.scheduler")


# KEYS: schedules, version. ARGV: id, expected JSON, new JSON. Compare-and-set of one schedule.
_SWAP = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('INCR', KEYS[2])
  return 1
end
return 0
"""


class ScheduleExistsError(TaskiqKitError, ValueError):
    """A dynamic schedule with this id exists already."""

    __template__ = (
        "a schedule with id {schedule_id!r} exists already; pass replace=True to replace it"
    )
    schedule_id: str


class ScheduleNotFoundError(TaskiqKitError, LookupError):
    """No schedule of the group has this id (in the store, or static where that is asked)."""

    __template__ = "no schedule has id {schedule_id!r}"
    schedule_id: str


class RedisScheduleStore:
    """Schedules added at runtime, shared by every replica of a scheduler group.

    Args:
        client: a ``redis.asyncio.Redis`` client.
        name: the scheduler group name (as given to the scheduler).
        prefix: the key prefix (as given to the scheduler).

    """

    def __init__(
        self, client: RedisClient, *, name: str = DEFAULT_NAME, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self.client = client
        self.keys = SchedulerKeys(name=name, prefix=prefix)
        self._swap = client.register_script(_SWAP)

    @classmethod
    def from_url(
        cls, url: str, *, name: str = DEFAULT_NAME, prefix: str = DEFAULT_PREFIX
    ) -> RedisScheduleStore:
        """Build a store with its own client for ``url``; close it with :meth:`close`."""
        client = make_client(url)
        return cls(client, name=name, prefix=prefix)

    async def close(self) -> None:
        """Close the client."""
        await close_client(self.client)

    async def add(self, schedule: Schedule, *, replace: bool = False) -> None:
        """Store ``schedule``; the leader fires it from its next refresh on.

        Raises:
            ScheduleExistsError: when the id is taken and ``replace`` is false.

        """
        body = schedule.model_dump_json()
        async with self.client.pipeline(transaction=True) as pipe:
            if replace:
                pipe.hset(self.keys.schedules, schedule.id, body)
            else:
                pipe.hsetnx(self.keys.schedules, schedule.id, body)
            pipe.incr(self.keys.version)
            created, _ = await pipe.execute()
        if not replace and not created:
            raise ScheduleExistsError(schedule_id=schedule.id)

    async def get(self, schedule_id: str) -> Schedule:
        """The schedule with this id.

        Raises:
            ScheduleNotFoundError: when there is none.

        """
        raw = await self.client.hget(self.keys.schedules, schedule_id)
        if raw is None:
            raise ScheduleNotFoundError(schedule_id=schedule_id)
        return schedule_adapter.validate_json(raw)

    async def list(self) -> list[Schedule]:
        """Every stored schedule, sorted by id; unreadable entries are logged and left out."""
        raw: dict[Any, Any] = await self.client.hgetall(self.keys.schedules)
        schedules: list[Schedule] = []
        for key, value in raw.items():
            try:
                schedules.append(schedule_adapter.validate_json(value))
            except ValidationError:
                logger.exception("Ignoring unreadable stored schedule %r.", key)
        return sorted(schedules, key=lambda schedule: schedule.id)

    async def version(self) -> int:
        """A number that changes whenever the stored schedules change."""
        raw = await self.client.get(self.keys.version)
        return int(raw) if raw is not None else 0

    async def pause(self, schedule_id: str) -> Schedule:
        """Stop firing a schedule (it stays stored). Returns the updated schedule."""
        return await self._set_enabled(schedule_id, enabled=False)

    async def resume(self, schedule_id: str) -> Schedule:
        """Fire a paused schedule again; firings missed meanwhile follow its ``missed`` policy."""
        return await self._set_enabled(schedule_id, enabled=True)

    async def _set_enabled(self, schedule_id: str, *, enabled: bool) -> Schedule:
        while True:
            raw = await self.client.hget(self.keys.schedules, schedule_id)
            if raw is None:
                raise ScheduleNotFoundError(schedule_id=schedule_id)
            data = json.loads(raw)
            data["enabled"] = enabled
            updated = schedule_adapter.validate_python(data)
            keys = [self.keys.schedules, self.keys.version]
            args = [schedule_id, raw, updated.model_dump_json()]
            if await self._swap(keys=keys, args=args):
                return updated
            # Changed (or deleted) meanwhile: read it again.

    async def delete(self, schedule_id: str) -> bool:
        """Remove a schedule and its firing records. Returns whether it existed."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.schedules, schedule_id)
            pipe.hdel(self.keys.fired, schedule_id)
            pipe.hdel(self.keys.inflight, schedule_id)
            pipe.incr(self.keys.version)
            removed, *_ = await pipe.execute()
        return bool(removed)
