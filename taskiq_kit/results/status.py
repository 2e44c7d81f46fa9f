"""The status middleware: the worker's side of the task lifecycle.

The record model lives in :mod:`taskiq_kit.results.record` (re-exported here), the transitions in
:mod:`taskiq_kit.results.lifecycle`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.exceptions import NoResultError

from taskiq_kit.inspect.workers import WorkerStats
from taskiq_kit.isolation import RunIsolation
from taskiq_kit.results.api import kit_backend
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.lifecycle import final_status
from taskiq_kit.results.record import ErrorInfo, TaskRecord, TaskStatus, is_final_value
from taskiq_kit.results.writes import WriteOutcome

if TYPE_CHECKING:
    from taskiq.message import TaskiqMessage
    from taskiq.result import TaskiqResult

    from taskiq_kit.results.lifecycle import TaskLifecycle

__all__ = [
    "ErrorInfo",
    "StatusMiddleware",
    "TaskRecord",
    "TaskStatus",
    "is_final_value",
]

logger = logging.getLogger("taskiq_kit.results")


class StatusMiddleware(TaskiqMiddleware):
    """Records the worker's transitions through the broker's :class:`TaskLifecycle`.

    start -> ``started`` (with the run's number); a run that stores no result (``NoResultError``)
    and is not retried -> ``success``. The result and its final status (``success`` /
    ``failure`` / ``aborted``) are written together by the result backend's ``set_result``; the
    kick's ``pending`` / ``scheduled`` / ``retrying`` by the kit broker's ``kick`` (by
    :meth:`pre_send` when this middleware is used on another broker); ``aborted`` and
    ``expired`` before a run by the delivery gate and ``abort_task``. Records are kept
    ``result_ttl`` seconds past the task's due time.

    On a worker, every write waits out an outage of the store (see
    :class:`~taskiq_kit.results.outage.StoreGuard`): the task does not start before ``started``
    is written, and its message is not acknowledged before its final status is.

    Args:
        on_saved: called with the task id once a result (and its status) is stored.
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
        self.on_saved = on_saved
        self.run_number = run_number
        self.isolation = RunIsolation()
        #: The runs of this process, for the worker registry's heartbeats.
        self.stats = WorkerStats()
        self._backend: KitResultBackend[Any] | None = None
        self._lifecycle: TaskLifecycle | None = None

    @property
    def lifecycle(self) -> TaskLifecycle:
        """The lifecycle of the broker's result backend (resolved again if the backend changes).

        Raises:
            NotAKitResultBackendError: when a kit broker's result backend was replaced by one
                that keeps no status.
            NotAKitBrokerError: when the broker's result backend keeps no status.

        """
        backend = self.broker.result_backend
        if self._backend is not backend or self._lifecycle is None:
            kit = kit_backend(self.broker)
            self._backend, self._lifecycle = kit, kit.lifecycle
        return self._lifecycle

    @property
    def worker(self) -> str:
        """The identity recorded on the runs started here (``host:pid``)."""
        return self.lifecycle.worker

    async def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        """Record the kick (only when used on a broker that is not a kit broker)."""
        await self.lifecycle.kicked(message, call=(message.args, message.kwargs))
        return message

    async def started(self, message: TaskiqMessage) -> WriteOutcome:
        """Wait for this run's turn, then record ``started``, the run's number and its kick.

        The outcome is refused when this run must not happen (its record is final already, or
        its kick was aborted). A write that fails for another reason than an outage (which is
        waited out) lets the task run anyway: bookkeeping must not stop it.
        """
        run = 1 if self.run_number is None else self.run_number(message.task_id)
        isolation = self.isolation
        if run > 1 or not isolation.try_enter():
            await isolation.enter(suspect=run > 1)
        try:
            outcome = await self.lifecycle.started(message, run=run)
        except Exception as exc:  # noqa: BLE001 - bookkeeping must not stop the task
            logger.warning(
                "Cannot record the start of task %s (%s); it runs anyway.",
                message.task_id,
                type(exc).__name__,
            )
            outcome = WriteOutcome(True, TaskStatus.STARTED.value, False)
        if outcome.applied:
            self.stats.started(message.task_id)
        return outcome

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Record ``started`` (see :meth:`started`)."""
        await self.started(message)
        return message

    def post_save(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        """End the run, and tell ``on_saved`` that the result (and its final status) is stored.

        The run ends here, not when the function returns: a task let in beside this one that
        killed the process before this record was final would make this one a suspect again.
        """
        self.isolation.leave()
        self.stats.finished(message.task_id, final_status(result))
        if self.on_saved is not None:
            self.on_saved(message.task_id)

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
            await self.lifecycle.finished_without_result(message)
        finally:
            self.isolation.leave()
            self.stats.finished(message.task_id, TaskStatus.SUCCESS.value)
