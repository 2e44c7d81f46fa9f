"""The PostgreSQL store's side of the inspect API: the task index and the worker registry.

The index is the results table itself: generated columns (``status``, ``kicked_at``,
``task_name``, ``queue``, computed by PostgreSQL from each row's ``record``) with an index each,
added in place to a table made by an older version (:func:`schema_sql`). Expired rows are
invisible to listings and counts at once. Workers live in ``<table>_workers``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from taskiq_kit.exceptions import ResultDecodeError
from taskiq_kit.inspect.cursor import Position, decode_cursor, encode_cursor
from taskiq_kit.inspect.models import TaskPage, TaskQuery, WorkerInfo
from taskiq_kit.results.codec import parse_record
from taskiq_kit.results.reach import reaching
from taskiq_kit.results.record import TaskRecord, TaskStatus

if TYPE_CHECKING:
    import asyncpg

_LIVE = "(expires_at IS NULL OR expires_at > now())"


def _names(table: str) -> tuple[str, str, str]:
    """The quoted table, the quoted workers table, and the bare base name for index names."""
    parts = table.split(".")
    quoted = ".".join(f'"{part}"' for part in parts)
    workers = ".".join(f'"{part}"' for part in [*parts[:-1], f"{parts[-1]}_workers"])
    return quoted, workers, parts[-1]


def schema_sql(table: str) -> list[str]:
    """The statements adding the index columns, their indexes and the workers table.

    ``ADD COLUMN ... GENERATED`` rewrites a table made by an older version once (under a lock):
    run it in a quiet moment on a big table, or through your migrations.
    """
    quoted, workers, base = _names(table)
    return [
        f"ALTER TABLE {quoted} "
        "ADD COLUMN IF NOT EXISTS status text GENERATED ALWAYS AS (record->>'status') STORED, "
        "ADD COLUMN IF NOT EXISTS kicked_at float8 "
        "GENERATED ALWAYS AS (COALESCE((record->>'kicked_at')::float8, 0)) STORED, "
        "ADD COLUMN IF NOT EXISTS task_name text "
        "GENERATED ALWAYS AS (record->>'task_name') STORED, "
        "ADD COLUMN IF NOT EXISTS queue text GENERATED ALWAYS AS (record->>'queue') STORED",
        f'CREATE INDEX IF NOT EXISTS "{base}_kicked_at_idx" '
        f'ON {quoted} (kicked_at DESC, (task_id COLLATE "C") DESC)',
        f'CREATE INDEX IF NOT EXISTS "{base}_status_idx" ON {quoted} (status, kicked_at DESC)',
        f'CREATE INDEX IF NOT EXISTS "{base}_task_name_idx" '
        f"ON {quoted} (task_name, kicked_at DESC)",
        f'CREATE INDEX IF NOT EXISTS "{base}_queue_idx" ON {quoted} (queue, kicked_at DESC)',
        f"CREATE TABLE IF NOT EXISTS {workers} (worker_id text PRIMARY KEY, info jsonb NOT NULL, "
        "started_at float8 NOT NULL, deadline timestamptz NOT NULL)",
    ]


def _like(piece: str) -> str:
    escaped = piece.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filters(query: TaskQuery, *, with_status: bool = True) -> tuple[list[str], list[Any]]:
    conditions = [_LIVE, "status IS NOT NULL"]
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if with_status and query.statuses:
        statuses = sorted(status.value for status in query.statuses)
        conditions.append(f"status = ANY({param(statuses)}::text[])")
    if query.task_name is not None:
        conditions.append(f"task_name = {param(query.task_name)}")
    if query.queue is not None:
        conditions.append(f"queue = {param(query.queue)}")
    if query.since is not None:
        conditions.append(f"kicked_at >= {param(query.since)}::float8")
    if query.until is not None:
        conditions.append(f"kicked_at < {param(query.until)}::float8")
    if query.search is not None:
        pattern = param(_like(query.search))
        conditions.append(f"(task_id ILIKE {pattern} OR task_name ILIKE {pattern})")
    return conditions, params


class PostgresInspect:
    """:class:`~taskiq_kit.inspect.protocols.TaskIndex` and ``WorkerRegistry`` in PostgreSQL.

    Mixed into :class:`~taskiq_kit.results.postgres.PostgresResultBackend`.
    """

    table: str
    url: str
    connect_timeout: float
    unreachable_errors: tuple[type[BaseException], ...]

    @property
    def target(self) -> str:  # pragma: no cover - the backend's
        """The store and its redacted URL (the backend's)."""
        raise NotImplementedError

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:  # pragma: no cover - the backend's
        """The connection pool (the backend's)."""
        raise NotImplementedError

    @reaching
    async def list_tasks(self, query: TaskQuery, *, limit: int, cursor: str | None) -> TaskPage:
        """One page of the records matching ``query``, newest kick first (ties: task id)."""
        position = None if cursor is None else decode_cursor(query, cursor)
        conditions, params = _filters(query)
        if position is not None:
            params += [position.at, position.task_id]
            at, task_id = f"${len(params) - 1}::float8", f"${len(params)}::text"
            conditions.append(
                f'(kicked_at < {at} OR (kicked_at = {at} AND task_id COLLATE "C" < {task_id}))'
            )
        params.append(limit + 1)
        quoted, _, _ = _names(self.table)
        sql = (
            f"SELECT task_id, record, kicked_at FROM {quoted} "  # noqa: S608 - checked names only
            f"WHERE {' AND '.join(conditions)} "
            f'ORDER BY kicked_at DESC, task_id COLLATE "C" DESC LIMIT ${len(params)}'
        )
        rows = await self.pool.fetch(sql, *params)
        page = rows[:limit]
        tasks = [decode_record_text(row["task_id"], row["record"]) for row in page]
        next_cursor = None
        if len(rows) > limit:
            last = page[-1]
            next_cursor = encode_cursor(query, Position(float(last["kicked_at"]), last["task_id"]))
        return TaskPage(tasks=[task for task in tasks if task is not None], next_cursor=next_cursor)

    @reaching
    async def count_tasks(self, query: TaskQuery) -> dict[TaskStatus, int]:
        """How many records match ``query``, per status (every status, zeros included)."""
        conditions, params = _filters(query, with_status=False)
        quoted, _, _ = _names(self.table)
        sql = (
            f"SELECT status, count(*) AS n FROM {quoted} "  # noqa: S608 - checked names only
            f"WHERE {' AND '.join(conditions)} GROUP BY status"
        )
        counts = dict.fromkeys(TaskStatus, 0)
        for row in await self.pool.fetch(sql, *params):
            try:
                counts[TaskStatus(row["status"])] = int(row["n"])
            except ValueError:
                continue
        return counts

    @reaching
    async def beat(self, worker: WorkerInfo, *, ttl: float) -> None:
        """Write ``worker``'s heartbeat; it counts as dead ``ttl`` seconds after it."""
        _, workers, _ = _names(self.table)
        await self.pool.execute(
            f"INSERT INTO {workers} (worker_id, info, started_at, deadline) "  # noqa: S608
            "VALUES ($1, $2::jsonb, $3, now() + $4::float8 * interval '1 second') "
            "ON CONFLICT (worker_id) DO UPDATE SET info = EXCLUDED.info, "
            "deadline = EXCLUDED.deadline",
            worker.id,
            worker.model_dump_json(),
            worker.started_at,
            ttl,
        )

    @reaching
    async def leave(self, worker_id: str) -> None:
        """Remove ``worker_id`` (a clean shutdown)."""
        _, workers, _ = _names(self.table)
        await self.pool.execute(
            f"DELETE FROM {workers} WHERE worker_id = $1",  # noqa: S608
            worker_id,
        )

    @reaching
    async def list_workers(self) -> list[WorkerInfo]:
        """The live workers, oldest start first (the dead ones are deleted on the way)."""
        _, workers, _ = _names(self.table)
        async with self.pool.acquire() as conn:
            await conn.execute(f"DELETE FROM {workers} WHERE deadline <= now()")  # noqa: S608
            rows = await conn.fetch(
                f"SELECT info FROM {workers} WHERE deadline > now() "  # noqa: S608
                "ORDER BY started_at, worker_id"
            )
        return [WorkerInfo.model_validate_json(row["info"]) for row in rows]


def decode_record_text(task_id: str, text: str | None) -> TaskRecord | None:
    """The record stored as JSON ``text`` (``None``: no record).

    Raises:
        ResultDecodeError: when the text is not JSON.

    """
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ResultDecodeError(
            what="status record", task_id=task_id, serializer="json", reason=str(exc)
        ) from exc
    return parse_record(task_id, data)
