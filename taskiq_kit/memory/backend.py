"""In-process result backend: results, status records and progress in dicts with TTLs."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from taskiq.result import TaskiqResult

from taskiq_kit.inspect.models import WorkerInfo
from taskiq_kit.memory.index import MemoryInspect
from taskiq_kit.results.arguments import DEFAULT_ARGS_LIMIT, RecordArgs
from taskiq_kit.results.backend import ChangeWaiter, KitResultBackend
from taskiq_kit.results.codec import ResultCodec, Serializer, make_codec
from taskiq_kit.results.progress import ProgressReport
from taskiq_kit.results.record import FINAL_VALUES, TaskRecord
from taskiq_kit.results.watch import WatchHub
from taskiq_kit.results.writes import KICK, REQUEUE, RecordWrite, WriteOutcome, applies, result_only
from taskiq_kit.settings import DAY

_R = TypeVar("_R")
_V = TypeVar("_V")


class _ExpiringDict(Generic[_V]):
    """A bounded mapping whose entries vanish after their TTL (oldest first when full)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[_V, float | None]] = OrderedDict()

    def get(self, key: str) -> _V | None:
        item = self._items.get(key)
        if item is None:
            return None
        value, deadline = item
        if deadline is not None and time.monotonic() >= deadline:
            del self._items[key]
            return None
        return value

    def pop(self, key: str) -> None:
        self._items.pop(key, None)

    def live(self) -> list[tuple[str, _V]]:
        """The entries whose TTL has not passed (the others are dropped on the way)."""
        now = time.monotonic()
        items = self._items
        dead = [
            key for key, (_, deadline) in items.items() if deadline is not None and now >= deadline
        ]
        for key in dead:
            del items[key]
        return [(key, value) for key, (value, _) in items.items()]

    def put(self, key: str, value: _V, ttl: float | None) -> None:
        items = self._items
        entry = (value, None if ttl is None else time.monotonic() + ttl)
        if key in items:
            items[key] = entry
            items.move_to_end(key)
            return
        while len(items) >= self.max_entries:
            items.popitem(last=False)
        items[key] = entry


class MemoryResultBackend(KitResultBackend[_R], MemoryInspect):
    """Keeps everything in this process. For ``memory://`` brokers, tests and demos.

    Results go through the same codec as the Redis and PostgreSQL backends (JSON by default),
    so a return value that would fail in production fails here too. No other process can read
    it: a RabbitMQ or Redis broker given this store refuses reads in a process that does not
    consume (:class:`~taskiq_kit.exceptions.ProcessLocalStoreError`).

    Args:
        result_ttl: seconds entries live after their last write (``None``: forever).
        max_entries: entries kept per kind before the oldest are dropped.
        serializer: ``"json"`` (default), ``"pickle"``, or a custom codec.
        record_args: what each task's record keeps of its arguments: ``True`` (all, as JSON),
            ``False`` (none), or a function ``(task_name, args, kwargs)`` returning the
            ``(args, kwargs)`` to keep (e.g. masked) or ``None`` (see :mod:`taskiq_kit.results.arguments`).
        record_args_limit: bytes of JSON kept of ``args`` and of ``kwargs`` each (longer is cut).

    """

    process_local = True
    batches_writes = False

    def __init__(
        self,
        *,
        result_ttl: float | None = DAY,
        max_entries: int = 10_000,
        serializer: Serializer | ResultCodec = "json",
        record_args: RecordArgs = True,
        record_args_limit: int = DEFAULT_ARGS_LIMIT,
    ) -> None:
        self.result_ttl = result_ttl
        self.keep_arguments(record_args, record_args_limit)
        self.codec = make_codec(serializer)
        self._results: _ExpiringDict[bytes] = _ExpiringDict(max_entries)
        self._records: _ExpiringDict[dict[str, Any]] = _ExpiringDict(max_entries)
        self._progress: _ExpiringDict[ProgressReport] = _ExpiringDict(max_entries)
        self._hub = WatchHub()
        self._workers: dict[str, tuple[WorkerInfo, float]] = {}

    async def is_result_ready(self, task_id: str) -> bool:
        """Whether a result of ``task_id`` is stored."""
        self.check_readable()
        return self._results.get(task_id) is not None

    async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[_R]:
        """Return the result of ``task_id``.

        Raises:
            KeyError: when there is none.

        """
        self.check_readable()
        data = self._results.get(task_id)
        if data is None:
            raise KeyError(task_id)
        return self.codec.decode(data, task_id=task_id)

    async def write_progress(self, task_id: str, report: ProgressReport) -> None:
        """Store the progress of ``task_id`` and wake its watchers."""
        self._progress.put(task_id, report, self.result_ttl)
        self._hub.notify(task_id)

    async def read_progress(self, task_id: str) -> ProgressReport | None:
        """Return the progress of ``task_id``, if any."""
        self.check_readable()
        return self._progress.get(task_id)

    @asynccontextmanager
    async def watch_changes(self, task_id: str) -> AsyncIterator[ChangeWaiter]:
        """Wake-ups on every progress write and final status of ``task_id``."""
        waiter, _ = self._hub.add(task_id)
        try:
            yield waiter
        finally:
            self._hub.remove(task_id, waiter)

    async def write_records(self, writes: Sequence[RecordWrite]) -> list[WriteOutcome]:
        """Apply ``writes`` in order (see :func:`~taskiq_kit.results.writes.applies`)."""
        return [self._apply(write) for write in writes]

    def _apply(self, write: RecordWrite) -> WriteOutcome:
        task_id = write.task_id
        current = self._records.get(task_id)
        if not applies(write, current):
            if write.result is not None and result_only(write, current):
                self._results.put(task_id, write.result, self.result_ttl)
            return WriteOutcome(
                False,
                None if current is None else _text(current.get("status")),
                current is not None and current.get("abort_requested_at") is not None,
            )
        # Plain values only: a dict of strings and numbers is not tracked by the cyclic garbage
        # collector, which would otherwise walk every stored record again and again.
        fields = write.record_fields()
        timeline: list[tuple[str, float]] = [] if current is None else current.get("timeline", [])
        if write.kind == KICK or current is None:
            merged: dict[str, Any] = {"task_id": task_id, **fields}
            if write.kind == KICK and current is not None:
                self._results.pop(task_id)
                self._progress.pop(task_id)
                if write.kicked_at is None or current.get("kicked_at") != write.kicked_at:
                    timeline = []  # a new kick; a retry of the same kick continues it
        else:
            merged = current.copy()
            merged.update(fields)
        status_set = write.status
        repeated = (  # flow control putting a run off again: no new timeline entry
            write.kind == REQUEUE
            and current is not None
            and _text(current.get("status")) == status_set
        )
        if status_set is not None and not repeated:
            at = fields.get("updated_at")
            merged["timeline"] = [
                *timeline,
                (status_set, at if isinstance(at, float) else time.time()),
            ]
        # The TTL only grows: it follows the due time of the kick, whatever wrote last.
        due_at = merged.get("due_at")
        ttl = self.record_ttl(due_at if isinstance(due_at, float) else None, time.time())
        self._records.put(task_id, merged, ttl)
        if write.result is not None:
            self._results.put(task_id, write.result, ttl)
        status = _text(merged.get("status"))
        if write.status in FINAL_VALUES:
            self._hub.notify(task_id)
        return WriteOutcome(True, status, merged.get("abort_requested_at") is not None)

    async def get_record(self, task_id: str) -> TaskRecord | None:
        """Return the record of ``task_id``, if any."""
        self.check_readable()
        fields = self._records.get(task_id)
        if fields is None or "status" not in fields:
            return None
        return TaskRecord.model_validate(fields)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
