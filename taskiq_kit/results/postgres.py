"""Results, status records and progress in PostgreSQL (asyncpg): one row per task, with a TTL."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import asyncpg
from pydantic_core import to_json
from taskiq.result import TaskiqResult

from taskiq_kit.exceptions import (
    ResultBackendNotStartedError,
    ResultStoreNotAvailableError,
)
from taskiq_kit.results.arguments import DEFAULT_ARGS_LIMIT, RecordArgs
from taskiq_kit.results.backend import ChangeWaiter, KitResultBackend
from taskiq_kit.results.codec import (
    ResultCodec,
    Serializer,
    decode_progress,
    encode_progress,
    make_codec,
)
from taskiq_kit.results.postgres_connect import UNREACHABLE, open_pool
from taskiq_kit.results.postgres_inspect import PostgresInspect, decode_record_text
from taskiq_kit.results.postgres_inspect import schema_sql as inspect_schema_sql
from taskiq_kit.results.postgres_sql import DEFAULT_TABLE, check_table, render
from taskiq_kit.results.postgres_watch import PostgresNotifier
from taskiq_kit.results.progress import ProgressReport
from taskiq_kit.results.reach import reaching
from taskiq_kit.results.record import TaskRecord
from taskiq_kit.results.writes import MARK, RecordWrite, WriteOutcome
from taskiq_kit.settings import DAY
from taskiq_kit.urls import redact

_R = TypeVar("_R")

logger = logging.getLogger("taskiq_kit.results")


def _jsonb_text(data: bytes) -> str:
    # jsonb rejects the NUL character; an error message holding one must not lose the status.
    return data.decode().replace("\\u0000", "\\ufffd")


class PostgresResultBackend(KitResultBackend[_R], PostgresInspect):
    """Keeps results, status records and progress in one PostgreSQL table, via asyncpg.

    One row per task id: ``record`` (jsonb, merged with ``||`` on every status write),
    ``result`` (bytea, JSON by default), ``progress`` (jsonb) and ``expires_at``. A batch of
    record writes is one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE`` statement,
    atomic per row, so any number of workers can write the same task. Expired rows are
    invisible to reads at once and deleted in bounded batches by every started backend
    (every ``purge_interval`` seconds), or by :meth:`purge_expired`.

    Args:
        url: ``postgresql://`` (or ``postgres://``) URL of the database.
        result_ttl: seconds a row lives after its last write (default one day); ``None``
            keeps rows until deleted.
        table: table name, ``table`` or ``schema.table``.
        create_table: create the table and its index at start-up when missing. Set ``False``
            when migrations own the schema (see :meth:`schema_sql`).
        serializer: ``"json"`` (default) or ``"pickle"`` (**runs code chosen by anyone who
            can write to the table**; see :class:`~taskiq_kit.results.codec.PickleCodec`).
        purge_interval: seconds between purges of expired rows (``None``: never purge).
        purge_batch: rows deleted per purge statement.
        min_pool_size: connections the pool keeps open.
        max_pool_size: connections the pool may open.
        connect_timeout: seconds to wait for a connection before failing with
            :class:`~taskiq_kit.exceptions.ResultStoreNotAvailableError`.
        record_args: what each task's record keeps of its arguments: ``True`` (all, as JSON),
            ``False`` (none), or a function ``(task_name, args, kwargs)`` returning the
            ``(args, kwargs)`` to keep (e.g. masked) or ``None`` (see :mod:`taskiq_kit.results.arguments`).
        record_args_limit: bytes of JSON kept of ``args`` and of ``kwargs`` each (longer is cut).

    Raises:
        ValueError: for an invalid table name, a ``result_ttl`` that is not positive, or an
            unknown serializer.

    """

    def __init__(
        self,
        url: str,
        *,
        result_ttl: float | None = DAY,
        table: str = DEFAULT_TABLE,
        create_table: bool = True,
        serializer: Serializer | ResultCodec = "json",
        purge_interval: float | None = 60.0,
        purge_batch: int = 1000,
        min_pool_size: int = 1,
        max_pool_size: int = 10,
        connect_timeout: float = 5.0,
        record_args: RecordArgs = True,
        record_args_limit: int = DEFAULT_ARGS_LIMIT,
    ) -> None:
        if result_ttl is not None and not result_ttl > 0:
            raise ValueError(f"result_ttl must be positive seconds or None, got {result_ttl!r}")
        self.url = url
        self.result_ttl = result_ttl
        self.keep_arguments(record_args, record_args_limit)
        self.table = check_table(table)
        self.create_table = create_table
        self.codec = make_codec(serializer)
        self.purge_interval = purge_interval
        self.purge_batch = purge_batch
        self.min_pool_size = min_pool_size
        self.max_pool_size = max_pool_size
        self.connect_timeout = connect_timeout
        self.unreachable_errors = UNREACHABLE
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._purger: asyncio.Task[None] | None = None
        self._sql = render(self.table)
        #: LISTEN/NOTIFY channel of this table (payload: a task id).
        self.channel = "taskiq_kit_" + hashlib.sha256(self.table.encode()).hexdigest()[:16]
        self._notifier: PostgresNotifier | None = None

    def schema_sql(self) -> list[str]:
        """The statements that create the table, its indexes and the workers table (for migrations).

        The task index's columns are added to a table made by an older version in place (see
        :func:`~taskiq_kit.results.postgres_inspect.schema_sql`).
        """
        return [
            self._sql["create_table"],
            self._sql["create_index"],
            *inspect_schema_sql(self.table),
        ]

    def __repr__(self) -> str:
        return f"PostgresResultBackend({redact(self.url)!r}, table={self.table!r})"

    @property
    def target(self) -> str:
        """This store and its URL, safe to show."""
        return f"PostgreSQL result store at {redact(self.url)}"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresResultBackend[Any]:
        """Build a backend for ``url``; ``options`` as for the constructor."""
        return cls(url, **options)

    async def startup(self) -> None:
        """Open the pool, create the table if missing, start purging expired rows (idempotent).

        Raises:
            ResultStoreNotAvailableError: when PostgreSQL cannot be reached in ``connect_timeout``.
            AccessRefusedError: when it refuses the URL's role, password or database.

        """
        if self._pool is not None:
            return
        pool = await open_pool(self, min_size=self.min_pool_size, max_size=self.max_pool_size)
        try:
            if self.create_table:
                async with pool.acquire() as conn, conn.transaction():
                    # Concurrent CREATE TABLE IF NOT EXISTS can still collide: serialise them.
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.table)
                    for statement in self.schema_sql():
                        await conn.execute(statement)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        if self.purge_interval is not None:
            self._purger = asyncio.create_task(self._purge_forever(self.purge_interval))

    async def shutdown(self) -> None:
        """Stop purging and close the pool."""
        purger, pool, notifier = self._purger, self._pool, self._notifier
        self._purger = self._pool = self._notifier = None
        if notifier is not None:
            await notifier.close()
        if purger is not None:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
        if pool is not None:
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        """The connection pool (available between :meth:`startup` and :meth:`shutdown`).

        Raises:
            ResultBackendNotStartedError: outside that window.

        """
        if self._pool is None:
            raise ResultBackendNotStartedError(backend=repr(self))
        return self._pool

    @reaching
    async def purge_expired(self) -> int:
        """Delete up to ``purge_batch`` expired rows; return how many were deleted."""
        status = await self.pool.execute(self._sql["purge"], self.purge_batch)
        return int(status.rsplit(" ", 1)[-1])

    async def _purge_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                # Bounded: a few batches per round, the rest waits for the next round.
                for _ in range(10):
                    if await self.purge_expired() < self.purge_batch:
                        break
            except (
                asyncpg.PostgresError,
                OSError,
                ResultBackendNotStartedError,
                ResultStoreNotAvailableError,
            ):
                logger.warning("Purging expired task rows failed; retrying later.", exc_info=True)

    @reaching
    async def is_result_ready(self, task_id: str) -> bool:
        """Whether a live result of ``task_id`` is stored."""
        return await self.pool.fetchval(self._sql["result_ready"], task_id) is not None

    @reaching
    async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[_R]:
        """Return the result of ``task_id``; errors come back as ``TaskFailedError``.

        Raises:
            KeyError: when there is none (never finished, or expired).
            ResultDecodeError: when the stored bytes are not a result of this serializer.

        """
        data = await self.pool.fetchval(self._sql["get_result"], task_id)
        if data is None:
            raise KeyError(task_id)
        return self.codec.decode(bytes(data), task_id=task_id)

    @reaching
    async def write_records(self, writes: Sequence[RecordWrite]) -> list[WriteOutcome]:
        """Apply ``writes``: one statement over all their rows (more only when a task repeats)."""
        outcomes: dict[int, WriteOutcome] = {}
        marks = [(index, write) for index, write in enumerate(writes) if write.kind == MARK]
        rest = [(index, write) for index, write in enumerate(writes) if write.kind != MARK]
        while rest:
            # One statement cannot write a row twice: a repeated task goes in the next one.
            seen: set[str] = set()
            batch: list[tuple[int, RecordWrite]] = []
            later: list[tuple[int, RecordWrite]] = []
            for item in rest:
                (later if item[1].task_id in seen else batch).append(item)
                seen.add(item[1].task_id)
            written = await self._upsert([write for _, write in batch])
            outcomes.update(zip((index for index, _ in batch), written, strict=True))
            rest = later
        for index, write in marks:
            outcomes[index] = await self._mark(write)
        return [outcomes[index] for index in range(len(writes))]

    async def _upsert(self, writes: list[RecordWrite]) -> list[WriteOutcome]:
        now = time.time()
        rows = await self.pool.fetch(
            self._sql["write_records"],
            [write.task_id for write in writes],
            [_jsonb_text(to_json(write.record_fields())) for write in writes],
            [write.result for write in writes],
            [self.record_ttl(write.due_at, now) for write in writes],
            self.channel,
        )
        statuses = {write.task_id: write.status for write in writes}
        written = {
            row["task_id"]: WriteOutcome(
                row["status"] == statuses[row["task_id"]], row["status"], row["aborted"]
            )
            for row in rows
        }
        refused = [write.task_id for write in writes if write.task_id not in written]
        if refused:
            states = await self.pool.fetch(self._sql["record_states"], refused)
            for row in states:
                written[row["task_id"]] = WriteOutcome(False, row["status"], row["aborted"])
        missing = WriteOutcome(False, None, False)
        return [written.get(write.task_id, missing) for write in writes]

    async def _mark(self, write: RecordWrite) -> WriteOutcome:
        data = _jsonb_text(to_json(write.fields))
        status = await self.pool.fetchval(self._sql["mark_record"], write.task_id, data)
        if status is not None:
            return WriteOutcome(True, status, "abort_requested_at" in write.fields)
        rows = await self.pool.fetch(self._sql["record_states"], [write.task_id])
        if not rows:
            return WriteOutcome(False, None, False)
        return WriteOutcome(False, rows[0]["status"], rows[0]["aborted"])

    @reaching
    async def get_record(self, task_id: str) -> TaskRecord | None:
        """Return the record of ``task_id``, if any."""
        return decode_record_text(
            task_id, await self.pool.fetchval(self._sql["get_record"], task_id)
        )

    @reaching
    async def abort_requested_among(self, task_ids: Sequence[str]) -> list[str]:
        """The ids among ``task_ids`` whose records carry an abort's tombstone (one query)."""
        rows = await self.pool.fetch(self._sql["abort_requested_among"], list(task_ids))
        return [row["task_id"] for row in rows]

    @reaching
    async def write_progress(self, task_id: str, report: ProgressReport) -> None:
        """Store ``report`` as the latest progress of ``task_id``."""
        data = _jsonb_text(encode_progress(report))
        await self.pool.execute(
            self._sql["write_progress_notify"], task_id, data, self.result_ttl, self.channel
        )

    @reaching
    async def read_progress(self, task_id: str) -> ProgressReport | None:
        """Return the latest progress of ``task_id``, if any."""
        text = await self.pool.fetchval(self._sql["get_progress"], task_id)
        return None if text is None else decode_progress(text, task_id=task_id)

    def watch_changes(self, task_id: str) -> AbstractAsyncContextManager[ChangeWaiter]:
        """Wake-ups by LISTEN/NOTIFY (progress writes and the final status).

        All watchers of this backend share one listening connection, outside the pool.
        """
        self.pool  # noqa: B018 - raises when not started
        if self._notifier is None:
            self._notifier = PostgresNotifier(self.url, self.channel)
        return self._notifier.watch(task_id)
