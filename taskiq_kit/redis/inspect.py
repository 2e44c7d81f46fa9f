"""Queue figures and the dead-letter box of the Redis broker.

Figures come from one Lua script (one round trip, one consistent instant): the ready stream's
length less the group's pending entries is what waits for a worker (acknowledged entries are
deleted, so the stream holds only those two kinds), the pending count is what workers hold, the
delayed set's and the dead stream's sizes, and the consumers whose heartbeat is live.

Dead letters are the entries of the dead stream (fields ``data``, ``reason``, ``attempt``,
``id``); their id is the entry id. A replay prepares a batch's new bodies, then one script moves
the batch: each entry still in the dead stream is appended to the ready stream and deleted from
the dead stream in the same atomic step, so an interrupted replay has moved each entry once or not
at all; then the records of the moved ones go back to ``pending``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from taskiq_kit.exceptions import InvalidCursorError
from taskiq_kit.inspect.dead_letters import (
    REPLAY_BATCH,
    Progress,
    body_names,
    decode_cursor,
    encode_cursor,
    prepare_replays,
    preview,
    record_replays,
)
from taskiq_kit.inspect.models import DeadLetter, DeadLetterPage, QueueFigures, ReplayReport

if TYPE_CHECKING:
    from taskiq_kit.base import KitBroker
    from taskiq_kit.inspect.protocols import ProgressCallback
    from taskiq_kit.redis.connect import RedisClient
    from taskiq_kit.redis.keys import RedisKeys

#: KEYS: ready, delayed, dead, heartbeats. ARGV: group.
#: Returns {stream length, pending, delayed, dead, live consumers}.
FIGURES = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pending = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local fields = {}
    for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
    if fields['name'] == ARGV[1] then pending = tonumber(fields['pending']) end
  end
end
return {redis.call('XLEN', KEYS[1]), pending, redis.call('ZCARD', KEYS[2]),
  redis.call('XLEN', KEYS[3]), redis.call('ZCOUNT', KEYS[4], now, '+inf')}
"""

#: KEYS: dead, ready. ARGV: n, n dead-letter ids, n bodies.
#: Moves each dead letter still there to the ready stream with its new body; returns the
#: ids that were not there.
REPLAY = """
local n, missing = tonumber(ARGV[1]), {}
for i = 1, n do
  local id = ARGV[1 + i]
  if #redis.call('XRANGE', KEYS[1], id, id) == 0 then
    missing[#missing + 1] = id
  else
    redis.call('XADD', KEYS[2], '*', 'data', ARGV[1 + n + i])
    redis.call('XDEL', KEYS[1], id)
  end
end
return missing
"""

#: KEYS: dead. ARGV: id... Deletes each; returns the ids that were not there.
DELETE = """
local missing = {}
for i = 1, #ARGV do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 0 then missing[#missing + 1] = ARGV[i] end
end
return missing
"""

#: KEYS: dead. Deletes the dead stream; returns how many entries it held.
PURGE = """
local n = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1])
return n
"""

_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _data(fields: Any) -> bytes:
    data = (fields or {}).get(b"data", b"")
    return data if isinstance(data, bytes) else str(data).encode()


class RedisInspector:
    """The inspect side of one :class:`~taskiq_kit.redis.broker.RedisBroker`.

    Args:
        broker: the broker (its records are written on replays).
        keys: its key names.
        client: returns its Redis client.

    """

    def __init__(
        self, broker: KitBroker, keys: RedisKeys, client: Callable[[], RedisClient]
    ) -> None:
        self.broker = broker
        self.keys = keys
        self._client = client

    @property
    def client(self) -> RedisClient:
        """The broker's Redis client."""
        return self._client()

    async def queue_figures(self) -> list[QueueFigures]:
        """The broker's one queue, counted in one round trip."""
        keys = self.keys
        client = self.client
        length, pending, delayed, dead, live = await client.eval(
            FIGURES, 4, keys.ready, keys.delayed, keys.dead, keys.heartbeats, keys.group
        )
        return [
            QueueFigures(
                name=keys.queue,
                ready=max(0, int(length) - int(pending)),
                in_flight=int(pending),
                delayed=int(delayed),
                dead_lettered=int(dead),
                consumers=int(live),
            )
        ]

    def _dead_letter(self, entry_id: Any, fields: dict[bytes, bytes]) -> DeadLetter:
        data = fields.get(b"data", b"")
        names = body_names(data)
        dead_id = _text(entry_id)
        attempt = fields.get(b"attempt", b"0")
        return DeadLetter(
            id=dead_id,
            task_id=names.task_id,
            task_name=names.task_name,
            queue=self.keys.queue,
            reason=_text(fields.get(b"reason", b"?")),
            attempts=int(attempt) if attempt.isdigit() else 0,
            dead_lettered_at=int(dead_id.split("-")[0]) / 1000,
            preview=preview(data),
        )

    async def list_dead_letters(self, *, limit: int, cursor: str | None) -> DeadLetterPage:
        """One page of the dead stream, oldest first; the cursor holds the last entry id."""
        start = "-"
        if cursor is not None:
            last = decode_cursor("redis", cursor)
            if not _ENTRY_ID.match(last):
                raise InvalidCursorError(cursor=cursor[:60], reason="not a dead-letter position")
            start = f"({last}"
        client = self.client
        async with client.pipeline(transaction=True) as pipe:
            pipe.xrange(self.keys.dead, start, "+", count=limit + 1)
            pipe.xlen(self.keys.dead)
            entries, total = await pipe.execute()
        page = [self._dead_letter(entry_id, fields) for entry_id, fields in entries[:limit]]
        more = len(entries) > limit and page
        return DeadLetterPage(
            dead_letters=page,
            total=int(total),
            next_cursor=encode_cursor("redis", page[-1].id) if more else None,
        )

    async def _fetch(self, ids: Sequence[str]) -> tuple[list[tuple[str, bytes]], list[str]]:
        """The bodies of ``ids`` still in the dead stream, and the ids that are not."""
        valid = [item for item in ids if _ENTRY_ID.match(item)]
        missing = [item for item in ids if not _ENTRY_ID.match(item)]
        found: list[tuple[str, bytes]] = []
        if valid:
            async with self.client.pipeline(transaction=False) as pipe:
                for item in valid:
                    pipe.xrange(self.keys.dead, item, item)
                replies = await pipe.execute()
            for item, reply in zip(valid, replies, strict=True):
                if reply:
                    found.append((item, _data(reply[0][1])))
                else:
                    missing.append(item)
        return found, missing

    async def _batches(
        self, ids: Sequence[str] | None
    ) -> AsyncIterator[tuple[list[tuple[str, bytes]], list[str]]]:
        """Yield (found, missing) batches of the given ids, or of the whole stream as it is now."""
        client = self.client
        if ids is not None:
            for start in range(0, len(ids), REPLAY_BATCH):
                yield await self._fetch(ids[start : start + REPLAY_BATCH])
            return
        newest = await client.xrevrange(self.keys.dead, "+", "-", count=1)
        if not newest:
            return
        end, first = _text(newest[0][0]), "-"
        while True:
            entries = await client.xrange(self.keys.dead, first, end, count=REPLAY_BATCH)
            if not entries:
                return
            batch = [(_text(entry_id), _data(fields)) for entry_id, fields in entries]
            yield batch, []
            first = f"({batch[-1][0]}"

    async def _total(self, ids: Sequence[str] | None) -> int:
        return len(ids) if ids is not None else int(await self.client.xlen(self.keys.dead))

    async def replay_dead_letters(
        self, ids: Sequence[str] | None, *, progress: ProgressCallback | None = None
    ) -> ReplayReport:
        """Move dead letters back to the ready stream, a batch per atomic script run."""
        report = ReplayReport()
        counter = Progress(progress, await self._total(ids))
        client = self.client
        keys = (self.keys.dead, self.keys.ready)
        async for found, missing in self._batches(ids):
            report.missing.extend(missing)
            if found:
                replays = prepare_replays(self.broker, [data for _, data in found])
                args: list[bytes | str | int] = [len(found)]
                args.extend(dead_id for dead_id, _ in found)
                args.extend(replay.body for replay in replays)
                gone = {_text(item) for item in await client.eval(REPLAY, 2, *keys, *args)}
                report.missing.extend(item for item, _ in found if item in gone)
                report.replayed += len(found) - len(gone)
                moved = [r for (item, _), r in zip(found, replays, strict=True) if item not in gone]
                await record_replays(self.broker, moved)
            counter.add(len(found) + len(missing))
        return report

    async def delete_dead_letters(
        self, ids: Sequence[str] | None, *, progress: ProgressCallback | None = None
    ) -> ReplayReport:
        """Delete dead letters (``None``: the whole dead stream at once)."""
        client = self.client
        if ids is None:
            deleted = int(await client.eval(PURGE, 1, self.keys.dead))
            Progress(progress, deleted).add(deleted)
            return ReplayReport(replayed=deleted)
        report = ReplayReport()
        counter = Progress(progress, len(ids))
        for start in range(0, len(ids), REPLAY_BATCH):
            batch = list(ids[start : start + REPLAY_BATCH])
            valid = [item for item in batch if _ENTRY_ID.match(item)]
            report.missing.extend(item for item in batch if not _ENTRY_ID.match(item))
            gone = await client.eval(DELETE, 1, self.keys.dead, *valid) if valid else []
            report.missing.extend(_text(item) for item in gone)
            report.replayed += len(valid) - len(gone)
            counter.add(len(batch))
        return report
