"""The task record: its statuses, its fields, and an error as data.

A leaf module: it imports nothing else from the kit, so every other module (the exceptions, the
stores, the lifecycle, the FastAPI models) can use it without import cycles.
"""

from __future__ import annotations

import enum
import traceback

from pydantic import BaseModel, ConfigDict


class TaskStatus(str, enum.Enum):
    """Where a task is in its life."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    STARTED = "started"
    RETRYING = "retrying"
    SUCCESS = "success"
    FAILURE = "failure"
    ABORTED = "aborted"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        """Whether the task will not change state again (unless kicked again)."""
        return self.value in FINAL_VALUES

    def __str__(self) -> str:
        return self.value


#: The final statuses, as the plain strings the stores keep.
FINAL_VALUES = frozenset(
    status.value
    for status in (TaskStatus.SUCCESS, TaskStatus.FAILURE, TaskStatus.ABORTED, TaskStatus.EXPIRED)
)


def is_final_value(status: TaskStatus | str | None) -> bool:
    """Whether ``status`` (a member, or its stored string) is final."""
    if isinstance(status, TaskStatus):
        status = status.value
    return status in FINAL_VALUES


class ErrorInfo(BaseModel):
    """An exception as data: safe to store, to send as JSON, and to re-raise on the reading side."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    traceback: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """Describe ``exc`` (its qualified type name, message and traceback text)."""
        kind = type(exc)
        name = (
            kind.__qualname__
            if kind.__module__ == "builtins"
            else f"{kind.__module__}.{kind.__qualname__}"
        )
        text = "".join(traceback.format_exception(kind, exc, exc.__traceback__))
        return cls(type=name, message=str(exc), traceback=text or None)


class TaskRecord(BaseModel):
    """What is known about one task id. Times are unix seconds.

    Attributes:
        task_id: the task.
        status: where it is in its life.
        task_name: the task's registered name.
        attempt: which run of this kick the record is about (1, then 2... for retries).
        runs: how many runs of this attempt started (written with ``started``, reset by every
            kick). A record still ``started`` when its message comes again means the last
            ``runs`` runs never finished (their worker died): the delivery gate dead-letters the
            message once that reaches ``max_delivery_attempts``.
        worker: ``host:pid`` of the process that ran it last.
        kicked_at: when this kick was first sent (retries keep it: it identifies the kick).
        due_at: when it may run at the earliest (delays, etas).
        expires_at: when it is dropped unrun.
        started_at: when its last run started.
        finished_at: when it reached a final status.
        updated_at: when the record last changed.
        abort_requested_at: when an abort of this kick was asked for (the abort's tombstone).
        requeues: how many times the run sent itself again (taskiq's ``Context.requeue()``).
        error: the exception it raised, as data (``failure``).
        reason: why flow control last re-scheduled it (``scheduled``: a rate or concurrency
            limit) or ended it (``aborted``: ``superseded by <task id>``, a debounced kick).
        queue: the queue it was sent to.
        args: its positional arguments as JSON text (``None``: not recorded; see the store's
            ``record_args``), cut to the store's ``record_args_limit`` bytes.
        kwargs: its keyword arguments as JSON text, likewise.
        args_truncated: whether ``args`` or ``kwargs`` was cut (it is then not valid JSON).
        timeline: each status of this kick and when it was written, oldest first (a retry of
            the same kick continues it; a new kick starts it afresh).

    """

    model_config = ConfigDict(extra="ignore")

    task_id: str
    status: TaskStatus
    task_name: str | None = None
    attempt: int = 1
    runs: int = 0
    worker: str | None = None
    kicked_at: float | None = None
    due_at: float | None = None
    expires_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float | None = None
    abort_requested_at: float | None = None
    requeues: int = 0
    error: ErrorInfo | None = None
    reason: str | None = None
    queue: str | None = None
    args: str | None = None
    kwargs: str | None = None
    args_truncated: bool = False
    timeline: list[tuple[TaskStatus, float]] = []
