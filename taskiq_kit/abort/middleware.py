"""The worker side of abort: register running tasks, listen for aborts, reconcile by polling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from taskiq.abc.middleware import TaskiqMiddleware
from taskiq.message import TaskiqMessage
from taskiq.result import TaskiqResult

from taskiq_kit.abort.logs import quiet_abort_tracebacks
from taskiq_kit.abort.running import CURRENT, INTERRUPTIBLE, RunContext, RunningTasks
from taskiq_kit.abort.signal import AbortSignal
from taskiq_kit.results.api import kit_backend
from taskiq_kit.results.outage import is_outage

logger = logging.getLogger("taskiq_kit.abort")


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class AbortMiddleware(TaskiqMiddleware):
    """Makes running tasks abortable in this process. Installed by every kit broker.

    Args:
        signal: how abort requests are pushed to this process (``None``: polling only).
        poll_interval: seconds between checks of the running tasks' tombstones, the safety net
            for a missed push.
    """

    def __init__(self, signal: AbortSignal | None, *, poll_interval: float = 1.0) -> None:
        super().__init__()
        self.signal = signal
        self.poll_interval = poll_interval
        self.running = RunningTasks()
        self._poller: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Subscribe to abort requests and start the reconciliation poll (idempotent)."""
        quiet_abort_tracebacks()
        if self.signal is not None:
            await self.signal.startup()
            await self.signal.listen(self.running.abort)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(
                self._reconcile_forever(), name="taskiq-kit abort reconciliation"
            )

    async def shutdown(self) -> None:
        """Stop the poll and the subscription (idempotent)."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        if self.signal is not None:
            await self.signal.shutdown()

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        """Register the execution about to start, so an abort can find it."""
        self.begin(message)
        return message

    def begin(self, message: TaskiqMessage) -> RunContext:
        """Register the execution of ``message`` about to start and make it the current one."""
        run = self.running.begin(
            message.task_id, interruptible=_truthy(message.labels.get(INTERRUPTIBLE))
        )
        CURRENT.set(run)
        return run

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        """Forget the execution that has finished."""
        run = CURRENT.get()
        if run is not None and run.task_id == message.task_id:
            self.running.end(run)
            CURRENT.set(None)

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            ids = self.running.running_ids()
            if not ids:
                continue
            backend = None
            try:
                backend = kit_backend(self.broker)
                for task_id in await backend.abort_requested_among(ids):
                    self.running.abort(task_id)
            except Exception as exc:
                if backend is not None and is_outage(exc):
                    backend.store_guard.failed(exc)  # one line per outage, not one per poll
                else:
                    logger.exception("Abort reconciliation failed; retrying.")
                continue
            if backend.store_guard.down:
                backend.store_guard.succeeded()
