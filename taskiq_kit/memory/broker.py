"""The embedded broker behind ``memory://``: tasks run in this process, delays and expiry honoured."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from taskiq.events import TaskiqEvents
from taskiq.message import BrokerMessage
from taskiq.receiver import Receiver
from taskiq.utils import maybe_awaitable

from taskiq_kit.abort.signal import MemoryAbortSignal
from taskiq_kit.base import KitBroker
from taskiq_kit.delivery import Delivery
from taskiq_kit.labels import Timing
from taskiq_kit.memory.backend import MemoryResultBackend
from taskiq_kit.results.backend import KitResultBackend

logger = logging.getLogger("taskiq_kit.memory")


class MemoryBroker(KitBroker):
    """Runs tasks in the process that kicks them, like taskiq's ``InMemoryBroker``, but with the kit.

    Delayed tasks wait on the event loop (not in a sleeping task each); they are lost when the
    process stops, which is what "in memory" means: use RabbitMQ or Redis for durability.
    Under ``taskiq worker`` the CLI's Receiver consumes; elsewhere :meth:`startup` starts an
    in-process one.

    Args:
        result_backend: defaults to a :class:`MemoryResultBackend`.
        max_async_tasks: tasks run at once by the in-process receiver.
        sync_tasks_pool_size: threads for sync tasks in the in-process receiver.
        max_delivery_attempts: deliveries of one message before it is dead-lettered.
        result_ttl: TTL of the default backend's entries, in seconds.

    """

    def __init__(
        self,
        *,
        result_backend: KitResultBackend[Any] | None = None,
        max_async_tasks: int = 100,
        sync_tasks_pool_size: int = 4,
        max_delivery_attempts: int = 5,
        result_ttl: float | None = 86_400.0,
    ) -> None:
        super().__init__(
            result_backend=result_backend or MemoryResultBackend(result_ttl=result_ttl),
            max_delivery_attempts=max_delivery_attempts,
            abort_signal=MemoryAbortSignal(),
        )
        self.max_async_tasks = max_async_tasks
        self.sync_tasks_pool_size = sync_tasks_pool_size
        #: Messages the gate sent to the dead-letter queue, with the reason, oldest first.
        self.dead_letters: list[tuple[bytes, str]] = []
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._timers: set[asyncio.TimerHandle] = set()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._finish: asyncio.Event | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return "MemoryBroker('memory://')"

    async def startup(self) -> None:
        """Run start-up hooks and, outside ``taskiq worker``, start consuming in this process."""
        events = [TaskiqEvents.CLIENT_STARTUP]
        if not self.is_worker_process:
            events.append(TaskiqEvents.WORKER_STARTUP)
        for event in events:
            for handler in self.event_handlers[event]:
                await maybe_awaitable(handler(self.state))
        for middleware in self.middlewares:
            await maybe_awaitable(middleware.startup())
        await self.result_backend.startup()
        if not self.is_worker_process and self._consumer is None:
            self._executor = ThreadPoolExecutor(self.sync_tasks_pool_size)
            receiver = Receiver(
                broker=self,
                executor=self._executor,
                max_async_tasks=self.max_async_tasks,
                run_startup=False,
            )
            self._finish = asyncio.Event()
            self._consumer = asyncio.create_task(receiver.listen(self._finish))

    async def shutdown(self) -> None:
        """Stop consuming (running tasks finish), drop pending delayed tasks, run shutdown hooks."""
        if self._timers:
            logger.warning("Dropping %d delayed task(s) of the memory broker.", len(self._timers))
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
        if self._consumer is not None and self._finish is not None:
            self._finish.set()
            await self._consumer
            self._consumer = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        events = [TaskiqEvents.CLIENT_SHUTDOWN]
        if not self.is_worker_process:
            events.append(TaskiqEvents.WORKER_SHUTDOWN)
        for event in events:
            for handler in self.event_handlers[event]:
                await maybe_awaitable(handler(self.state))
        for middleware in self.middlewares:
            await maybe_awaitable(middleware.shutdown())
        await self.result_backend.shutdown()

    async def publish(self, message: BrokerMessage, timing: Timing) -> None:
        """Queue ``message`` now, or arm a timer for its due time."""
        self._idle.clear()
        self._in_flight += 1
        delay = timing.delay_from(time.time())
        if delay <= 0:
            self._queue.put_nowait(message.message)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def release() -> None:
            self._timers.discard(handle)
            self._queue.put_nowait(message.message)

        # call_at on the loop's clock, so the wait is immune to wall-clock jumps.
        handle = loop.call_at(loop.time() + delay, release)
        self._timers.add(handle)

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        """Yield queued messages as they come."""
        while True:
            data = await self._queue.get()
            settled = False

            async def settle(data: bytes = data) -> None:
                nonlocal settled
                if not settled:
                    settled = True
                    self._done()

            async def dead_letter(reason: str, data: bytes = data) -> None:
                self.dead_letters.append((data, reason))
                await settle()

            yield Delivery(data=data, ack=settle, dead_letter=dead_letter)

    def _done(self) -> None:
        self._in_flight -= 1
        if self._in_flight <= 0:
            self._in_flight = 0
            self._idle.set()

    @property
    def pending(self) -> int:
        """Tasks kicked and not yet settled (delayed ones included)."""
        return self._in_flight

    async def wait_all(self, timeout: float | None = None) -> None:
        """Wait until every kicked task, delayed ones included, has been settled.

        Raises:
            TimeoutError: when ``timeout`` seconds pass first.

        """
        await asyncio.wait_for(self._idle.wait(), timeout)
