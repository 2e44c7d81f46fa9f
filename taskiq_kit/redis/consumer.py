"""Consuming the ready stream through a consumer group: read, reclaim, keep alive, settle.

A message read by a worker stays in the group's pending list until acknowledged. Each consumer
beats in the queue's heartbeats (see :mod:`taskiq_kit.redis.heartbeat`); a live consumer claims
the messages of one whose heartbeat stopped within seconds. As a backstop (consumers without a
heartbeat), the idle time of held entries is reset on a timer; an entry idle past ``idle_timeout``
is claimed (``XAUTOCLAIM``) by any live worker, also on a timer, so recovery does not wait for new
traffic. The delivery count Redis keeps becomes :attr:`Delivery.attempt`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from taskiq_kit.delivery import Delivery
from taskiq_kit.redis import scripts
from taskiq_kit.redis.batching import Batcher
from taskiq_kit.redis.heartbeat import Liveness

if TYPE_CHECKING:
    from taskiq_kit.redis.connect import RedisClient
    from taskiq_kit.redis.keys import RedisKeys

logger = logging.getLogger("taskiq_kit.redis.consumer")

#: Errors after which the consumer waits and tries again (Redis down, restarting, loading).
TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)
MAX_BACKOFF = 2.0
#: Consumers of dead workers (nothing pending) are deleted after this many idle seconds.
PRUNE_AFTER = 600.0
_CHUNK = 500
#: Acks wait this long to share a round trip: the task is done and its result saved already.
ACK_LINGER = 0.002

Entry = tuple[str, bytes, int]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


#: Stands for the body of an entry without a ``data`` field (compared by identity, never sent):
#: such an entry is dead-lettered with a reason, not dropped.
_NO_DATA = bytes(bytearray(b"<no data field>"))


def _body(body: bytes | None) -> bytes:
    """A claimed entry's body (``None``: the entry has no ``data`` field)."""
    return _NO_DATA if body is None else bytes(body)


def _read_entries(reply: Any) -> list[Entry]:
    """Entries of an ``XREADGROUP`` reply (RESP2 list or RESP3 map) as (id, body, attempt 1)."""
    streams = reply.items() if isinstance(reply, dict) else (reply or [])
    entries: list[Entry] = []
    for _name, messages in streams:
        for message_id, fields in messages:
            body = (fields or {}).get(b"data")
            entries.append((_text(message_id), body if isinstance(body, bytes) else _NO_DATA, 1))
    return entries


class StreamConsumer:
    """One worker's consumer in the group of the ready stream.

    Args:
        client: the Redis client (binary responses).
        keys: key names of the queue.
        name: this consumer's name in the group (unique per worker process).
        idle_timeout: seconds after which a message whose worker stopped answering is redelivered.
        read_count: messages read per round trip (the worker's prefetch beyond taskiq's own).
        dead_letter_maxlen: approximate cap of the dead-letter stream.
        connect: makes the heartbeat thread's own Redis client.
        heartbeat_interval: seconds between two heartbeats of this consumer.
        dead_after: seconds without a heartbeat after which a consumer counts as dead.

    """

    def __init__(
        self,
        client: RedisClient,
        keys: RedisKeys,
        *,
        name: str,
        idle_timeout: float,
        read_count: int,
        dead_letter_maxlen: int,
        connect: Callable[[], RedisClient],
        heartbeat_interval: float = 1.0,
        dead_after: float = 3.0,
    ) -> None:
        self.client = client
        self.keys = keys
        self.name = name
        self.idle_ms = max(1, int(idle_timeout * 1000))
        self.read_count = read_count
        self.dead_letter_maxlen = dead_letter_maxlen
        #: Ids read by this consumer and not settled yet; their idle time is kept low.
        self.in_flight: set[str] = set()
        self._reclaim_every = max(0.05, idle_timeout / 2)
        self._block_ms = max(10, int(min(self._reclaim_every, 2.0) * 1000))
        self._cursor = "0-0"
        self._next_reclaim = 0.0
        self._next_prune = time.monotonic() + 60.0
        self._ack_script = client.register_script(scripts.ACK)
        self._dead_script = client.register_script(scripts.DEAD_LETTER)
        self._reclaim_script = client.register_script(scripts.RECLAIM)
        self._prune_script = client.register_script(scripts.PRUNE)
        self.liveness = Liveness(
            client, connect, keys, name=name, interval=heartbeat_interval, dead_after=dead_after
        )
        self._acks: Batcher[str] = Batcher(self._ack_many, linger=ACK_LINGER)
        self._buffer: asyncio.Queue[Entry] = asyncio.Queue()
        self._low_water = read_count // 2
        self._room = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def ensure_group(self) -> None:
        """Create the stream and the group (from the start of the stream) unless they exist."""
        try:
            await self.client.xgroup_create(self.keys.ready, self.keys.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def start(self) -> None:
        """Start the heartbeat, and reading into the local buffer in background tasks."""
        if not self._tasks:
            self._stopping = False
            self.liveness.start()
            self._tasks = [
                asyncio.create_task(self._fetch(), name="taskiq-kit-redis-fetch"),
                asyncio.create_task(self._refresh_held(), name="taskiq-kit-redis-refresh"),
            ]

    async def stop(self, timeout: float = 3.0) -> None:
        """Stop the background tasks, then hand unsettled messages over to other workers."""
        # Python < 3.12's asyncio.wait_for (used inside redis-py) may swallow a cancellation,
        # so the loops also check the flag, and the wait is bounded.
        self._stopping = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        await self.release()
        await self.liveness.stop()

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        """Yield deliveries from the local buffer (filled by the background fetcher) forever.

        Waiting on a local queue, not on Redis, keeps the Receiver's cancellation of a pending
        read (at shutdown) clean: no socket operation is ever cancelled half-way from here.
        """
        self.start()
        while True:
            message_id, body, attempt = await self._buffer.get()
            if self._buffer.qsize() <= self._low_water:
                self._room.set()
            yield self._delivery(message_id, body, attempt)

    async def _wait_for_room(self) -> None:
        """Read ahead again only once the buffer has drained to half of ``read_count``."""
        while self._buffer.qsize() > self._low_water and not self._stopping:
            self._room.clear()
            await self._room.wait()

    async def _fetch(self) -> None:
        """Fill the buffer from Redis, riding out outages, restarts and lost groups."""
        backoff = 0.1
        group_ready = False
        while not self._stopping:
            try:
                if not group_ready:
                    await self.ensure_group()
                    group_ready = True
                entries = await self._next_entries(self.read_count - self._buffer.qsize())
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    logger.warning("Consumer group %s is missing; re-creating it.", self.keys.group)
                    group_ready = False
                    continue
                logger.exception("Redis refused a read; retrying in %.1f s.", backoff)
            except TRANSIENT as exc:
                logger.warning("Redis is unreachable (%s); retrying in %.1f s.", exc, backoff)
            else:
                backoff = 0.1
                self.in_flight.update(entry[0] for entry in entries)
                for entry in entries:
                    self._buffer.put_nowait(entry)
                await self._wait_for_room()
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _next_entries(self, count: int) -> list[Entry]:
        swept = await self.liveness.sweep(count)
        if swept:
            return [(entry_id, _body(body), attempt) for entry_id, body, attempt in swept]
        now = time.monotonic()
        if now >= self._next_reclaim:
            self._next_reclaim = now + self._reclaim_every
            claimed = await self._reclaim(count)
            if claimed:
                self._next_reclaim = 0.0  # more may be waiting: look again before reading
                return claimed
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_AFTER / 10
            await self._prune_script(
                keys=[self.keys.ready], args=[self.keys.group, int(PRUNE_AFTER * 1000), self.name]
            )
        wait = min(self._next_reclaim - now, self.liveness.seconds_to_sweep(now))
        block = max(1, min(self._block_ms, int(wait * 1000)))
        reply = await self.client.xreadgroup(
            self.keys.group,
            self.name,
            {self.keys.ready: ">"},
            count=count,
            block=block,
        )
        return _read_entries(reply)

    async def _reclaim(self, count: int) -> list[Entry]:
        reply: list[Any] = await self._reclaim_script(
            keys=[self.keys.ready],
            args=[self.keys.group, self.name, self.idle_ms, self._cursor, count],
        )
        self._cursor = _text(reply[0])
        claimed = [(_text(entry[0]), _body(entry[1]), int(entry[2])) for entry in reply[1]]
        if claimed:
            logger.info("Reclaimed %d message(s) idle for over %d ms.", len(claimed), self.idle_ms)
        elif self._cursor != "0-0":
            self._next_reclaim = 0.0  # the scan is not finished: go on with the next read
        return claimed

    def _delivery(self, message_id: str, body: bytes, attempt: int) -> Delivery:
        defect = None
        if body is _NO_DATA:
            body, defect = b"", "stream entry without a 'data' field"

        async def ack() -> None:
            await self._settle(message_id, self._acks.submit(message_id))

        async def dead_letter(reason: str) -> None:
            await self._settle(
                message_id,
                self._dead_script(
                    keys=[self.keys.ready, self.keys.dead],
                    args=[
                        self.keys.group,
                        message_id,
                        body,
                        reason,
                        attempt,
                        self.dead_letter_maxlen,
                    ],
                ),
            )

        return Delivery(data=body, ack=ack, dead_letter=dead_letter, attempt=attempt, defect=defect)

    async def _settle(self, message_id: str, settling: Awaitable[Any]) -> None:
        self.in_flight.discard(message_id)
        try:
            await settling
        except TRANSIENT as exc:
            # Not settled: the message stays pending and is delivered again after idle_timeout.
            logger.warning(
                "Cannot settle message %s (%s); it will be redelivered.", message_id, exc
            )

    async def _ack_many(self, ids: list[str]) -> None:
        await self._ack_script(keys=[self.keys.ready], args=[self.keys.group, *ids])

    async def _refresh_held(self) -> None:
        """Reset the idle time of in-flight messages, so the idle reclaim does not take them."""
        while not self._stopping:
            await asyncio.sleep(self.idle_ms / 3000)
            try:
                await self._touch(idle=None)
            except (*TRANSIENT, ResponseError) as exc:
                logger.debug("Idle time refresh failed: %s", exc)

    async def release(self) -> None:
        """Make unsettled messages claimable by other workers at once (on shutdown)."""
        with contextlib.suppress(*TRANSIENT, ResponseError):
            await self._touch(idle=self.idle_ms)
        self.in_flight.clear()

    async def _touch(self, *, idle: int | None) -> None:
        ids: list[str | bytes | int | memoryview] = list(self.in_flight)
        for start in range(0, len(ids), _CHUNK):
            await self.client.xclaim(
                self.keys.ready,
                self.keys.group,
                self.name,
                0,
                ids[start : start + _CHUNK],
                idle=idle,
                justid=True,
            )
