"""The task lifecycle: the one owner of every change to a task record.

The kick, the delivery gate, the status middleware, the result backend's ``set_result`` and
``abort_task`` all change records through :class:`TaskLifecycle`, one typed transition each:
:meth:`~TaskLifecycle.kicked` (``pending`` / ``scheduled`` / ``retrying``),
:meth:`~TaskLifecycle.started`, :meth:`~TaskLifecycle.finished` (the result and the final status
in one write), :meth:`~TaskLifecycle.aborted`, :meth:`~TaskLifecycle.expired` and
:meth:`~TaskLifecycle.abort_requested`. Writes issued in the same event-loop turn reach the store
in one round trip; the store applies each by the rule in :mod:`taskiq_kit.results.writes`.
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any, Protocol

from taskiq.result import TaskiqResult

from taskiq_kit.exceptions import TaskAbortedError, TaskDeadLetteredError, TaskExpiredError
from taskiq_kit.labels import DUE_AT, EXPIRES_AT, KICKED_AT, RETRIES, label_float
from taskiq_kit.results.arguments import DEFAULT_ARGS_LIMIT, RecordArgs, argument_fields
from taskiq_kit.results.batching import WriteBatcher
from taskiq_kit.results.codec import error_info
from taskiq_kit.results.record import TaskRecord, TaskStatus
from taskiq_kit.results.writes import (
    FINAL,
    KICK,
    MARK,
    REQUEUE,
    RUN,
    RecordStore,
    RecordWrite,
    WriteOutcome,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Mapping, Sequence

    from taskiq_kit.results.outage import StoreGuard

# Plain strings: the stores keep statuses as their values.
_PENDING, _SCHEDULED, _RETRYING, _STARTED = "pending", "scheduled", "retrying", "started"
_SUCCESS, _FAILURE, _ABORTED, _EXPIRED = "success", "failure", "aborted", "expired"


#: Label taskiq's ``Context.requeue()`` increments on the message it sends again.
REQUEUE_LABEL = "X-Taskiq-requeue"

#: Seconds a write waits for others under load (a flush less than 50 ms ago), so one round trip
#: carries many; an idle store gets each write at the end of the event-loop turn.
WRITE_LINGER = 0.002


class Kicked(Protocol):
    """A task message as it is sent or received (taskiq's ``BrokerMessage`` or ``TaskiqMessage``)."""

    task_id: str
    task_name: str
    labels: dict[str, Any]


def worker_identity() -> str:
    """``host:pid`` of this process, recorded on the tasks it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def attempt_of(labels: dict[str, Any]) -> int:
    """Which run of its kick a message is (1 for the first, 2 for the first retry...)."""
    try:
        return int(labels.get(RETRIES, 0)) + 1
    except (TypeError, ValueError):
        return 1


def final_status(result: TaskiqResult[Any]) -> str:
    """The final status a result stands for."""
    error = result.error
    if error is None and not result.is_err:
        return _SUCCESS
    if isinstance(error, TaskAbortedError):
        return _ABORTED
    return _FAILURE


class TaskLifecycle:
    """Every transition of a task record, written through one store.

    Args:
        store: the result backend keeping the records.
        worker: the identity recorded on runs started here (default ``host:pid``).
        record_args: what a kick's record keeps of its arguments (see
            :mod:`taskiq_kit.results.arguments`).
        record_args_limit: bytes of JSON kept of ``args`` and of ``kwargs`` each.

    """

    def __init__(
        self,
        store: RecordStore,
        *,
        worker: str | None = None,
        record_args: RecordArgs = True,
        record_args_limit: int = DEFAULT_ARGS_LIMIT,
    ) -> None:
        self.store = store
        self.worker = worker or worker_identity()
        self.record_args = record_args
        self.record_args_limit = record_args_limit
        #: When set (worker processes), every store call waits out an outage of the store.
        self.guard: StoreGuard | None = None
        self._batcher: WriteBatcher[RecordWrite, WriteOutcome] | None = (
            WriteBatcher(self._send, linger=WRITE_LINGER) if store.batches_writes else None
        )

    def write(self, write: RecordWrite, *, urgent: bool = False) -> Awaitable[WriteOutcome]:
        """Send ``write`` with the others of this event-loop turn; await the result for its outcome.

        Under load a write waits up to :data:`WRITE_LINGER` for others, unless it is ``urgent``
        (somebody waits for it: an abort).
        """
        if self._batcher is not None:
            return self._batcher.submit(write, urgent=urgent)
        return self._write_now(write)

    async def _write_now(self, write: RecordWrite) -> WriteOutcome:
        return (await self._send([write]))[0]

    async def _send(self, writes: Sequence[RecordWrite]) -> list[WriteOutcome]:
        guard = self.guard
        if guard is None:
            return await self.store.write_records(writes)
        return await guard.call(self.store.write_records, writes)

    # Transitions. Each builds its write (``*_write``) and sends it.

    def kick_write(
        self,
        message: Kicked,
        *,
        now: float | None = None,
        queue: str | None = None,
        call: tuple[Sequence[Any], Mapping[str, Any]] | None = None,
    ) -> RecordWrite:
        """The write of a kick: ``pending``, ``scheduled`` (due later) or ``retrying``.

        ``queue`` and the call's ``(args, kwargs)``, when known, go on the record (the
        arguments as :attr:`record_args` says).
        """
        now = time.time() if now is None else now
        labels = message.labels
        attempt = attempt_of(labels)
        due_at = label_float(labels.get(DUE_AT))
        if attempt > 1:
            status = _RETRYING
        elif due_at is not None and due_at > now:
            status = _SCHEDULED
        else:
            status = _PENDING
        kicked_at = label_float(labels.get(KICKED_AT))
        if kicked_at is None:
            kicked_at = now
        fields: dict[str, object] = {
            "task_name": message.task_name,
            "status": status,
            "updated_at": now,
        }
        if due_at is not None:
            fields["due_at"] = due_at
        if queue is not None:
            fields["queue"] = queue
        if call is not None and self.record_args is not False:
            fields.update(
                argument_fields(self.record_args, self.record_args_limit, message.task_name, *call)
            )
        expires_at = label_float(labels.get(EXPIRES_AT))
        if expires_at is not None:
            fields["expires_at"] = expires_at
        requeues = label_float(labels.get(REQUEUE_LABEL))
        if requeues:
            # The same run, sent again by itself: the record goes back to pending.
            fields["requeues"] = int(requeues)
            return RecordWrite(message.task_id, REQUEUE, fields, kicked_at, attempt, due_at)
        return RecordWrite(message.task_id, KICK, fields, kicked_at, attempt, due_at)

    async def kicked(
        self,
        message: Kicked,
        *,
        queue: str | None = None,
        call: tuple[Sequence[Any], Mapping[str, Any]] | None = None,
    ) -> WriteOutcome:
        """Record a kick (a new one, or a retry middleware's re-kick: ``retrying``)."""
        return await self.write(self.kick_write(message, queue=queue, call=call))

    async def started(self, message: Kicked, *, run: int = 1) -> WriteOutcome:
        """Record that this process starts running ``message``, its ``run``-th start.

        Refused (``applied`` false) when the record is final for this run already (a duplicate
        delivery) or its kick was aborted: the run must then not happen.
        """
        now = time.time()
        labels = message.labels
        kicked_at = label_float(labels.get(KICKED_AT))
        attempt = attempt_of(labels)
        fields: dict[str, object] = {
            "status": _STARTED,
            "runs": run,
            "worker": self.worker,
            "started_at": now,
            "updated_at": now,
        }
        return await self.write(RecordWrite(message.task_id, RUN, fields, kicked_at, attempt))

    def finished_write(self, task_id: str, result: TaskiqResult[Any], data: bytes) -> RecordWrite:
        """The write of a run's end: its encoded result ``data`` and its final status, together."""
        now = time.time()
        labels = result.labels
        kicked_at = label_float(labels.get(KICKED_AT)) if labels else None
        attempt = attempt_of(labels) if labels else None
        status = final_status(result)
        fields: dict[str, object] = {"status": status, "finished_at": now, "updated_at": now}
        if status == _FAILURE and result.error is not None:
            fields["error"] = error_info(result.error)
        return RecordWrite(task_id, FINAL, fields, kicked_at, attempt, result=data)

    async def finished(self, task_id: str, result: TaskiqResult[Any], data: bytes) -> WriteOutcome:
        """Store the result (encoded as ``data``) and the final status it stands for, in one write."""
        return await self.write(self.finished_write(task_id, result, data))

    async def finished_without_result(self, message: Kicked) -> None:
        """Close the record of a run that stores no result (taskiq's ``NoResultError``).

        Nothing changes unless the record still says this run is ``started`` (a retry
        middleware's re-kick has made it ``retrying`` already).
        """
        record = await self.record(message.task_id)
        if record is None or record.status is not TaskStatus.STARTED:
            return
        now = time.time()
        fields: dict[str, object] = {"status": _SUCCESS, "finished_at": now, "updated_at": now}
        await self.write(
            RecordWrite(message.task_id, FINAL, fields, record.kicked_at, record.attempt)
        )

    async def aborted(
        self,
        task_id: str,
        *,
        kicked_at: float | None = None,
        attempt: int | None = None,
        reason: str | None = None,
    ) -> WriteOutcome:
        """Record ``aborted`` with a stored :class:`TaskAbortedError` result (ready at once).

        ``reason`` is kept on the record when given (flow control: ``superseded by <id>``).
        """
        error = TaskAbortedError(task_id=task_id)
        return await self._closed(task_id, _ABORTED, error, kicked_at, attempt, reason=reason)

    async def expired(self, message: Kicked) -> WriteOutcome:
        """Record ``expired`` with a stored :class:`TaskExpiredError` result (ready at once)."""
        labels = message.labels
        error = TaskExpiredError(
            task_id=message.task_id, expires_at=label_float(labels.get(EXPIRES_AT)) or 0.0
        )
        return await self._closed(
            message.task_id,
            _EXPIRED,
            error,
            label_float(labels.get(KICKED_AT)),
            attempt_of(labels),
            task_name=message.task_name,
        )

    async def dead_lettered(self, message: Kicked, reason: str) -> WriteOutcome:
        """Record ``failure``: the message was moved to the dead-letter queue.

        The stored result is a :class:`TaskDeadLetteredError`; the record's ``reason`` says
        ``dead-lettered: <reason>``. A final status of the same kick (a run that finished) is kept.
        """
        labels = message.labels
        return await self._closed(
            message.task_id,
            _FAILURE,
            TaskDeadLetteredError(task_id=message.task_id, reason=reason),
            label_float(labels.get(KICKED_AT)),
            attempt_of(labels),
            task_name=message.task_name,
            reason=f"dead-lettered: {reason}",
        )

    async def _closed(
        self,
        task_id: str,
        status: str,
        error: Exception,
        kicked_at: float | None,
        attempt: int | None,
        *,
        task_name: str | None = None,
        reason: str | None = None,
    ) -> WriteOutcome:
        now = time.time()
        result: TaskiqResult[Any] = TaskiqResult(
            is_err=True, return_value=None, execution_time=0.0, error=error
        )
        fields: dict[str, object] = {"status": status, "finished_at": now, "updated_at": now}
        if task_name is not None:
            fields["task_name"] = task_name
        if reason is not None:
            fields["reason"] = reason
        if status == _FAILURE:
            fields["error"] = error_info(error)
        data = self.store.encode_result(result)
        return await self.write(
            RecordWrite(task_id, FINAL, fields, kicked_at, attempt, result=data)
        )

    def deferred_write(self, message: Kicked, due_at: float, reason: str) -> RecordWrite:
        """The write of a run put off by flow control: ``scheduled`` until ``due_at``, and why.

        The same kick and attempt sent again (like taskiq's ``Context.requeue()``): refused once
        the record is final or the kick was aborted.
        """
        now = time.time()
        labels = message.labels
        fields: dict[str, object] = {
            "status": _SCHEDULED,
            "due_at": due_at,
            "reason": reason,
            "requeues": int(label_float(labels.get(REQUEUE_LABEL)) or 0),
            "updated_at": now,
        }
        kicked_at = label_float(labels.get(KICKED_AT))
        return RecordWrite(message.task_id, REQUEUE, fields, kicked_at, attempt_of(labels), due_at)

    async def abort_requested(self, task_id: str) -> WriteOutcome:
        """Leave the abort's tombstone on the record (refused when the record is final or missing).

        From then on no run of this kick starts and no retry of it is kicked.
        """
        now = time.time()
        fields: dict[str, object] = {"abort_requested_at": now, "updated_at": now}
        return await self.write(RecordWrite(task_id, MARK, fields), urgent=True)

    async def record(self, task_id: str) -> TaskRecord | None:
        """The record of ``task_id``, if any (waiting out an outage when :attr:`guard` is set)."""
        guard = self.guard
        if guard is None:
            return await self.store.get_record(task_id)
        return await guard.call(self.store.get_record, task_id)
