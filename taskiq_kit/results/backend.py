"""The result-backend interface every kit backend implements: results, status records, progress."""

from __future__ import annotations

import asyncio
import enum
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

from taskiq.abc.result_backend import AsyncResultBackend
from taskiq.depends.progress_tracker import TaskProgress
from taskiq.result import TaskiqResult

from taskiq_kit.results.arguments import DEFAULT_ARGS_LIMIT, RecordArgs
from taskiq_kit.results.codec import ResultCodec, encode_result
from taskiq_kit.results.lifecycle import TaskLifecycle
from taskiq_kit.results.outage import StoreGuard
from taskiq_kit.results.progress import PROGRESS_STATE, ProgressReport, jsonable_meta
from taskiq_kit.results.record import TaskRecord
from taskiq_kit.results.writes import RecordWrite, WriteOutcome

_R = TypeVar("_R")


class ChangeWaiter(Protocol):
    """Waits for the next write to one task's progress or status."""

    async def wait(self, timeout: float) -> None:
        """Return after the next change, or after ``timeout`` seconds, whichever comes first."""


class _Sleeper:
    """The polling fallback: no notifications, just the interval."""

    async def wait(self, timeout: float) -> None:
        await asyncio.sleep(timeout)


@asynccontextmanager
async def _polling() -> AsyncIterator[ChangeWaiter]:
    yield _Sleeper()


class KitResultBackend(AsyncResultBackend[_R]):
    """A taskiq result backend that also keeps one :class:`TaskRecord` and progress per task id.

    Records change only through the backend's :attr:`lifecycle`; a store implements
    :meth:`write_records` (a batch of typed writes, each applied atomically) and the reads.
    ``set_result`` is the lifecycle's ``finished`` transition: the result and the final status
    are one write.

    Attributes:
        result_ttl: seconds results, records and progress live after their last write
            (``None``: until deleted).
        process_local: whether the store lives in this process only (the memory store): what
            one worker process wrote is gone when it dies, so the delivery gate cannot count
            the runs of a task that kills its worker there, and relies on the transport's
            delivery count instead.
        codec: how results are turned into bytes and back.

    """

    result_ttl: float | None
    codec: ResultCodec
    #: Whether writes are worth batching (each is a network round trip).
    batches_writes: bool = True
    process_local: bool = False
    #: Called before reads of a process-local store: raises when this process cannot see what
    #: the workers write (set by a broker whose tasks run in other processes).
    reader_check: Callable[[], None] | None = None
    _lifecycle: TaskLifecycle | None = None
    #: What a kick's record keeps of its arguments (see :mod:`taskiq_kit.results.arguments`).
    record_args: RecordArgs = True
    #: Bytes of JSON kept of ``args`` and of ``kwargs`` each.
    record_args_limit: int = DEFAULT_ARGS_LIMIT

    @property
    def store_guard(self) -> StoreGuard:
        """Retries the worker's calls to this store through an outage (created on first use)."""
        guard = self.__dict__.get("_store_guard")
        if guard is None:
            guard = self.__dict__["_store_guard"] = StoreGuard(self)
        return guard

    @property
    def lifecycle(self) -> TaskLifecycle:
        """The owner of this store's record transitions (one per backend)."""
        lifecycle = self._lifecycle
        if lifecycle is None:
            lifecycle = self._lifecycle = TaskLifecycle(
                self, record_args=self.record_args, record_args_limit=self.record_args_limit
            )
        return lifecycle

    def encode_result(self, result: TaskiqResult[Any]) -> bytes:
        """Encode ``result`` with :attr:`codec`; an unserialisable value becomes a failure.

        The failure replaces the outcome in ``result`` too, so the final status recorded with it
        is ``failure``.
        """
        return encode_result(self.codec, result)

    async def set_result(self, task_id: str, result: TaskiqResult[_R]) -> None:
        """Store the result of ``task_id`` and its final status, in one write.

        An unserialisable return value is stored as a failure. A result of a run whose record is
        final already (a duplicate run) is not stored: the first outcome stays.

        In a process that consumes, the write waits out an outage of the store (see
        :class:`~taskiq_kit.results.outage.StoreGuard`): taskiq's Receiver acknowledges the
        message after this returns, so the message stays unacknowledged until its result is
        saved.
        """
        data = self.encode_result(result)
        await self.lifecycle.finished(task_id, result, data)

    @abstractmethod
    async def write_records(self, writes: Sequence[RecordWrite]) -> list[WriteOutcome]:
        """Apply ``writes`` in order, each atomically; one outcome per write.

        Each write is applied by the rule of :func:`taskiq_kit.results.writes.applies`. Records (and results written with them) live ``result_ttl`` seconds after their last
        write, or until their ``due_at`` plus ``result_ttl`` when that is later; the TTL only
        grows, except that a kick starts it afresh.
        """

    @abstractmethod
    async def get_record(self, task_id: str) -> TaskRecord | None:
        """Return the record of ``task_id``, or ``None`` when there is none."""

    async def abort_requested_among(self, task_ids: Sequence[str]) -> list[str]:
        """The ids among ``task_ids`` whose records carry an abort's tombstone.

        Stores answer in one round trip; this default reads the records one by one.
        """
        found = []
        for task_id in task_ids:
            record = await self.get_record(task_id)
            if record is not None and record.abort_requested_at is not None:
                found.append(task_id)
        return found

    def check_readable(self) -> None:
        """Raise when this process cannot see what the workers write (a process-local store).

        Raises:
            ProcessLocalStoreError: then (see :attr:`reader_check`).

        """
        if self.reader_check is not None:
            self.reader_check()

    @abstractmethod
    async def write_progress(self, task_id: str, report: ProgressReport) -> None:
        """Store ``report`` as the latest progress of ``task_id`` (kept ``result_ttl`` seconds)."""

    @abstractmethod
    async def read_progress(self, task_id: str) -> ProgressReport | None:
        """Return the latest progress of ``task_id``, or ``None`` when there is none."""

    def watch_changes(self, task_id: str) -> AbstractAsyncContextManager[ChangeWaiter]:
        """Notifications of writes to the progress or final status of ``task_id``.

        Enter before reading the current state, so no change is missed. Backends without
        notifications return a waiter that just sleeps (callers then poll).
        """
        return _polling()

    async def set_progress(self, task_id: str, progress: TaskProgress[Any]) -> None:
        """Store progress written through taskiq's ``ProgressTracker`` (``meta`` must be JSON data).

        Raises:
            InvalidProgressError: when ``meta`` is not JSON-serialisable.

        """
        state = progress.state.value if isinstance(progress.state, enum.Enum) else progress.state
        await self.write_progress(
            task_id, ProgressReport(state=str(state), meta=jsonable_meta(progress.meta))
        )

    async def get_progress(self, task_id: str) -> TaskProgress[Any] | None:
        """Return the progress of ``task_id`` as taskiq's ``TaskProgress``, if any.

        Kit reports come back with ``state="PROGRESS"`` and ``meta`` holding ``fraction``,
        ``message`` and ``meta``.
        """
        report = await self.read_progress(task_id)
        if report is None:
            return None
        if report.state == PROGRESS_STATE:
            meta = report.model_dump(include={"fraction", "message", "meta"})
            return TaskProgress[Any](state=report.state, meta=meta)
        return TaskProgress[Any](state=report.state, meta=report.meta)

    def keep_arguments(self, record_args: RecordArgs, record_args_limit: int) -> None:
        """Set :attr:`record_args` and :attr:`record_args_limit` (the stores' options).

        Raises:
            ValueError: for a limit under 16 bytes or a policy that is neither a bool nor callable.

        """
        if not (isinstance(record_args, bool) or callable(record_args)):
            raise TypeError(f"record_args must be a bool or a function, got {record_args!r}")
        if isinstance(record_args_limit, bool) or not (
            isinstance(record_args_limit, int) and record_args_limit >= 16
        ):
            raise ValueError(
                f"record_args_limit must be at least 16 bytes, got {record_args_limit!r}"
            )
        self.record_args = record_args
        self.record_args_limit = record_args_limit
        self._lifecycle = None

    def record_ttl(self, due_at: float | None, now: float) -> float | None:
        """Seconds a record written at ``now`` must live, given the task's due time."""
        if self.result_ttl is None:
            return None
        return self.result_ttl + max(0.0, (due_at or now) - now)
