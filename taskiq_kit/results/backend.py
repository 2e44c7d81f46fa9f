"""The result-backend interface every kit backend implements: results, status records, progress."""

from __future__ import annotations

import asyncio
import enum
from abc import abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

from taskiq.abc.result_backend import AsyncResultBackend
from taskiq.depends.progress_tracker import TaskProgress
from taskiq.result import TaskiqResult

from taskiq_kit.results.outage import StoreGuard
from taskiq_kit.results.progress import PROGRESS_STATE, ProgressReport, jsonable_meta
from taskiq_kit.results.status import TaskRecord

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

    Attributes:
        result_ttl: seconds results, records and progress live after their last write
            (``None``: until deleted).
        process_local: whether the store lives in this process only (the memory store): what
            one worker process wrote is gone when it dies, so the delivery gate cannot count
            the runs of a task that kills its worker there, and relies on the transport's
            delivery count instead.

    """

    result_ttl: float | None
    process_local: bool = False

    @property
    def store_guard(self) -> StoreGuard:
        """Retries the worker's calls to this store through an outage (created on first use)."""
        guard = self.__dict__.get("_store_guard")
        if guard is None:
            guard = self.__dict__["_store_guard"] = StoreGuard(self)
        return guard

    async def set_result(self, task_id: str, result: TaskiqResult[_R]) -> None:
        """Store the result of ``task_id``, waiting out an outage of the store.

        taskiq's Receiver calls this once a task has run, and acknowledges the message after
        it returns: while the store is unreachable the call retries (see
        :class:`~taskiq_kit.results.outage.StoreGuard`), so the message stays unacknowledged
        until its result is saved.
        """
        await self.store_guard.call(self.save_result, task_id, result)

    @abstractmethod
    async def save_result(self, task_id: str, result: TaskiqResult[_R]) -> None:
        """Store the result of ``task_id`` (one try; :meth:`set_result` retries)."""

    @abstractmethod
    async def write_status(self, task_id: str, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into the record of ``task_id`` (creating it) and refresh its TTL.

        ``fields`` are :class:`TaskRecord` attributes. The record lives ``result_ttl`` seconds,
        or until its ``due_at`` plus ``result_ttl`` when that is later.
        """

    @abstractmethod
    async def get_record(self, task_id: str) -> TaskRecord | None:
        """Return the record of ``task_id``, or ``None`` when there is none."""

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

    def record_ttl(self, due_at: float | None, now: float) -> float | None:
        """Seconds a record written at ``now`` must live, given the task's due time."""
        if self.result_ttl is None:
            return None
        return self.result_ttl + max(0.0, (due_at or now) - now)
