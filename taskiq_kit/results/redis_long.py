"""Long-task leases in Redis: a sorted set of expiries, a hash of owners, a hash of messages.

Every change is one Lua script, so a lease is claimed by one sweep only, and renewed or
released only by the worker holding it. See :mod:`taskiq_kit.flow.long`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskiq_kit.flow.long_parts import KeptMessage

if TYPE_CHECKING:
    from taskiq_kit.results.redis import RedisResultBackend

# KEYS: leases, owners, kept. ARGV: owner, until, then task ids. Returns the ids it lost.
_RENEW = """
local lost = {}
for i = 3, #ARGV do
    if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then
        redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[i])
    else
        lost[#lost + 1] = ARGV[i]
    end
end
return lost
"""

# KEYS: leases, owners, kept. ARGV: task id, owner.
_RELEASE = """
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('HDEL', KEYS[3], ARGV[1])
    return 1
end
return 0
"""

# KEYS: leases, owners, kept. ARGV: now, owner, until, limit. Returns the kept messages claimed.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
local claimed = {}
for _, id in ipairs(ids) do
    local kept = redis.call('HGET', KEYS[3], id)
    if kept then
        redis.call('ZADD', KEYS[1], ARGV[3], id)
        redis.call('HSET', KEYS[2], id, ARGV[2])
        claimed[#claimed + 1] = kept
    else
        redis.call('ZREM', KEYS[1], id)
        redis.call('HDEL', KEYS[2], id)
    end
end
return claimed
"""


def _encode(message: KeptMessage) -> str:
    return json.dumps(
        {
            "task_id": message.task_id,
            "task_name": message.task_name,
            "queue": message.queue,
            "body": base64.b64encode(message.body).decode(),
            "priority": message.priority,
            "resends": message.resends,
        }
    )


def _decode(data: bytes | str) -> KeptMessage:
    fields: dict[str, Any] = json.loads(data)
    return KeptMessage(
        task_id=str(fields["task_id"]),
        task_name=str(fields["task_name"]),
        queue=str(fields["queue"]),
        body=base64.b64decode(fields["body"]),
        priority=fields.get("priority"),
        resends=int(fields.get("resends") or 0),
    )


class RedisLeaseStore:
    """The :class:`~taskiq_kit.flow.long.LeaseStore` of a :class:`RedisResultBackend`.

    Args:
        backend: the started result backend (its client and key prefix are used).

    Raises:
        ResultBackendNotStartedError: when the backend is not started.

    """

    def __init__(self, backend: RedisResultBackend[Any]) -> None:
        self.backend = backend
        keys = backend.keys
        self._keys = [keys.long_leases(), keys.long_owners(), keys.long_kept()]
        redis = backend.redis
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._claim = redis.register_script(_CLAIM)

    async def keep(self, message: KeptMessage, *, owner: str, until: float) -> None:
        """Store ``message`` and its lease (one transaction)."""
        leases, owners, kept = self._keys
        async with self.backend.redis.pipeline(transaction=True) as pipe:
            pipe.hset(kept, message.task_id, _encode(message))
            pipe.hset(owners, message.task_id, owner)
            pipe.zadd(leases, {message.task_id: until})
            await pipe.execute()

    async def renew(self, task_ids: Sequence[str], *, owner: str, until: float) -> list[str]:
        """Extend ``owner``'s leases; return the ids it no longer holds."""
        lost = await self._renew(keys=self._keys, args=[owner, until, *task_ids])
        return [item.decode() if isinstance(item, bytes) else str(item) for item in lost]

    async def release(self, task_id: str, *, owner: str) -> None:
        """Delete the lease and message of ``task_id`` if ``owner`` holds it."""
        await self._release(keys=self._keys, args=[task_id, owner])

    async def is_kept(self, task_id: str) -> bool:
        """Whether a message of ``task_id`` is kept."""
        return bool(await self.backend.redis.hexists(self._keys[2], task_id))

    async def claim_expired(
        self, *, now: float, owner: str, until: float, limit: int
    ) -> list[KeptMessage]:
        """Claim up to ``limit`` expired leases for ``owner`` (one script: atomic)."""
        claimed = await self._claim(keys=self._keys, args=[now, owner, until, limit])
        return [_decode(item) for item in claimed]
