"""The leader lease and the ledger of firings, both in Redis.

Lease: ``SET key token NX PX ttl`` taken or extended by one Lua script (compare-and-extend), so a
leader keeps it by renewing every ``ttl / 3`` and a dead leader's lease simply expires. Followers
retry when the remaining time says it may be free, so a dead leader is replaced within ``ttl``.

Ledger: per schedule, the instant of the last firing handled. A firing is *claimed* by a Lua
script that checks, atomically, that the caller still holds the lease (a fencing token) and that
the firing is newer than the last one. Only then is the task kicked, so two leaders cannot both
send one firing, even across a network partition. A claimed firing stays *in flight* until the
kick is confirmed; a new leader re-sends what was left in flight, with the same task id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskiq_kit._compat import require

if TYPE_CHECKING:
    from taskiq_kit.redis.connect import RedisClient
    from taskiq_kit.scheduler.keys import SchedulerKeys

require("redis", extra="scheduler", feature="the replica-safe scheduler")

# KEYS: lease. ARGV: token, ttl_ms. Returns {1, ttl} when held, {0, pttl} when someone else holds it.
_TAKE = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(ARGV[2])}
end
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, tonumber(ARGV[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
"""

# KEYS: lease. ARGV: token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: lease, fired, inflight. ARGV: token, schedule id, instant, send (1/0).
# Returns -1 when the lease is not held, 0 when this firing (or a later one) was handled, 1 claimed.
_CLAIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local last = redis.call('HGET', KEYS[2], ARGV[2])
if last and tonumber(last) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
end
return 1
"""

# KEYS: inflight. ARGV: schedule id, instant.
_SENT = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class LeaseState:
    """Outcome of one attempt to take or keep the lease.

    Attributes:
        held: whether this replica is the leader now.
        ttl: seconds the lease lasts from now (when held) or until it may be free (when not).

    """

    held: bool
    ttl: float


def _instant(value: float) -> str:
    return repr(round(value, 6))


class RedisLease:
    """A lease with expiry, held by at most one replica of a scheduler group.

    Args:
        client: the Redis client.
        keys: the group's key names.
        ttl: seconds the lease lasts without renewal.

    """

    def __init__(self, client: RedisClient, keys: SchedulerKeys, *, ttl: float) -> None:
        self.client = client
        self.keys = keys
        self.ttl = ttl
        #: This replica's fencing token; the lease key holds it while this replica leads.
        self.token = uuid.uuid4().hex
        self._take = client.register_script(_TAKE)
        self._release = client.register_script(_RELEASE)

    async def take(self) -> LeaseState:
        """Take the lease if it is free, or extend it if this replica holds it."""
        held, ttl_ms = await self._take(
            keys=[self.keys.lease], args=[self.token, int(self.ttl * 1000)]
        )
        return LeaseState(held=bool(held), ttl=max(0.0, float(ttl_ms) / 1000))

    async def release(self) -> bool:
        """Give the lease up (only if this replica holds it), so a follower takes over at once."""
        return bool(await self._release(keys=[self.keys.lease], args=[self.token]))


class FiringLedger:
    """What has fired, per schedule, fenced by the lease token.

    Args:
        client: the Redis client.
        keys: the group's key names.
        token: the fencing token (the lease's).

    """

    def __init__(self, client: RedisClient, keys: SchedulerKeys, *, token: str) -> None:
        self.client = client
        self.keys = keys
        self.token = token
        self._claim = client.register_script(_CLAIM)
        self._sent = client.register_script(_SENT)

    async def last_fired(self) -> dict[str, float]:
        """Schedule id -> instant of the last firing handled."""
        return _floats(await self.client.hgetall(self.keys.fired))

    async def in_flight(self) -> dict[str, float]:
        """Schedule id -> instant of a firing claimed but not confirmed as sent."""
        return _floats(await self.client.hgetall(self.keys.inflight))

    async def claim(self, schedule_id: str, instant: float, *, send: bool) -> int:
        """Record the firing at ``instant`` as handled, if the lease is still held.

        Args:
            schedule_id: the schedule.
            instant: the firing instant (unix seconds).
            send: whether it will be sent (then it stays in flight until :meth:`sent`);
                ``False`` records a skipped firing.

        Returns:
            1 when claimed, 0 when this or a later firing was handled already,
            -1 when this replica no longer holds the lease.

        """
        keys = [self.keys.lease, self.keys.fired, self.keys.inflight]
        args = [self.token, schedule_id, _instant(instant), "1" if send else "0"]
        return int(await self._claim(keys=keys, args=args))

    async def sent(self, schedule_id: str, instant: float) -> None:
        """Confirm that the firing at ``instant`` was sent."""
        await self._sent(keys=[self.keys.inflight], args=[schedule_id, _instant(instant)])

    async def forget(self, schedule_id: str) -> None:
        """Drop every record of a schedule (it was deleted)."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.fired, schedule_id)
            pipe.hdel(self.keys.inflight, schedule_id)
            await pipe.execute()


def _floats(raw: dict[Any, Any]) -> dict[str, float]:
    result: dict[str, float] = {}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        try:
            result[name] = float(value)
        except (TypeError, ValueError):
            continue
    return result
