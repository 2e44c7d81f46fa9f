"""The embedded broker behind ``memory://``: tasks run in this process, delays and expiry honoured."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from taskiq.events import TaskiqEvents
from taskiq.message import BrokerMessage
from taskiq.receiver import Receiver
from taskiq.utils import maybe_awaitable

from taskiq_kit.abort.signal import MemoryAbortSignal
from taskiq_kit.base import KitBroker
from taskiq_kit.delivery import Delivery
from taskiq_kit.labels import Timing
from taskiq_kit.memory.backend import MemoryResultBackend
from taskiq_kit.memory.inspect import MemoryDeadLetters, MemoryInspector
from taskiq_kit.memory.loops import LoopState, LoopStates, Settlement
from taskiq_kit.results.backend import KitResultBackend

if TYPE_CHECKING:
    pass

logger = logging.getLogger("taskiq_kit.memory")


def _settled_at_the_end() -> None:
    """The ack of a message the broker runs itself: it is settled when its run ends."""


class MemoryBroker(KitBroker):
    """Runs tasks in the process that kicks them, like taskiq's ``InMemoryBroker``, with the kit.

    A drop-in for ``InMemoryBroker`` in tests: ``kiq()`` works with or without
    :meth:`startup`, in any event loop (each ``asyncio.run``, each pytest-asyncio test), and
    :meth:`wait_all` waits for every task kicked, delayed ones and retries included.
    Delayed tasks wait on the event loop (not in a sleeping task each); they are lost when the
    process stops, which is what "in memory" means: use RabbitMQ or Redis for durability.
    Under ``taskiq worker`` (or whenever a Receiver listens) the Receiver consumes the tasks.

    Args:
        result_backend: defaults to a :class:`MemoryResultBackend`.
        max_async_tasks: tasks run at once by the broker itself.
        sync_tasks_pool_size: threads for sync tasks run by the broker itself.
        max_delivery_attempts: deliveries of one message before it is dead-lettered.
        result_ttl: TTL of the default backend's entries, in seconds.
        await_inplace: ``kiq()`` returns once the task has run and its result is stored (as
            taskiq's ``InMemoryBroker(await_inplace=True)``); delayed tasks still wait.
        cast_types: convert arguments to the task's annotated types (taskiq's ``cast_types``).
        propagate_exceptions: let a task's exception reach its dependencies' teardown.

    """

    #: Tasks run in the process that kicks them (a process-local store is fine).
    runs_elsewhere = False

    def __init__(
        self,
        *,
        result_backend: KitResultBackend[Any] | None = None,
        max_async_tasks: int = 100,
        sync_tasks_pool_size: int = 4,
        max_delivery_attempts: int = 5,
        result_ttl: float | None = 86_400.0,
        await_inplace: bool = False,
        cast_types: bool = True,
        propagate_exceptions: bool = True,
    ) -> None:
        self._abort_signal = MemoryAbortSignal()
        super().__init__(
            result_backend=result_backend or MemoryResultBackend(result_ttl=result_ttl),
            max_delivery_attempts=max_delivery_attempts,
            abort_signal=self._abort_signal,
        )
        self.max_async_tasks = max_async_tasks
        self.sync_tasks_pool_size = sync_tasks_pool_size
        self.await_inplace = await_inplace
        self.cast_types = cast_types
        self.propagate_exceptions = propagate_exceptions
        self.dead_letter_box = MemoryDeadLetters()
        self.inspector = MemoryInspector(
            self, self.dead_letter_box, loop_state=self.loop_state, requeue=self.requeue
        )
        self._loops = LoopStates(max_async_tasks)
        self._executor: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return "MemoryBroker('memory://')"

    async def startup(self) -> None:
        """Run the start-up hooks of both sides (this process is client and worker), once."""
        if self._lifecycle == "running":
            return
        await super().startup()
        # taskiq's base fires one side's hooks; like InMemoryBroker, fire the other's too.
        other = (
            TaskiqEvents.CLIENT_STARTUP if self.is_worker_process else TaskiqEvents.WORKER_STARTUP
        )
        for handler in self.event_handlers[other]:
            await maybe_awaitable(handler(self.state))

    async def shutdown(self) -> None:
        """Let running tasks finish, drop delayed ones not yet due, run both sides' shutdown hooks."""
        state = self._loops.existing()
        if state is not None:
            await self._stop(state)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._lifecycle == "stopped":
            return
        other = (
            TaskiqEvents.CLIENT_SHUTDOWN if self.is_worker_process else TaskiqEvents.WORKER_SHUTDOWN
        )
        for handler in self.event_handlers[other]:
            await maybe_awaitable(handler(self.state))
        await super().shutdown()

    async def _stop(self, state: LoopState) -> None:
        dropped = state.drop_timers()
        if dropped:
            logger.warning("Dropping %d delayed task(s) of the memory broker.", dropped)
        current = asyncio.current_task()
        running = [task for task in state.running if task is not current]
        if running:
            await asyncio.wait(running)
        if not state.listeners:
            dropped = state.drop_queued()
            if dropped:
                logger.warning("Dropping %d queued task(s) of the memory broker.", dropped)
        state.receiver = None  # it holds the executor, shut down next

    async def publish(self, message: BrokerMessage, timing: Timing) -> None:
        """Run ``message`` now (in a task, or here with ``await_inplace``), or when it is due."""
        state = self._loops.current()
        # Aborts reach tasks run before (or without) startup() too.
        await self._abort_signal.listen(self.aborts.running.abort)
        state.begin()
        data = message.message
        delay = timing.delay_from(time.time())
        if delay > 0:
            self._arm(state, data, delay)
        elif self.await_inplace and not self._consumed(state):
            await self._run(state, data)
        else:
            self._release(state, data)

    def _arm(self, state: LoopState, data: bytes, delay: float) -> None:
        loop = state.loop
        handle: asyncio.TimerHandle

        def due() -> None:
            state.timers.discard(handle)
            self._release(state, data)

        # call_at on the loop's clock, so the wait is immune to wall-clock jumps.
        handle = loop.call_at(loop.time() + delay, due)
        state.timers.add(handle)

    def _consumed(self, state: LoopState) -> bool:
        """Whether a Receiver consumes this broker (``taskiq worker``, or one listening here)."""
        return self.is_worker_process or state.listeners > 0

    def _release(self, state: LoopState, data: bytes) -> None:
        """Hand a due message to the Receiver consuming this broker, or run it here."""
        if self._consumed(state):
            state.queue.put_nowait(data)
            return
        task = state.loop.create_task(self._run(state, data))
        state.running.add(task)
        task.add_done_callback(state.running.discard)

    async def _run(self, state: LoopState, data: bytes) -> None:
        """Pass ``data`` through the delivery gate and run it as taskiq's Receiver would."""

        async def dead_letter(reason: str) -> None:
            self.dead_letter_box.add(data, reason)

        delivery = Delivery(data=data, ack=_settled_at_the_end, dead_letter=dead_letter)
        try:
            if self.await_inplace:  # no slot: a task kicking in place would wait for itself
                await self._admit_and_run(state, delivery)
            else:
                async with state.slots:
                    await self._admit_and_run(state, delivery)
        except Exception:
            logger.exception("The memory broker could not run a task.")
        finally:
            state.end()

    async def _admit_and_run(self, state: LoopState, delivery: Delivery) -> None:
        admitted = await self.gate.admit(delivery)
        if admitted is not None:
            await self._receiver(state).callback(admitted)

    def _receiver(self, state: LoopState) -> Receiver:
        if state.receiver is None:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.sync_tasks_pool_size)
            state.receiver = Receiver(
                broker=self,
                executor=self._executor,
                validate_params=self.cast_types,
                max_async_tasks=self.max_async_tasks,
                propagate_exceptions=self.propagate_exceptions,
                run_startup=False,
            )
        return state.receiver

    def queue_of(self, labels: dict[str, Any]) -> str | None:
        """The one queue of the embedded broker, ``memory``."""
        return "memory"

    def consumed_queues(self) -> list[str]:
        """The one queue of the embedded broker."""
        return ["memory"]

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        """Yield the messages kicked while a Receiver listens (under ``taskiq worker``)."""
        state = self._loops.current()
        state.listeners += 1
        try:
            while True:
                data = await state.queue.get()
                settlement = Settlement(state)

                async def dead_letter(
                    reason: str, data: bytes = data, settlement: Settlement = settlement
                ) -> None:
                    self.dead_letter_box.add(data, reason)
                    settlement.settle()

                yield Delivery(data=data, ack=settlement.settle, dead_letter=dead_letter)
        finally:
            state.listeners -= 1

    @property
    def pending(self) -> int:
        """Tasks kicked in this event loop and not yet settled (delayed ones included)."""
        state = self._loops.existing()
        if state is not None:
            return state.in_flight
        return sum(state.in_flight for state in self._loops.all())

    async def wait_all(self, timeout: float | None = None) -> None:
        """Wait until every task kicked in this event loop has run, delayed ones and retries too.

        Raises:
            TimeoutError: when ``timeout`` seconds pass first.

        """
        await asyncio.wait_for(self._loops.current().idle.wait(), timeout)

    @property
    def dead_letters(self) -> list[tuple[bytes, str]]:
        """Messages the gate sent to the dead-letter queue, as (body, reason), oldest first."""
        return [(entry.data, entry.reason) for entry in self.dead_letter_box.entries.values()]

    def loop_state(self) -> LoopState | None:
        """The broker's state in the running event loop (``None``: nothing kicked there yet)."""
        return self._loops.existing()

    def requeue(self, data: bytes) -> None:
        """Hand ``data`` to the broker again as a message due now (a replayed dead letter)."""
        state = self._loops.current()
        state.begin()
        self._release(state, data)
