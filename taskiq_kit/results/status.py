"""Task status: the states, the record kept per task, and the middleware that writes it."""

from __future__ import annotations

import enum
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.exceptions import NoResultError

from taskiq_kit.exceptions import TaskAbortedError
from taskiq_kit.isolation import RunIsolation
from taskiq_kit.labels import KICKED_AT, RETRIES, label_float, read_timing

if TYPE_CHECKING:
    from taskiq.message import TaskiqMessage
    from taskiq.result import TaskiqResult

    from taskiq_kit.results.backend import KitResultBackend

logger = logging.getLogger("taskiq_kit.results")


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
        return self in _FINAL

    def __str__(self) -> str:
        return self.value


_FINAL = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILURE, TaskStatus.ABORTED, TaskStatus.EXPIRED})
_FINAL_VALUES = frozenset(status.value for status in _FINAL)
# The statuses the middleware writes on every task, as the plain strings the backends store
# (reading ``.value`` of an enum member is a Python-level descriptor call, on every write).
_PENDING, _SCHEDULED, _RETRYING, _STARTED = (
    TaskStatus.PENDING.value,
    TaskStatus.SCHEDULED.value,
    TaskStatus.RETRYING.value,
    TaskStatus.STARTED.value,
)
_SUCCESS, _FAILURE, _ABORTED = (
    TaskStatus.SUCCESS.value,
    TaskStatus.FAILURE.value,
    TaskStatus.ABORTED.value,
)


def is_final_value(status: TaskStatus | str | None) -> bool:
    """Whether ``status`` (a member, or its stored string) is final; cheaper than a lookup."""
    if isinstance(status, TaskStatus):
        status = status.value
    return status in _FINAL_VALUES


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

    ``runs`` counts the runs of the current attempt that started: written with ``started``, it
    is reset by every kick. A record still ``started`` when the message comes again means the
    last ``runs`` runs never finished (their worker died): the delivery gate dead-letters the
    message once that reaches ``max_delivery_attempts``.
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
    error: ErrorInfo | None = None


def worker_identity() -> str:
    """``host:pid`` of this process, recorded on the tasks it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _attempt(message: TaskiqMessage) -> int:
    try:
        return int(message.labels.get(RETRIES, 0)) + 1
    except (TypeError, ValueError):
        return 1


def kick_fields(message: TaskiqMessage, *, now: float) -> dict[str, Any]:
    """Fields of the record written when ``message`` is kicked."""
    due = read_timing(message.labels)
    attempt = _attempt(message)
    if attempt > 1:
        status = _RETRYING
    elif due.due_at is not None and due.due_at > now:
        status = _SCHEDULED
    else:
        status = _PENDING
    kicked_at = label_float(message.labels.get(KICKED_AT))
    return {
        "task_id": message.task_id,
        "task_name": message.task_name,
        "status": status,
        "attempt": attempt,
        "runs": 0,
        "kicked_at": kicked_at if kicked_at is not None else now,
        "due_at": due.due_at,
        "expires_at": due.expires_at,
        "started_at": None,
        "finished_at": None,
        "error": None,
        "updated_at": now,
    }


class StatusMiddleware(TaskiqMiddleware):
    """Records every status transition in the broker's :class:`KitResultBackend`.

    kick -> ``pending`` (``scheduled`` when delayed, ``retrying`` when re-kicked by a retry
    middleware); start -> ``started``; result saved -> ``success`` / ``failure``.
    ``aborted`` and ``expired`` are written where those events happen (the delivery gate and the
    abort machinery). Records are kept ``result_ttl`` seconds past the task's due time.

    On a worker, every write waits out an outage of the store (see
    :class:`~taskiq_kit.results.outage.StoreGuard`): the task does not start before ``started``
    is written, and its message is not acknowledged before its final status is.

    Args:
        on_saved: called with the task id once a run's final status is written.
        run_number: gives the number of the run about to start (1 for a first run); the
            delivery gate's, which read the record. A run numbered above 1 is a suspect and
            runs alone (see :mod:`taskiq_kit.isolation`).
    """

    def __init__(
        self,
        *,
        on_saved: Callable[[str], None] | None = None,
        run_number: Callable[[str], int] | None = None,
    ) -> None:
        super().__init__()
        self.worker = worker_identity()
        self.on_saved = on_saved
        self.run_number = run_number
        self.isolation = RunIsolation()
        self._backend: KitResultBackend[Any] | None = None

    @property
    def backend(self) -> KitResultBackend[Any]:
        """The broker's result backend (it keeps the status records)."""
        backend = self.broker.result_backend
        if self._backend is not backend:  # resolved once, again only if the broker's changes
            from taskiq_kit.results.api import kit_backend  # noqa: PLC0415 - api imports this

            self._backend = kit_backend(self.broker)
        return self._backend

    async def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        """Write ``pending`` / ``scheduled`` / ``retrying`` before the message leaves.

        A kick from a worker (a retry middleware's) waits out an outage of the store; any other
        kick fails with the store's error.
        """
        now = time.time()
        backend = self.backend
        fields = kick_fields(message, now=now)
        if self.broker.is_worker_process:
            await backend.store_guard.call(backend.write_status, message.task_id, fields)
        else:
            await backend.write_status(message.task_id, fields)
        return message

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Wait for this run's turn, then write ``started``, the run's number and its kick."""
        run = 1 if self.run_number is None else self.run_number(message.task_id)
        isolation = self.isolation
        if run > 1 or not isolation.try_enter():
            await isolation.enter(suspect=run > 1)
        now = time.time()
        fields = {
            "status": _STARTED,
            "kicked_at": label_float(message.labels.get(KICKED_AT)),
            "task_name": message.task_name,
            "attempt": _attempt(message),
            "runs": run,
            "worker": self.worker,
            "started_at": now,
            "updated_at": now,
        }
        backend = self.backend
        try:
            await backend.store_guard.call(backend.write_status, message.task_id, fields)
        except Exception as exc:  # noqa: BLE001 - bookkeeping must not stop the task
            logger.warning(
                "Cannot record the start of task %s (%s); it runs anyway.",
                message.task_id,
                type(exc).__name__,
            )
        return message

    async def post_save(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        """Write ``success`` or ``failure`` once the result is stored."""
        now = time.time()
        error = result.error
        fields: dict[str, Any] = {"finished_at": now, "updated_at": now}
        if error is None and not result.is_err:
            fields["status"] = _SUCCESS
        elif isinstance(error, TaskAbortedError):
            fields["status"] = _ABORTED
        else:
            fields["status"] = _FAILURE
            if error is not None:
                fields["error"] = ErrorInfo.from_exception(error)
        backend = self.backend
        # A retry middleware that keeps the failure as the result (``no_result_on_retry=False``)
        # has kicked the next attempt already: the record is that attempt's, left as it is (a
        # ``failure`` here would make the delivery gate drop the retry as a duplicate).
        if fields["status"] != _FAILURE or not await self._next_attempt_kicked(message):
            await backend.store_guard.call(backend.write_status, message.task_id, fields)
        # The run ends here, not when the function returns: a task let in beside this one that
        # killed the process before this record was final would make this one a suspect again.
        self.isolation.leave()
        if self.on_saved is not None:
            self.on_saved(message.task_id)

    async def _next_attempt_kicked(self, message: TaskiqMessage) -> bool:
        """Whether a retry took the record over during this run (``retrying``, or final in place)."""
        guard = self.backend.store_guard
        record = await guard.call(self.backend.get_record, message.task_id)
        return record is not None and (
            record.status is TaskStatus.RETRYING or record.status.is_final
        )

    def post_execute(
        self, message: TaskiqMessage, result: TaskiqResult[Any]
    ) -> Coroutine[Any, Any, None] | None:
        """Close the record of a task that stores no result (``NoResultError``), ending its run.

        Synchronous for every other task: taskiq then awaits nothing; their run ends once the
        final status is written (:meth:`post_save`), or with taskiq's callback for the message.
        """
        if isinstance(result.error, NoResultError):
            return self._close_without_result(message)
        return None

    async def _close_without_result(self, message: TaskiqMessage) -> None:
        try:
            await self._write_success_if_started(message)
        finally:
            self.isolation.leave()

    async def _write_success_if_started(self, message: TaskiqMessage) -> None:
        guard = self.backend.store_guard
        record = await guard.call(self.backend.get_record, message.task_id)
        if record is not None and record.status is TaskStatus.STARTED:
            now = time.time()
            await guard.call(
                self.backend.write_status,
                message.task_id,
                {"status": TaskStatus.SUCCESS, "finished_at": now, "updated_at": now},
            )
