"""The base every kit broker extends: timing labels, status, abort, and the delivery gate."""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import AsyncGenerator
from typing import Any

from taskiq.abc.broker import AsyncBroker
from taskiq.acks import AckableMessage
from taskiq.decor import AsyncTaskiqDecoratedTask
from taskiq.message import BrokerMessage

from taskiq_kit.abort.middleware import AbortMiddleware
from taskiq_kit.abort.signal import AbortSignal
from taskiq_kit.abort.wrap import abortable
from taskiq_kit.delivery import Delivery, DeliveryGate, HandoffFormatter
from taskiq_kit.kicker import KitDecoratedTask
from taskiq_kit.labels import RETRIES, Timing, TimingMiddleware, read_timing
from taskiq_kit.middleware import KitMiddleware
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.status import StatusMiddleware, TaskStatus

logger = logging.getLogger("taskiq_kit")


class KitBroker(AsyncBroker):
    """A taskiq broker with delays, expiry, status, abort and dead-lettering wired in.

    Transports implement :meth:`publish` (send now or at ``timing.due_at``) and
    :meth:`deliveries` (yield :class:`~taskiq_kit.delivery.Delivery` objects); this class turns
    them into taskiq's ``kick`` and ``listen``.

    Args:
        result_backend: where results, status records and progress live.
        max_delivery_attempts: deliveries of one message before it is dead-lettered.
        abort_signal: how abort requests reach worker processes (``None``: the workers'
            reconciliation poll only).
        abort_poll_interval: seconds between the workers' checks for aborts they missed.
    """

    result_backend: KitResultBackend[Any]

    def __init__(
        self,
        *,
        result_backend: KitResultBackend[Any],
        max_delivery_attempts: int = 5,
        abort_signal: AbortSignal | None = None,
        abort_poll_interval: float = 1.0,
    ) -> None:
        super().__init__()
        self.result_backend = result_backend
        self.formatter = HandoffFormatter(self)
        self.decorator_class = KitDecoratedTask
        self.gate = DeliveryGate(self, max_attempts=max_delivery_attempts)
        self.aborts = AbortMiddleware(abort_signal, poll_interval=abort_poll_interval)
        status = StatusMiddleware(on_saved=self.gate.result_saved)
        self.add_middlewares(KitMiddleware(TimingMiddleware(), status, self.aborts))

    def _register_task(self, task_name: str, task: AsyncTaskiqDecoratedTask[Any, Any]) -> None:
        # Wrap the function so an abort stops the task's own code, not taskiq's callback.
        task.original_func = abortable(task.original_func)
        super()._register_task(task_name, task)

    async def kick(self, message: BrokerMessage) -> None:
        """Send ``message`` now, or hold it until its ``delay`` / ``eta``."""
        if message.labels.get(RETRIES) is not None and await self._retry_of_aborted(message):
            return
        await self.publish(message, read_timing(message.labels))

    async def _retry_of_aborted(self, message: BrokerMessage) -> bool:
        """A retry middleware re-kicking an aborted task: drop the retry, keep the abort."""
        record = await self.result_backend.get_record(message.task_id)
        if record is None or record.abort_requested_at is None:
            return False
        logger.info("Not retrying task %s: it was aborted.", message.task_id)
        now = time.time()
        await self.result_backend.write_status(
            message.task_id, {"status": TaskStatus.ABORTED, "finished_at": now, "updated_at": now}
        )
        return True

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """Yield the deliveries that may run, settling the others through the gate."""
        async for delivery in self.deliveries():
            admitted = await self.gate.admit(delivery)
            if admitted is not None:
                yield admitted

    @abstractmethod
    async def publish(self, message: BrokerMessage, timing: Timing) -> None:
        """Send ``message`` so that it is delivered no earlier than ``timing.due_at``."""

    @abstractmethod
    def deliveries(self) -> AsyncGenerator[Delivery, None]:
        """Yield messages as the transport delivers them."""
