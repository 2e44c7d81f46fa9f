"""The kit's middlewares (timing, status, abort) installed as one."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from taskiq.abc.broker import AsyncBroker
from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult
from taskiq.utils import maybe_awaitable

from taskiq_kit.abort.middleware import AbortMiddleware
from taskiq_kit.abort.running import CURRENT
from taskiq_kit.labels import KICKED_AT, TimingMiddleware, label_float
from taskiq_kit.results.api import check_task_id
from taskiq_kit.results.lifecycle import attempt_of
from taskiq_kit.results.record import FINAL_VALUES
from taskiq_kit.results.status import StatusMiddleware

logger = logging.getLogger("taskiq_kit")


class KitMiddleware(TaskiqMiddleware):
    """The kit's timing, status and abort middlewares, chained as one, in that order.

    taskiq calls every hook of every middleware through a coroutine of its own, on every task;
    chained here, the three cost one call per hook. Each part stays a middleware of its own, so
    it can be tested, and found (``parts``), on its own.
    """

    def __init__(
        self,
        timing: TimingMiddleware,
        status: StatusMiddleware,
        aborts: AbortMiddleware,
        *,
        on_run_end: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        #: Called with the task id when a run ends (flow control releases its slot).
        self.on_run_end = on_run_end
        self.timing = timing
        self.status = status
        self.aborts = aborts
        self.parts: tuple[TaskiqMiddleware, ...] = (timing, status, aborts)

    def set_broker(self, broker: AsyncBroker) -> None:
        """Give every part the broker."""
        super().set_broker(broker)
        for part in self.parts:
            part.set_broker(broker)

    async def startup(self) -> None:
        """Start the parts (the abort listener and its reconciliation poll)."""
        for part in self.parts:
            await maybe_awaitable(part.startup())

    async def shutdown(self) -> None:
        """Stop the parts, in reverse order."""
        for part in reversed(self.parts):
            await maybe_awaitable(part.shutdown())

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        """Check the task id and timing labels (the kit broker's ``kick`` records the kick).

        Raises:
            InvalidTaskIdError: for an id (``with_task_id``) that get_status, abort_task and the
                router could not look up.
            InvalidDelayError: for a timing label that cannot be honoured.
            NotAKitResultBackendError: when the broker's result backend keeps no status.

        """
        check_task_id(message.task_id)
        self.status.lifecycle  # noqa: B018 - raises for a result backend that keeps no status
        return self.timing.pre_send(message)

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Record the task as started, then make it abortable.

        When the lifecycle refuses the start (the record is final for this run already, or its
        kick was aborted), the run is skipped: the task's function is not called.
        """
        outcome = await self.status.started(message)
        run = self.aborts.begin(message)
        if not outcome.applied:
            run.skipped = True
            if outcome.abort_requested and outcome.status not in FINAL_VALUES:
                # Aborted before it started, and nobody closed the record yet.
                await self.status.lifecycle.aborted(
                    message.task_id,
                    kicked_at=label_float(message.labels.get(KICKED_AT)),
                    attempt=attempt_of(message.labels),
                )
            logger.info(
                "Task %s (%s) not run: its record is %s%s (a duplicate delivery, or aborted).",
                message.task_id,
                message.task_name,
                outcome.status,
                ", abort requested" if outcome.abort_requested else "",
            )
        return message

    def post_execute(
        self, message: TaskiqMessage, result: TaskiqResult[Any]
    ) -> Coroutine[Any, Any, None] | None:
        """Forget the finished execution; close the record of a task that stores no result."""
        if self.on_run_end is not None:
            self.on_run_end(message.task_id)
        run = CURRENT.get()
        skipped = run is not None and run.task_id == message.task_id and run.skipped
        self.aborts.post_execute(message, result)
        if skipped:
            self.status.isolation.leave()  # the run that did not happen ends here
            self.status.stats.discard(message.task_id)
            return None
        return self.status.post_execute(message, result)

    def post_save(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        """Tell the delivery gate the result (and its final status) is stored."""
        if self.on_run_end is not None:
            self.on_run_end(message.task_id)
        self.status.post_save(message, result)
