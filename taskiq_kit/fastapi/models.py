"""Response bodies of the tasks router: what API clients see, documented in OpenAPI."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from taskiq_kit.abort import AbortOutcome
from taskiq_kit.results.progress import ProgressReport
from taskiq_kit.results.record import ErrorInfo, TaskRecord, TaskStatus


def _instant(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


class ErrorOut(BaseModel):
    """Why a task failed: the worker's exception type and message.

    ``traceback`` is only filled when the router was built with ``expose_tracebacks=True``.
    """

    type: str = Field(description="Qualified name of the exception type, e.g. 'ValueError'.")
    message: str
    traceback: str | None = None

    @classmethod
    def from_info(cls, info: ErrorInfo, *, with_traceback: bool) -> ErrorOut:
        """Build from a stored :class:`ErrorInfo`, dropping the traceback unless asked to keep it."""
        return cls(
            type=info.type,
            message=info.message,
            traceback=info.traceback if with_traceback else None,
        )


class ProgressOut(BaseModel):
    """The latest progress a task reported."""

    fraction: float | None = Field(default=None, ge=0.0, le=1.0, description="Done, 0 to 1.")
    message: str | None = None
    meta: Any = Field(default=None, description="JSON data the task attached.")
    updated_at: datetime

    @classmethod
    def from_report(cls, report: ProgressReport) -> ProgressOut:
        """Build from a stored :class:`ProgressReport`."""
        return cls(
            fraction=report.fraction,
            message=report.message,
            meta=report.meta,
            updated_at=datetime.fromtimestamp(report.updated_at, tz=timezone.utc),
        )


class TaskInfo(BaseModel):
    """Status of one task, with its timestamps (UTC), attempt, worker, error and progress."""

    task_id: str
    task_name: str | None = None
    status: TaskStatus
    is_final: bool = Field(description="True when the status will not change any more.")
    attempt: int = Field(ge=1, description="1 for the first run, 2 for the first retry, ...")
    worker: str | None = Field(default=None, description="host:pid of the worker that ran it.")
    kicked_at: datetime | None = None
    due_at: datetime | None = Field(default=None, description="Not run before (delay / eta).")
    expires_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    abort_requested_at: datetime | None = None
    error: ErrorOut | None = None
    progress: ProgressOut | None = None

    @classmethod
    def build(
        cls, record: TaskRecord, progress: ProgressReport | None, *, with_traceback: bool
    ) -> TaskInfo:
        """Combine a status record and the latest progress report."""
        return cls(
            task_id=record.task_id,
            task_name=record.task_name,
            status=record.status,
            is_final=record.status.is_final,
            attempt=max(1, record.attempt),
            worker=record.worker,
            kicked_at=_instant(record.kicked_at),
            due_at=_instant(record.due_at),
            expires_at=_instant(record.expires_at),
            started_at=_instant(record.started_at),
            finished_at=_instant(record.finished_at),
            updated_at=_instant(record.updated_at),
            abort_requested_at=_instant(record.abort_requested_at),
            error=(
                None
                if record.error is None
                else ErrorOut.from_info(record.error, with_traceback=with_traceback)
            ),
            progress=None if progress is None else ProgressOut.from_report(progress),
        )


class TaskResultOut(BaseModel):
    """The outcome of a finished task.

    ``value`` is the return value (JSON) when ``status`` is ``success``; ``error`` says why
    otherwise (``failure``, ``aborted``, ``expired``).
    """

    task_id: str
    status: TaskStatus
    value: Any = None
    error: ErrorOut | None = None
    execution_time: float | None = Field(default=None, description="Seconds the task ran.")


class AbortOut(BaseModel):
    """What ``DELETE /tasks/{task_id}`` did, and the task's status afterwards."""

    task_id: str
    outcome: AbortOutcome
    status: TaskStatus | None = None


class Problem(BaseModel):
    """An error body: a stable machine-readable ``code`` and a sentence for people."""

    code: str = Field(
        description="task_not_found, task_not_finished, result_unavailable or invalid_task_id."
    )
    detail: str
    task_id: str | None = None
    status: TaskStatus | None = Field(default=None, description="The task's current status.")
