"""Fan-out of change notifications to the watchers of each task (used by every backend)."""

from __future__ import annotations

import asyncio


class EventWaiter:
    """One watcher: woken by :meth:`WatchHub.notify`, or by its timeout."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Return after the next notification, or after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except asyncio.TimeoutError:
            return
        finally:
            self.event.clear()


class WatchHub:
    """The watchers of each task id, in this process."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[EventWaiter]] = {}

    def add(self, task_id: str) -> tuple[EventWaiter, bool]:
        """Register a watcher of ``task_id``; also say whether it is the first one."""
        waiter = EventWaiter()
        waiters = self._waiters.setdefault(task_id, set())
        waiters.add(waiter)
        return waiter, len(waiters) == 1

    def remove(self, task_id: str, waiter: EventWaiter) -> bool:
        """Unregister ``waiter``; say whether ``task_id`` has no watcher left."""
        waiters = self._waiters.get(task_id)
        if waiters is None:
            return False
        waiters.discard(waiter)
        if waiters:
            return False
        del self._waiters[task_id]
        return True

    def notify(self, task_id: str) -> None:
        """Wake every watcher of ``task_id``."""
        for waiter in self._waiters.get(task_id, ()):
            waiter.event.set()

    def watched(self) -> list[str]:
        """Task ids with at least one watcher."""
        return list(self._waiters)
