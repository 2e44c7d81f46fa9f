"""The Redis store's side of the inspect API: the task index's reads and the worker registry.

Every script declares a key of the one slot it works in (``KEYS``): the index scripts
:meth:`~taskiq_kit.results.redis_keys.ResultKeys.index_anchor` (the other index keys they build
in Lua share its ``{index}`` hash tag), the registry's both ``{workers}`` keys. No script reads
both the index and task records: a listing reads a page of the index, then the records in a
pipeline of per-task reads, then drops the entries whose record is gone; so it runs on a Redis
Cluster as on one server.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from taskiq_kit.inspect.cursor import Position, decode_cursor, encode_cursor
from taskiq_kit.inspect.models import TaskPage, TaskQuery, WorkerInfo
from taskiq_kit.results import redis_index
from taskiq_kit.results.codec import decode_record
from taskiq_kit.results.reach import reaching
from taskiq_kit.results.record import TaskRecord, TaskStatus

if TYPE_CHECKING:
    from taskiq_kit.redis.connect import RedisClient
    from taskiq_kit.results.redis_keys import ResultKeys

#: Index entries one listing call looks at, at most (a page of rare matches may come short,
#: with a cursor to go on).
SCAN_BUDGET = 20_000
_STATUS_OF_CODE = {code: TaskStatus(status) for status, code in redis_index.CODES.items()}

_BEAT = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[3]), ARGV[1])
return 1
"""
_LIVE_WORKERS = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms)
for _, id in ipairs(dead) do redis.call('HDEL', KEYS[1], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
local live = redis.call('ZRANGE', KEYS[2], 0, -1)
if #live == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(live))
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _score(at: float) -> str:
    return repr(float(at))


class RedisInspect:
    """:class:`~taskiq_kit.inspect.protocols.TaskIndex` and ``WorkerRegistry`` over Redis.

    Mixed into :class:`~taskiq_kit.results.redis.RedisResultBackend`, whose record script
    keeps the index (see :mod:`taskiq_kit.results.redis_index`).
    """

    keys: ResultKeys
    url: str
    connect_timeout: float
    unreachable_errors: tuple[type[BaseException], ...]

    @property
    def target(self) -> str:  # pragma: no cover - the backend's
        """The store and its redacted URL (the backend's)."""
        raise NotImplementedError

    @property
    def redis(self) -> RedisClient:  # pragma: no cover - the backend's
        """The client (the backend's)."""
        raise NotImplementedError

    async def _script(self, source: str, args: list[Any], keys: list[str] | None = None) -> Any:
        scripts: dict[str, Any] = self.__dict__.setdefault("_inspect_scripts", {})
        script = scripts.get(source)
        if script is None:
            script = scripts[source] = self.redis.register_script(source)
        return await script(keys=keys or [], args=args)

    @reaching
    async def list_tasks(self, query: TaskQuery, *, limit: int, cursor: str | None) -> TaskPage:
        """One page of the records matching ``query``, newest kick first (ties: task id)."""
        position = None if cursor is None else decode_cursor(query, cursor)
        base, codes = "all", "".join(sorted(redis_index.CODES[s.value] for s in query.statuses))
        if len(query.statuses) == 1:
            base, codes = f"status:{next(iter(query.statuses)).value}", ""
        elif query.task_name is not None:
            base = f"name:{query.task_name}"
        elif query.queue is not None:
            base = f"queue:{query.queue}"
        top = "+inf" if query.until is None else f"({_score(query.until)}"
        if position is not None and (query.until is None or position.at < query.until):
            top = _score(position.at)
        bottom = "-inf" if query.since is None else _score(query.since)
        index = self.keys.index()
        found, last_id, last_score = await self._script(
            redis_index.LIST_TASKS,
            [
                index,
                base,
                top,
                bottom,
                "" if position is None else position.task_id,
                "0" if position is None else _score(position.at),
                limit + 1,
                codes,
                query.task_name or "",
                query.queue or "",
                (query.search or "").lower(),
                SCAN_BUDGET,
            ],
            keys=[self.keys.index_anchor()],
        )
        ids = [_text(item) for item in found[::2]]
        scores = [float(item) for item in found[1::2]]
        more = len(ids) > limit
        ids, scores = ids[:limit], scores[:limit]
        records = await self._records(ids)
        tasks = [record for record in records if record is not None]
        next_cursor = None
        if more:
            next_cursor = encode_cursor(query, Position(scores[-1], ids[-1]))
        elif _text(last_id):
            # The scan budget ran out first: go on from the last entry looked at.
            next_cursor = encode_cursor(query, Position(float(last_score), _text(last_id)))
        return TaskPage(tasks=tasks, next_cursor=next_cursor)

    async def _records(self, ids: list[str]) -> list[TaskRecord | None]:
        """The records of ``ids`` (a pipeline of per-task reads); drops index entries of the gone.

        Two steps, never one script: on a cluster the records live in per-task slots and the
        index in its own.
        """
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(self.keys.status(task_id))
            replies = await pipe.execute()
        records = [
            decode_record(task_id, fields) if fields else None
            for task_id, fields in zip(ids, replies, strict=True)
        ]
        gone = [task_id for task_id, record in zip(ids, records, strict=True) if record is None]
        if gone:
            await self._script(
                redis_index.DROP_ENTRIES,
                [self.keys.index(), *gone],
                keys=[self.keys.index_anchor()],
            )
        return records

    @reaching
    async def count_tasks(self, query: TaskQuery) -> dict[TaskStatus, int]:
        """How many records match ``query``, per status (every status, zeros included)."""
        bottom = "-inf" if query.since is None else _score(query.since)
        top = "+inf" if query.until is None else f"({_score(query.until)}"
        reply = await self._script(
            redis_index.COUNT_TASKS,
            [
                self.keys.index(),
                bottom,
                top,
                query.task_name or "",
                query.queue or "",
                (query.search or "").lower(),
            ],
            keys=[self.keys.index_anchor()],
        )
        counts = dict.fromkeys(TaskStatus, 0)
        for code, count in zip(reply[::2], reply[1::2], strict=True):
            status = _STATUS_OF_CODE.get(_text(code))
            if status is not None:
                counts[status] = int(count)
        return counts

    @reaching
    async def beat(self, worker: WorkerInfo, *, ttl: float) -> None:
        """Write ``worker``'s heartbeat; it counts as dead ``ttl`` seconds after it."""
        await self._script(
            _BEAT,
            [worker.id, worker.model_dump_json(), max(1, int(ttl * 1000))],
            keys=[self.keys.workers(), self.keys.worker_deadlines()],
        )

    @reaching
    async def leave(self, worker_id: str) -> None:
        """Remove ``worker_id`` (a clean shutdown)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.workers(), worker_id)
            pipe.zrem(self.keys.worker_deadlines(), worker_id)
            await pipe.execute()

    @reaching
    async def list_workers(self) -> list[WorkerInfo]:
        """The live workers, oldest start first (the dead ones are removed on the way)."""
        reply = await self._script(
            _LIVE_WORKERS, [], keys=[self.keys.workers(), self.keys.worker_deadlines()]
        )
        workers = [WorkerInfo.model_validate(json.loads(item)) for item in reply if item]
        return sorted(workers, key=lambda worker: (worker.started_at, worker.id))
