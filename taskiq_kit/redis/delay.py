"""Delayed delivery on Redis: a sorted set scored by due time, promoted by a Lua script.

A delayed message is stored server-side only: its id in the ``delayed`` sorted set (score = due
time in unix seconds) and its body in the ``payloads`` hash. :class:`DelayPromoter` runs
:data:`PROMOTE` which, atomically and at most ``batch`` entries at a time, moves every entry
that is due to the ready stream, in due order. Any number of promoters may run: the script is
atomic, so an entry is moved exactly once. Between runs a promoter sleeps until the next due
time (at most ``max_sleep``), and is woken early through pub/sub when a kick adds an earlier one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

    from taskiq_kit.redis.connect import RedisClient
    from taskiq_kit.redis.durability import ReplicaAcks
    from taskiq_kit.redis.keys import RedisKeys

logger = logging.getLogger("taskiq_kit.redis.delay")

#: KEYS: delayed, payloads. ARGV: id, due (unix s), body, wakeup channel.
SCHEDULE = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
local first = redis.call('ZRANGE', KEYS[1], 0, 0)
if first[1] == ARGV[1] then
  redis.call('PUBLISH', ARGV[4], ARGV[2])
end
return 1
"""

#: KEYS: delayed, payloads, ready. ARGV: now (unix s), batch.
#: Returns {moved, next due score or false}.
PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  local body = redis.call('HGET', KEYS[2], id)
  if body then
    redis.call('XADD', KEYS[3], '*', 'data', body)
    redis.call('HDEL', KEYS[2], id)
  end
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, nxt[2] or false}
"""

#: Seconds between reconnection attempts grow up to this.
MAX_BACKOFF = 2.0


class DelayPromoter:
    """Stores delayed messages and moves them to the ready stream when due.

    Args:
        client: the Redis client (binary responses).
        keys: key names of the queue.
        batch: most entries one script run moves; bounds the time Redis is busy.
        max_sleep: longest sleep between two runs, in seconds (a safety net for lost wake-ups).
        acks: replicas that must have a delayed message before :meth:`schedule` returns, if any.

    """

    def __init__(
        self,
        client: RedisClient,
        keys: RedisKeys,
        *,
        batch: int = 500,
        max_sleep: float = 1.0,
        acks: ReplicaAcks | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.batch = batch
        self.max_sleep = max_sleep
        self.acks = acks
        #: Set to end :meth:`run` at its next turn (a cancellation can be lost in redis-py).
        self.stopping = False
        self._schedule = client.register_script(SCHEDULE)
        self._promote = client.register_script(PROMOTE)

    async def schedule(self, message_id: str, body: bytes, due_at: float) -> None:
        """Store ``body`` until ``due_at`` (unix seconds), waking promoters if it is the earliest."""
        keys = [self.keys.delayed, self.keys.payloads]
        args: list[str | bytes] = [message_id, repr(due_at), body, self.keys.wakeup]
        if self.acks is not None and isinstance(self.client, Redis):
            await self.acks.run_script(self.client, self._schedule, keys, args)
        else:
            await self._schedule(keys=keys, args=args)

    async def promote_once(self, now: float | None = None) -> tuple[int, float | None]:
        """Move up to ``batch`` due entries; return how many moved and the next due time."""
        current = time.time() if now is None else now
        reply: list[Any] = await self._promote(
            keys=[self.keys.delayed, self.keys.payloads, self.keys.ready],
            args=[repr(current), self.batch],
        )
        moved = int(reply[0])
        next_due = float(reply[1]) if reply[1] is not None else None
        return moved, next_due

    async def run(self) -> None:
        """Promote due entries until cancelled or :attr:`stopping`, surviving Redis restarts."""
        backoff = 0.1
        while not self.stopping:
            error, connected = await self._serve()
            if error is None:
                break
            if connected:
                backoff = 0.1
            logger.warning("Delay promoter lost Redis (%s); retrying in %.1f s.", error, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _serve(self) -> tuple[Exception | None, bool]:
        """Promote until the connection fails; return the error and whether it had connected."""
        connected = False
        try:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            async with contextlib.aclosing(pubsub):
                await pubsub.subscribe(self.keys.wakeup)
                connected = True
                await self._loop(pubsub)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            return exc, connected
        except ResponseError as exc:
            logger.exception("Redis refused to promote delayed messages.")
            return exc, connected
        return None, connected

    async def _loop(self, pubsub: PubSub) -> None:
        while not self.stopping:
            moved, next_due = await self.promote_once()
            if moved >= self.batch:
                continue  # more may be due already
            wait = self.max_sleep
            if next_due is not None:
                wait = min(wait, max(0.0, next_due - time.time()))
            if wait <= 0:
                continue
            # Returns on a wake-up (a kick with an earlier due time) or after ``wait``.
            await pubsub.get_message(timeout=wait)
