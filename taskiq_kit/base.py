"""The base every kit broker extends: timing labels, status, abort, and the delivery gate."""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, Literal

from taskiq.abc.broker import AsyncBroker
from taskiq.abc.result_backend import AsyncResultBackend
from taskiq.acks import AckableMessage
from taskiq.decor import AsyncTaskiqDecoratedTask
from taskiq.message import BrokerMessage, TaskiqMessage

from taskiq_kit.abort.middleware import AbortMiddleware
from taskiq_kit.abort.signal import AbortSignal
from taskiq_kit.abort.wrap import abortable
from taskiq_kit.delivery import Delivery, DeliveryGate, HandoffFormatter
from taskiq_kit.exceptions import (
    AccessRefusedError,
    BrokerNotAvailableError,
    NotAKitResultBackendError,
    ProcessLocalStoreError,
)
from taskiq_kit.flow.control import FlowControl
from taskiq_kit.inspect.protocols import WorkerRegistry
from taskiq_kit.inspect.workers import HEARTBEAT_INTERVAL, Heartbeat
from taskiq_kit.kicker import KitDecoratedTask
from taskiq_kit.labels import Timing, TimingMiddleware, read_timing
from taskiq_kit.middleware import KitMiddleware
from taskiq_kit.redaction import redact_taskiq_logs
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.lifecycle import TaskLifecycle
from taskiq_kit.results.record import FINAL_VALUES
from taskiq_kit.results.status import StatusMiddleware
from taskiq_kit.results.writes import RecordWrite

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
    #: Whether tasks run in other processes (the workers) than the ones that kick them.
    runs_elsewhere = True
    #: Seconds between a worker process's heartbeats in the worker registry (see
    #: :func:`taskiq_kit.inspect.list_workers`); a worker is dropped three of them after its last.
    worker_heartbeat: float = HEARTBEAT_INTERVAL

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
        self._watch_store(result_backend)
        self._consuming = False
        self.formatter = HandoffFormatter(self)
        self.decorator_class = KitDecoratedTask
        #: Rate limits, concurrency limits, unique and debounced tasks (see taskiq_kit.flow).
        self.flow = FlowControl(self)
        self.gate = DeliveryGate(
            lifecycle=self._store_lifecycle,
            parse=self._parse,
            find_task=self.find_task,
            max_attempts=max_delivery_attempts,
            hand_off=self._hand_off,
            process_local=self._store_is_process_local,
            flow=self.flow.admit,
        )
        self.aborts = AbortMiddleware(abort_signal, poll_interval=abort_poll_interval)
        self.heartbeat: Heartbeat | None = None
        status = self.status = StatusMiddleware(
            on_saved=self.gate.result_saved, run_number=self.gate.run_number
        )
        redact_taskiq_logs()
        self.add_middlewares(
            KitMiddleware(TimingMiddleware(), status, self.aborts, on_run_end=self.flow.run_ended)
        )
        self._lifecycle: Literal["new", "running", "stopped"] = "new"

    @property
    def lifecycle(self) -> TaskLifecycle:
        """The owner of every transition of this broker's task records."""
        return self.result_backend.lifecycle

    def _store_lifecycle(self) -> TaskLifecycle:
        return self.result_backend.lifecycle

    def _store_is_process_local(self) -> bool:
        return self.result_backend.process_local

    def _parse(self, data: bytes) -> TaskiqMessage:
        return self.formatter.loads(data)

    def _hand_off(self, data: bytes, message: TaskiqMessage) -> None:
        formatter = self.formatter
        if isinstance(formatter, HandoffFormatter):
            formatter.hand_off(data, message)

    def _watch_store(self, backend: KitResultBackend[Any]) -> None:
        """Make reads of a process-local store fail where they could never see the workers'."""
        if backend.process_local and self.runs_elsewhere:
            backend.reader_check = self._check_reader

    def _check_reader(self) -> None:
        """Refuse reads of a process-local store in a process that runs no task of this broker."""
        if not (self.is_worker_process or self._consuming):
            raise ProcessLocalStoreError(broker=repr(self))

    async def startup(self) -> None:
        """Run the start-up hooks and start the kit's parts; once, however often it is called.

        A second call while started (your own plus a ``Receiver(run_startup=True)``) does nothing.
        """
        if self._lifecycle == "running":
            return
        self._lifecycle = "running"
        backend = self.result_backend
        if self.is_worker_process:
            # A worker's record writes wait out an outage of the store, like its other calls.
            backend.lifecycle.guard = backend.store_guard
            if backend.process_local and self.runs_elsewhere:
                logger.warning(
                    "%s keeps results, status and progress in this worker's memory: no other "
                    "process can read them (get_status, wait_result and abort_task elsewhere "
                    "raise ProcessLocalStoreError). Pass result_url='redis://...' or "
                    "result_url='postgresql://...' to make_broker().",
                    self,
                )
        try:
            await self._reach_servers()
            await super().startup()
        except BaseException:
            self._lifecycle = "new"  # a shutdown() still closes what did start
            raise
        if self.is_worker_process and isinstance(backend, WorkerRegistry):
            self.heartbeat = Heartbeat(
                backend,
                self.status.stats,
                self.consumed_queues,
                interval=self.worker_heartbeat,
            )
            await self.heartbeat.start()

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
        await self.flow.shutdown()
        heartbeat, self.heartbeat = self.heartbeat, None
        if heartbeat is not None:
            await heartbeat.stop()
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
        self._watch_store(result_backend)
        return self

    def _register_task(self, task_name: str, task: AsyncTaskiqDecoratedTask[Any, Any]) -> None:
        # Flow options are checked (and their labels made plain text) at definition.
        self.flow.define(task_name, task)
        # Wrap the function so an abort stops the task's own code, not taskiq's callback.
        task.original_func = abortable(task.original_func)
        super()._register_task(task_name, task)

    async def kick(self, message: BrokerMessage) -> None:
        """Record the kick and send ``message`` now, or hold it until its ``delay`` / ``eta``.

        A kick the record refuses is not sent: a duplicate of a kick already recorded, or a
        retry middleware's re-kick of an aborted task. On a worker (where retry middlewares kick)
        the record write waits out an outage of the store.
        """
        lifecycle = self.lifecycle
        formatter = self.formatter
        call = (
            formatter.call_of(message.task_id) if isinstance(formatter, HandoffFormatter) else None
        )
        write = lifecycle.kick_write(message, queue=self.queue_of(message.labels), call=call)
        timing = read_timing(message.labels)
        if write.attempt is not None and write.attempt > 1:
            # A retry: its kick must be known to be allowed (not aborted) before it is sent.
            outcome = await lifecycle.write(write)
            if not outcome.applied and not _same_kick_again(outcome.status, write):
                if outcome.abort_requested or outcome.status == "aborted":
                    logger.info("Not retrying task %s: it was aborted.", message.task_id)
                    if outcome.status not in FINAL_VALUES:
                        await lifecycle.aborted(
                            message.task_id, kicked_at=write.kicked_at, attempt=write.attempt - 1
                        )
                else:
                    logger.info("Retry of task %s already kicked; not sent again.", message.task_id)
                return
            await self.publish(message, timing)
            return
        await self.publish_kicked(message, timing, write)

    async def publish_kicked(
        self, message: BrokerMessage, timing: Timing, write: RecordWrite
    ) -> None:
        """Write the kick's record, then publish (transports may do both in one round trip)."""
        outcome = await self.lifecycle.write(write)
        if outcome.applied or _same_kick_again(outcome.status, write):
            await self.publish(message, timing)
        else:
            logger.info("Task %s: a duplicate of a recorded kick; not sent.", message.task_id)

    def queue_of(self, labels: dict[str, Any]) -> str | None:
        """The queue a kick with these labels goes to (recorded on its record)."""
        return None

    def consumed_queues(self) -> list[str]:
        """The queues this broker's workers consume (shown in the worker registry)."""
        return []

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """Yield the deliveries that may run, settling the others through the gate.

        A process that consumes is a worker: its record writes wait out an outage of the store
        (taskiq's Receiver acknowledges a message once its result is written).
        """
        self._consuming = True
        backend = self.result_backend
        backend.lifecycle.guard = backend.store_guard
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


def _same_kick_again(status: str | None, write: RecordWrite) -> bool:
    """Whether a refused kick found its own record: the same write tried again after an outage.

    A store that applied a kick but whose reply was lost is asked again, and refuses the
    repeat; the record then says what the kick wrote, and the kick goes on. (A duplicate of a
    kick that ran meanwhile finds ``started`` or a final status, and stops.)
    """
    return status is not None and status == write.status
