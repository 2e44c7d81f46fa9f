"""The kit's middlewares (timing, status, abort) installed as one."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from taskiq.abc.broker import AsyncBroker
from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult
from taskiq.utils import maybe_awaitable

from taskiq_kit.abort.middleware import AbortMiddleware
from taskiq_kit.labels import TimingMiddleware
from taskiq_kit.results.api import check_task_id
from taskiq_kit.results.status import StatusMiddleware


class KitMiddleware(TaskiqMiddleware):
    """The kit's timing, status and abort middlewares, chained as one, in that order.

    taskiq calls every hook of every middleware through a coroutine of its own, on every task;
    chained here, the three cost one call per hook. Each part stays a middleware of its own, so
    it can be tested, and found (``parts``), on its own.
    """

    def __init__(
        self, timing: TimingMiddleware, status: StatusMiddleware, aborts: AbortMiddleware
    ) -> None:
        super().__init__()
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

    async def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        """Check the task id and timing labels; record the task as pending / scheduled / retrying.

        Raises:
            InvalidTaskIdError: for an id (``with_task_id``) that get_status, abort_task and the
                router could not look up.
            InvalidDelayError: for a timing label that cannot be honoured.

        """
        check_task_id(message.task_id)
        return await self.status.pre_send(self.timing.pre_send(message))

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Record the task as started, then make it abortable."""
        return self.aborts.pre_execute(await self.status.pre_execute(message))

    def post_execute(
        self, message: TaskiqMessage, result: TaskiqResult[Any]
    ) -> Coroutine[Any, Any, None] | None:
        """Forget the finished execution; close the record of a task that stores no result."""
        self.aborts.post_execute(message, result)
        return self.status.post_execute(message, result)

    def post_save(
        self, message: TaskiqMessage, result: TaskiqResult[Any]
    ) -> Coroutine[Any, Any, None]:
        """Record success or failure once the result is stored."""
        return self.status.post_save(message, result)
