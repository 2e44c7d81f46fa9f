"""The result-backend interface every kit backend implements: results, status records, progress."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, TypeVar

from taskiq.abc.result_backend import AsyncResultBackend

from taskiq_kit.results.status import TaskRecord

_R = TypeVar("_R")


class KitResultBackend(AsyncResultBackend[_R]):
    """A taskiq result backend that also keeps one :class:`TaskRecord` per task id.

    Attributes:
        result_ttl: seconds results, records and progress live after their last write
            (``None``: until deleted).

    """

    result_ttl: float | None

    @abstractmethod
    async def write_status(self, task_id: str, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into the record of ``task_id`` (creating it) and refresh its TTL.

        ``fields`` are :class:`TaskRecord` attributes. The record lives ``result_ttl`` seconds,
        or until its ``due_at`` plus ``result_ttl`` when that is later.
        """

    @abstractmethod
    async def get_record(self, task_id: str) -> TaskRecord | None:
        """Return the record of ``task_id``, or ``None`` when there is none."""

    def record_ttl(self, due_at: float | None, now: float) -> float | None:
        """Seconds a record written at ``now`` must live, given the task's due time."""
        if self.result_ttl is None:
            return None
        return self.result_ttl + max(0.0, (due_at or now) - now)
