"""The memory store's side of the inspect API: the task index and the worker registry, in dicts.

Listing walks the live records (at most the store's ``max_entries``): the memory store is for
tests, demos and one-process apps.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from taskiq_kit.inspect.cursor import Position, decode_cursor, encode_cursor
from taskiq_kit.inspect.models import TaskPage, TaskQuery, WorkerInfo
from taskiq_kit.results.record import TaskRecord, TaskStatus


class _Entries(Protocol):
    def live(self) -> list[tuple[str, dict[str, Any]]]: ...


def _key(fields: dict[str, Any]) -> tuple[float, str]:
    kicked_at = fields.get("kicked_at")
    at = float(kicked_at) if isinstance(kicked_at, (int, float)) else 0.0
    return at, str(fields["task_id"])


def matches(query: TaskQuery, fields: dict[str, Any], *, with_status: bool = True) -> bool:
    """Whether the record ``fields`` pass ``query``'s filters (its statuses too, by default)."""
    if "status" not in fields:
        return False
    at, task_id = _key(fields)
    piece = None if query.search is None else query.search.lower()
    name = str(fields.get("task_name") or "")
    refused = (
        (with_status and query.statuses and fields["status"] not in query.statuses)
        or (query.task_name is not None and name != query.task_name)
        or (query.queue is not None and fields.get("queue") != query.queue)
        or (query.since is not None and at < query.since)
        or (query.until is not None and at >= query.until)
        or (piece is not None and piece not in task_id.lower() and piece not in name.lower())
    )
    return not refused


class MemoryInspect:
    """:class:`~taskiq_kit.inspect.protocols.TaskIndex` and ``WorkerRegistry`` in this process."""

    _records: _Entries
    _workers: dict[str, tuple[WorkerInfo, float]]

    def check_readable(self) -> None:  # pragma: no cover - the backend's
        """Raise when this process cannot see what the workers write (the backend's)."""
        raise NotImplementedError

    async def list_tasks(self, query: TaskQuery, *, limit: int, cursor: str | None) -> TaskPage:
        """One page of the records matching ``query``, newest kick first (ties: task id)."""
        self.check_readable()
        position = None if cursor is None else decode_cursor(query, cursor)
        found = [fields for _, fields in self._records.live() if matches(query, fields)]
        found.sort(key=_key, reverse=True)
        if position is not None:
            found = [fields for fields in found if _key(fields) < tuple(position)]
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            next_cursor = encode_cursor(query, Position(*_key(page[-1])))
        return TaskPage(
            tasks=[TaskRecord.model_validate(fields) for fields in page], next_cursor=next_cursor
        )

    async def count_tasks(self, query: TaskQuery) -> dict[TaskStatus, int]:
        """How many records match ``query``, per status (every status, zeros included)."""
        self.check_readable()
        counts = dict.fromkeys(TaskStatus, 0)
        for _, fields in self._records.live():
            if matches(query, fields, with_status=False):
                counts[TaskStatus(fields["status"])] += 1
        return counts

    async def beat(self, worker: WorkerInfo, *, ttl: float) -> None:
        """Write ``worker``'s heartbeat; it counts as dead ``ttl`` seconds after it."""
        self._workers[worker.id] = (worker, time.monotonic() + ttl)

    async def leave(self, worker_id: str) -> None:
        """Remove ``worker_id`` (a clean shutdown)."""
        self._workers.pop(worker_id, None)

    async def list_workers(self) -> list[WorkerInfo]:
        """The live workers of this process's store, oldest start first."""
        self.check_readable()
        now = time.monotonic()
        for worker_id, (_, deadline) in list(self._workers.items()):
            if deadline <= now:
                del self._workers[worker_id]
        workers = [worker for worker, _ in self._workers.values()]
        return sorted(workers, key=lambda worker: (worker.started_at, worker.id))
