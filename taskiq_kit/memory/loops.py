"""What the memory broker keeps per event loop: its queue, timers, running tasks and counters.

asyncio queues, events and semaphores belong to the loop that first waits on them, and tasks and
timers to the loop that made them. A broker built once (at import, in a module-level
``broker = make_broker("memory://")``) must still work in every loop that uses it: each
``asyncio.run``, each test of pytest-asyncio. So all of that lives here, one :class:`LoopState`
per loop, made when a loop first uses the broker and forgotten once that loop is closed (when
the next loop comes: a state holds its loop, through its queue and timers, so it cannot simply be
collected with it).
"""

from __future__ import annotations

import asyncio
import logging

from taskiq.receiver import Receiver

logger = logging.getLogger("taskiq_kit.memory")


class LoopState:
    """The memory broker's state in one event loop.

    Every kicked message is counted in :attr:`in_flight` until it is settled: run (or dropped
    by the delivery gate) when the broker runs it itself, acknowledged or dead-lettered when a
    Receiver consumes it. :meth:`idle` is set when the count is zero.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, max_async_tasks: int) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.timers: set[asyncio.TimerHandle] = set()
        self.running: set[asyncio.Task[None]] = set()
        self.slots = asyncio.Semaphore(max_async_tasks)
        self.idle = asyncio.Event()
        self.idle.set()
        self.in_flight = 0
        #: ``deliveries()`` generators consuming :attr:`queue` (Receivers listening) right now.
        self.listeners = 0
        #: The Receiver that runs tasks kicked while nobody listens (made on first use).
        self.receiver: Receiver | None = None

    def begin(self) -> None:
        """Count one more message kicked and not yet settled."""
        self.in_flight += 1
        self.idle.clear()

    def end(self) -> None:
        """Count one message settled."""
        self.in_flight -= 1
        if self.in_flight <= 0:
            self.in_flight = 0
            self.idle.set()

    def drop_timers(self) -> int:
        """Cancel the delayed messages not yet due; return how many there were."""
        dropped = len(self.timers)
        for timer in self.timers:
            timer.cancel()
            self.end()
        self.timers.clear()
        return dropped

    def drop_queued(self) -> int:
        """Forget the messages queued for a Receiver that no longer listens; return how many."""
        dropped = 0
        while not self.queue.empty():
            self.queue.get_nowait()
            self.end()
            dropped += 1
        return dropped


class Settlement:
    """Settles one queued delivery once, however often its ack or dead-letter is called."""

    __slots__ = ("_state", "done")

    def __init__(self, state: LoopState) -> None:
        self._state = state
        self.done = False

    def settle(self) -> None:
        """Count the delivery as settled (the first call only)."""
        if not self.done:
            self.done = True
            self._state.end()


class LoopStates:
    """One :class:`LoopState` per event loop; those of closed loops are dropped as new ones come."""

    def __init__(self, max_async_tasks: int) -> None:
        self.max_async_tasks = max_async_tasks
        self._states: dict[asyncio.AbstractEventLoop, LoopState] = {}

    def current(self) -> LoopState:
        """The state of the running loop, made on its first use.

        Raises:
            RuntimeError: when no event loop is running.

        """
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            self._forget_closed()
            state = self._states[loop] = LoopState(loop, self.max_async_tasks)
        return state

    def existing(self) -> LoopState | None:
        """The state of the running loop if it has one (``None`` outside a loop too)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._states.get(loop)

    def all(self) -> list[LoopState]:
        """Every state held."""
        return list(self._states.values())

    def _forget_closed(self) -> None:
        for loop, state in list(self._states.items()):
            if not loop.is_closed():
                continue
            del self._states[loop]
            if state.in_flight:
                logger.warning(
                    "%d task(s) kicked to the memory broker did not finish before their event "
                    "loop closed; `await broker.wait_all()` before the loop ends runs them.",
                    state.in_flight,
                )
