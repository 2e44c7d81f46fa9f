"""The base every kit broker extends: timing labels, status, abort, and the delivery gate."""

from __future__ import annotations

import asyncio
import logging
import time
from abc import abstractmethod
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Literal

from taskiq.abc.broker import AsyncBroker
from taskiq.abc.result_backend import AsyncResultBackend
from taskiq.acks import AckableMessage
from taskiq.decor import AsyncTaskiqDecoratedTask
from taskiq.message import BrokerMessage

from taskiq_kit.abort.middleware import AbortMiddleware
from taskiq_kit.abort.signal import AbortSignal
from taskiq_kit.abort.wrap import abortable
from taskiq_kit.delivery import Delivery, DeliveryGate, HandoffFormatter
from taskiq_kit.exceptions import (
    AccessRefusedError,
    BrokerNotAvailableError,
    NotAKitResultBackendError,
)
from taskiq_kit.kicker import KitDecoratedTask
from taskiq_kit.labels import RETRIES, Timing, TimingMiddleware, read_timing
from taskiq_kit.middleware import KitMiddleware
from taskiq_kit.redaction import redact_taskiq_logs
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.status import StatusMiddleware, TaskStatus

if TYPE_CHECKING:
    import sys

    if sys.version_info >= (3, 11):
        from typing import Self
    else:
        from typing_extensions import Self

logger = logging.getLogger("taskiq_kit")

#: Pauses between a worker's start-up attempts while its servers are down (seconds).
_FIRST_PAUSE = 0.5
_LONGEST_PAUSE = 10.0


class KitBroker(AsyncBroker):
    """A taskiq broker with delays, expiry, status, abort and dead-lettering wired in.

    Transports implement :meth:`publish` (send now or at ``timing.due_at``) and
    :meth:`deliveries` (yield :class:`~taskiq_kit.delivery.Delivery` objects); this class turns
    them into taskiq's ``kick`` and ``listen``.

    Args:
        result_backend: where results, status records and progress live.
        max_delivery_attempts: runs of one message that may start without finishing (its
            worker died) before it is dead-lettered; see :class:`~taskiq_kit.delivery.DeliveryGate`.
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
        status = StatusMiddleware(on_saved=self.gate.result_saved, run_number=self.gate.run_number)
        redact_taskiq_logs()
        self.add_middlewares(KitMiddleware(TimingMiddleware(), status, self.aborts))
        self._lifecycle: Literal["new", "running", "stopped"] = "new"

    async def startup(self) -> None:
        """Run the start-up hooks and start the kit's parts; once, however often it is called.

        A second call while started (your own plus a ``Receiver(run_startup=True)``) does nothing.
        """
        if self._lifecycle == "running":
            return
        self._lifecycle = "running"
        try:
            await self._reach_servers()
            await super().startup()
        except BaseException:
            self._lifecycle = "new"  # a shutdown() still closes what did start
            raise

    async def _reach_servers(self) -> None:
        """Connect the transport, then start the store; in a worker, wait until both answer.

        A client (an API process, a script) fails at once with the kit's error naming the
        server. A worker process (``taskiq worker``) instead retries with back-off, one log line
        per attempt, and goes on when the servers answer: a worker started before its servers,
        or during an outage, must not crash-loop. Refusals that no wait can cure (credentials,
        virtual host, a topology clash) fail at once everywhere.
        """
        pause = _FIRST_PAUSE
        attempt = 1
        while True:
            try:
                # Both before any listener (the abort signal) starts.
                await self.connect()
                await self.result_backend.startup()
            except AccessRefusedError:
                raise
            except BrokerNotAvailableError as exc:
                if not self.is_worker_process:
                    raise
                logger.warning(
                    "Worker start-up, attempt %d: %s; retrying in %.1f s.", attempt, exc, pause
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE)
                attempt += 1
            else:
                if attempt > 1:
                    logger.info("Worker start-up: the servers answer after %d attempts.", attempt)
                return

    async def connect(self) -> None:
        """Connect the transport (called by :meth:`startup`; retried there in worker processes).

        Raises:
            BrokerNotAvailableError: when the server does not answer in time.
            AccessRefusedError: when it refuses the connection (no wait helps).

        """

    async def shutdown(self) -> None:
        """Run the shutdown hooks and close everything started; a second call does nothing."""
        if self._lifecycle == "stopped":
            return
        self._lifecycle = "stopped"
        await super().shutdown()

    def with_result_backend(self, result_backend: AsyncResultBackend[Any]) -> Self:
        """Keep results, status, progress and abort tombstones in ``result_backend``.

        taskiq's idiom, for a backend of the kit (see :func:`taskiq_kit.make_result_backend`);
        call it before :meth:`startup`.

        Raises:
            NotAKitResultBackendError: for a backend that keeps no status (e.g. taskiq-redis's);
                the message says what to pass instead.

        """
        if not isinstance(result_backend, KitResultBackend):
            raise NotAKitResultBackendError(backend=type(result_backend).__name__)
        self.result_backend = result_backend
        return self

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
        """A retry middleware re-kicking an aborted task: drop the retry, keep the abort.

        On a worker (where retry middlewares kick) the store calls wait out an outage.
        """
        backend = self.result_backend
        guard = backend.store_guard if self.is_worker_process else None
        if guard is None:
            record = await backend.get_record(message.task_id)
        else:
            record = await guard.call(backend.get_record, message.task_id)
        if record is None or record.abort_requested_at is None:
            return False
        logger.info("Not retrying task %s: it was aborted.", message.task_id)
        now = time.time()
        fields = {"status": TaskStatus.ABORTED, "finished_at": now, "updated_at": now}
        if guard is None:
            await backend.write_status(message.task_id, fields)
        else:
            await guard.call(backend.write_status, message.task_id, fields)
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
