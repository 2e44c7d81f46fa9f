"""Results, status records and progress in Redis: JSON by default, with a TTL, cluster-ready keys."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from redis.crc import key_slot

from taskiq_kit.exceptions import ResultBackendNotStartedError, ResultStoreNotAvailableError
from taskiq_kit.redis.connect import (
    UNREACHABLE,
    RedisClient,
    close_client,
    is_cluster,
    make_client,
    ping,
)
from taskiq_kit.redis.lua import eval_many
from taskiq_kit.results import redis_index, redis_writes
from taskiq_kit.results.arguments import DEFAULT_ARGS_LIMIT, RecordArgs
from taskiq_kit.results.backend import ChangeWaiter, KitResultBackend
from taskiq_kit.results.codec import (
    ResultCodec,
    Serializer,
    decode_progress,
    decode_record,
    encode_progress,
    make_codec,
)
from taskiq_kit.results.progress import ProgressReport
from taskiq_kit.results.reach import reaching
from taskiq_kit.results.record import TaskRecord
from taskiq_kit.results.redis_inspect import RedisInspect
from taskiq_kit.results.redis_keys import DEFAULT_PREFIX, ResultKeys
from taskiq_kit.results.redis_watch import RedisNotifier
from taskiq_kit.results.writes import RecordWrite, WriteOutcome
from taskiq_kit.settings import DAY
from taskiq_kit.urls import redact

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript
    from taskiq.result import TaskiqResult

_R = TypeVar("_R")


def _ttl_ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, math.ceil(ttl * 1000))


class RedisResultBackend(KitResultBackend[_R], RedisInspect):
    """Keeps results, status records and progress in Redis.

    Results are JSON documents by default (see :class:`~taskiq_kit.results.codec.JSONCodec`);
    errors are stored as type, message and traceback text and come back as
    :class:`~taskiq_kit.exceptions.TaskFailedError`. Every key expires ``result_ttl``
    seconds after its last write. Keys are ``<prefix>:{<task_id>}:<kind>``: one Redis Cluster
    slot per task. The task index (:mod:`taskiq_kit.results.redis_index`) and the worker
    registry live under ``<prefix>:{index}:`` and ``<prefix>:{workers}:``.

    On a Redis Cluster (``redis+cluster://``) a batch of writes is split by slot: one script call
    per slot, all sent in one cluster pipeline (one round trip per node), then one call updating
    the task index on its own slot.

    Args:
        url: ``redis://`` or ``rediss://`` URL of the server, ``redis+cluster://`` of a Redis
            Cluster, or ``redis+sentinel://`` of the Sentinels watching the master.
        result_ttl: seconds results, records and progress are kept (default one day);
            ``None`` keeps them until deleted.
        prefix: first part of every key.
        serializer: ``"json"`` (default) or ``"pickle"``. **Pickle lets anyone who can write
            to this Redis run code in every process that reads a result**; choose it only for
            a Redis nobody else can write to, and only if results must be arbitrary objects.
        max_connections: size of the connection pool.
        pool_timeout: seconds a call waits for a free connection before it fails.
        connect_timeout: seconds to wait for a connection to Redis (at start-up: for its
            first answer) before failing with
            :class:`~taskiq_kit.exceptions.ResultStoreNotAvailableError`.
        record_args: what each task's record keeps of its arguments: ``True`` (all, as JSON),
            ``False`` (none), or a function ``(task_name, args, kwargs)`` returning the
            ``(args, kwargs)`` to keep (e.g. masked) or ``None`` (see :mod:`taskiq_kit.results.arguments`).
        record_args_limit: bytes of JSON kept of ``args`` and of ``kwargs`` each (longer is cut).

    Raises:
        ValueError: for a ``result_ttl`` that is not positive, or a bad prefix or serializer.

    """

    def __init__(
        self,
        url: str,
        *,
        result_ttl: float | None = DAY,
        prefix: str = DEFAULT_PREFIX,
        serializer: Serializer | ResultCodec = "json",
        max_connections: int = 50,
        pool_timeout: float = 20.0,
        connect_timeout: float = 5.0,
        record_args: RecordArgs = True,
        record_args_limit: int = DEFAULT_ARGS_LIMIT,
    ) -> None:
        if result_ttl is not None and not result_ttl > 0:
            raise ValueError(f"result_ttl must be positive seconds or None, got {result_ttl!r}")
        self.url = url
        self.result_ttl = result_ttl
        self.keep_arguments(record_args, record_args_limit)
        self.keys = ResultKeys(prefix)
        self.codec = make_codec(serializer)
        self.max_connections = max_connections
        self.pool_timeout = pool_timeout
        self.connect_timeout = connect_timeout
        self.unreachable_errors = UNREACHABLE
        self._redis: RedisClient | None = None
        self._write_script: AsyncScript | None = None
        self._notifier: RedisNotifier | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisResultBackend[Any]:
        """Build a backend for ``url``; ``options`` as for the constructor."""
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"RedisResultBackend({redact(self.url)!r})"

    @property
    def target(self) -> str:
        """This store and its URL, safe to show."""
        return f"Redis result store at {redact(self.url)}"

    async def startup(self) -> None:
        """Create the connection pool and check that Redis answers (idempotent).

        Raises:
            ResultStoreNotAvailableError: when Redis does not answer within ``connect_timeout``.
            AccessRefusedError: when Redis refuses the URL's credentials or database.

        """
        if self._redis is None:
            # Blocking: with more concurrent tasks than connections, callers wait for one.
            redis = make_client(
                self.url,
                max_connections=self.max_connections,
                pool_timeout=self.pool_timeout,
                connect_timeout=self.connect_timeout,
            )
            try:
                await ping(
                    redis,
                    url=self.url,
                    target=self.target,
                    timeout=self.connect_timeout,
                    unavailable=ResultStoreNotAvailableError,
                )
            except BaseException:
                await close_client(redis)
                raise
            self._redis = redis
            self._write_script = redis.register_script(redis_writes.WRITE_RECORDS)

    async def shutdown(self) -> None:
        """Close the connection pool."""
        redis, notifier = self._redis, self._notifier
        self._notifier = None
        if notifier is not None:
            await notifier.close()
        self._redis = None
        self._write_script = None
        if redis is not None:
            await close_client(redis)

    @property
    def redis(self) -> RedisClient:
        """The client (available between :meth:`startup` and :meth:`shutdown`).

        Raises:
            ResultBackendNotStartedError: outside that window.

        """
        if self._redis is None:
            raise ResultBackendNotStartedError(backend=repr(self))
        return self._redis

    @reaching
    async def is_result_ready(self, task_id: str) -> bool:
        """Whether a result of ``task_id`` is stored."""
        return bool(await self.redis.exists(self.keys.result(task_id)))

    @reaching
    async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[_R]:
        """Return the result of ``task_id``; errors come back as ``TaskFailedError``.

        Raises:
            KeyError: when there is none (never finished, or expired).
            ResultDecodeError: when the stored bytes are not a result of this serializer.

        """
        data = await self.redis.get(self.keys.result(task_id))
        if data is None:
            raise KeyError(task_id)
        return self.codec.decode(data, task_id=task_id)

    def script_call(self, writes: Sequence[RecordWrite]) -> tuple[list[str], list[Any]]:
        """The keys and arguments of the script call applying ``writes`` (:attr:`write_script`)."""
        return redis_writes.pack(writes, self.keys, self.record_ttl, time.time())

    #: The Lua source applying a batch of writes (for a caller sending it in its own pipeline).
    write_script = redis_writes.WRITE_RECORDS

    @staticmethod
    def outcomes(reply: bytes | str) -> list[WriteOutcome]:
        """The outcomes in a reply of :attr:`write_script`."""
        return redis_writes.parse(reply)

    @reaching
    async def write_records(self, writes: Sequence[RecordWrite]) -> list[WriteOutcome]:
        """Apply ``writes`` in one script call (one round trip), each atomically."""
        script = self._write_script
        if script is None:
            raise ResultBackendNotStartedError(backend=repr(self))
        if is_cluster(self.redis):
            return await self._write_records_by_slot(writes)
        keys, args = self.script_call(writes)
        # EVALSHA, falling back to EVAL once per connection when the script is not cached.
        return self.outcomes(await script(keys=keys, args=args))

    async def _write_records_by_slot(self, writes: Sequence[RecordWrite]) -> list[WriteOutcome]:
        """On a cluster: the records, one script call per slot, then the task index's moves.

        The record calls (:data:`~taskiq_kit.results.redis_writes.WRITE_RECORDS_ONLY`) go in one
        pipeline (a round trip per node); each write stays atomic (its keys share the task's hash
        tag), and writes of different tasks were never atomic together. Their replies carry the
        index moves, which :data:`~taskiq_kit.results.redis_index.APPLY_MOVES` applies in a
        second call on the index's slot (see :mod:`taskiq_kit.results.redis_index`).
        """
        groups: dict[int, list[int]] = {}
        for index, write in enumerate(writes):
            slot = key_slot(self.keys.status(write.task_id).encode())
            groups.setdefault(slot, []).append(index)
        calls = [
            self.script_call([writes[index] for index in indexes]) for indexes in groups.values()
        ]
        replies = await eval_many(
            self.redis, redis_writes.WRITE_RECORDS_ONLY, calls, raise_on_error=False
        )
        outcomes: list[WriteOutcome | None] = [None] * len(writes)
        moves: list[Any] = []
        failed: Exception | None = None
        for indexes, reply in zip(groups.values(), replies, strict=True):
            if isinstance(reply, Exception):
                failed = failed or reply
                continue
            for index, outcome in zip(indexes, self.outcomes(reply[0]), strict=True):
                outcomes[index] = outcome
            moves += reply[1:]
        if moves:
            # The index follows the records that were written, even when another slot failed.
            prefix = self.keys.index()
            call = ([self.keys.index_anchor()], [prefix, *moves])
            await eval_many(self.redis, redis_index.APPLY_MOVES, [call])
        if failed is not None:
            raise failed
        return [outcome for outcome in outcomes if outcome is not None]

    @reaching
    async def get_record(self, task_id: str) -> TaskRecord | None:
        """Return the record of ``task_id``, if any."""
        return decode_record(task_id, await self.redis.hgetall(self.keys.status(task_id)))

    @reaching
    async def abort_requested_among(self, task_ids: Sequence[str]) -> list[str]:
        """The ids among ``task_ids`` whose records carry an abort's tombstone (one round trip)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.hget(self.keys.status(task_id), "abort_requested_at")
            values = await pipe.execute()
        return [
            task_id
            for task_id, value in zip(task_ids, values, strict=True)
            if value is not None and value != b"null"
        ]

    @reaching
    async def write_progress(self, task_id: str, report: ProgressReport) -> None:
        """Store ``report`` and announce it to watchers, in one transaction.

        On a cluster, the write and then the announcement (a channel is no key of a slot).
        """
        if is_cluster(self.redis):
            progress = encode_progress(report)
            await self.redis.set(self.keys.progress(task_id), progress, px=_ttl_ms(self.result_ttl))
            await self.redis.publish(self.keys.events(task_id), "progress")
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(
                self.keys.progress(task_id), encode_progress(report), px=_ttl_ms(self.result_ttl)
            )
            pipe.publish(self.keys.events(task_id), "progress")
            await pipe.execute()

    @reaching
    async def read_progress(self, task_id: str) -> ProgressReport | None:
        """Return the latest progress of ``task_id``, if any."""
        data = await self.redis.get(self.keys.progress(task_id))
        return None if data is None else decode_progress(data, task_id=task_id)

    def watch_changes(self, task_id: str) -> AbstractAsyncContextManager[ChangeWaiter]:
        """Wake-ups from the task's pub/sub channel (progress writes and the final status).

        All watchers of this backend share one pub/sub connection.
        """
        if self._notifier is None:
            self._notifier = RedisNotifier(self.redis, self.keys)
        return self._notifier.watch(task_id)
