"""Flow control in Redis: one Lua script per operation, on the result store's connections.

Keys are ``<prefix>:flow:<kind>:{<digest of the key>}``: one Redis Cluster slot per limit. Each
script declares its one key (``KEYS[1]``) and touches no other, so it runs on a cluster as on one
server; renewals of many slots go in one pipeline (one round trip per node).
Times are Redis server time (``TIME``), so the workers' clocks do not matter.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskiq_kit.redis.lua import eval_many
from taskiq_kit.results.reach import reaching

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from taskiq_kit.redis.connect import RedisClient
    from taskiq_kit.results.redis import RedisResultBackend

#: GCRA with reservation. KEYS[1]: the theoretical arrival time (µs). ARGV: interval (µs),
#: tolerance (µs). Returns the µs to wait before the reserved run may start (0: at once).
RESERVE_RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX',
  math.ceil((tat - now) / 1000) + 1000)
local wait = tat - interval - tolerance - now
if wait < 0 then return 0 end
return wait
"""

#: Slot leases. KEYS[1]: sorted set holder -> lease end (ms). ARGV: holder, limit, lease (ms).
#: Drops expired leases, then takes (or renews) the holder's slot if one is free. Returns 1/0.
ACQUIRE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1])
    or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  if redis.call('PTTL', KEYS[1]) < 2 * lease then
    redis.call('PEXPIRE', KEYS[1], 2 * lease)
  end
  return 1
end
return 0
"""

#: KEYS[1]: the slots; ARGV: holder, lease (ms). Extends a lease still held.
RENEW_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, ARGV[1]) == 1
    and redis.call('PTTL', KEYS[1]) < 2 * lease then
  redis.call('PEXPIRE', KEYS[1], 2 * lease)
end
return 0
"""

#: KEYS[1]: the claim. ARGV: holder, TTL (ms). Returns the current holder, or nil when claimed.
CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

#: KEYS[1]: the claim. ARGV: old holder, new holder, TTL (ms). Returns 1 when handed over.
REPLACE_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisFlowStore:
    """Flow control on the Redis server of a :class:`~taskiq_kit.results.redis.RedisResultBackend`.

    Args:
        backend: the result store whose connections and key prefix it uses.

    """

    def __init__(self, backend: RedisResultBackend[Any]) -> None:
        self.backend = backend
        self.prefix = backend.keys.prefix
        self.url = backend.url
        self.connect_timeout = backend.connect_timeout
        self.unreachable_errors = backend.unreachable_errors
        self._scripts: dict[str, AsyncScript] = {}
        self._client: RedisClient | None = None

    @property
    def target(self) -> str:
        """The store, safe to show."""
        return self.backend.target

    def key(self, kind: str, key: str) -> str:
        """The Redis key of ``kind`` (``rate``, ``slots``, ``claim``) for the flow key ``key``."""
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return f"{self.prefix}:flow:{kind}:{{{digest}}}"

    def _script(self, source: str) -> AsyncScript:
        redis = self.backend.redis
        if self._client is not redis:
            self._client, self._scripts = redis, {}
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = redis.register_script(source)
        return script

    @reaching
    async def reserve_rate(self, key: str, interval: float, tolerance: float) -> float:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.reserve_rate`."""
        args = [max(1, round(interval * 1e6)), max(0, round(tolerance * 1e6))]
        wait = await self._script(RESERVE_RATE)(keys=[self.key("rate", key)], args=args)
        return int(wait) / 1e6

    @reaching
    async def acquire_slot(self, key: str, holder: str, limit: int, lease: float) -> bool:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.acquire_slot`."""
        args: list[str | int] = [holder, limit, _ms(lease)]
        return bool(await self._script(ACQUIRE_SLOT)(keys=[self.key("slots", key)], args=args))

    @reaching
    async def renew_slots(self, held: Sequence[tuple[str, str, float]]) -> None:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.renew_slots` (one round trip)."""
        calls = [([self.key("slots", key)], [holder, _ms(lease)]) for key, holder, lease in held]
        await eval_many(self.backend.redis, RENEW_SLOT, calls)

    @reaching
    async def release_slot(self, key: str, holder: str) -> None:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.release_slot`."""
        await self.backend.redis.zrem(self.key("slots", key), holder)

    @reaching
    async def claim(self, key: str, holder: str, ttl: float) -> str | None:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.claim`."""
        current = await self._script(CLAIM)(keys=[self.key("claim", key)], args=[holder, _ms(ttl)])
        return _text(current)

    @reaching
    async def replace_claim(self, key: str, old: str, new: str, ttl: float) -> bool:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.replace_claim`."""
        args: list[str | int] = [old, new, _ms(ttl)]
        return bool(await self._script(REPLACE_CLAIM)(keys=[self.key("claim", key)], args=args))

    @reaching
    async def set_latest(self, key: str, holder: str, ttl: float) -> str | None:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.set_latest`."""
        previous = await self.backend.redis.set(
            self.key("latest", key), holder, px=_ms(ttl), get=True
        )
        return _text(previous)

    @reaching
    async def latest(self, key: str) -> str | None:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.latest`."""
        return _text(await self.backend.redis.get(self.key("latest", key)))

    @reaching
    async def replace_latest(self, key: str, old: str, new: str, ttl: float) -> bool:
        """See :meth:`~taskiq_kit.flow.store.FlowStore.replace_latest`."""
        args: list[str | int] = [old, new, _ms(ttl)]
        return bool(await self._script(REPLACE_CLAIM)(keys=[self.key("latest", key)], args=args))
