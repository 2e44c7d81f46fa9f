"""The worker registry's client side: each worker process counts its runs and beats.

:class:`WorkerStats` is fed by the status middleware (runs started and finished);
:class:`Heartbeat` writes them, with who the worker is, to the broker's store every
``interval`` seconds (a :class:`~taskiq_kit.inspect.protocols.WorkerRegistry`), and removes the
worker on a clean shutdown. A worker that stops beating counts as dead ``MISSED_BEATS``
intervals after its last beat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from typing import TYPE_CHECKING

from taskiq_kit.inspect.models import WorkerInfo

if TYPE_CHECKING:
    from collections.abc import Callable

    from taskiq_kit.inspect.protocols import WorkerRegistry

logger = logging.getLogger("taskiq_kit.inspect")

#: Seconds between a worker's heartbeats, by default.
HEARTBEAT_INTERVAL = 10.0
#: Heartbeats a worker may miss before it counts as dead.
MISSED_BEATS = 3
#: taskiq's default ``--max-async-tasks``.
_TASKIQ_DEFAULT_CONCURRENCY = 100


class WorkerStats:
    """What one worker process runs and has run (fed by the status middleware)."""

    def __init__(self) -> None:
        self.running: dict[str, None] = {}
        self.processed = 0
        self.failed = 0

    def started(self, task_id: str) -> None:
        """A run of ``task_id`` starts here."""
        self.running[task_id] = None

    def discard(self, task_id: str) -> None:
        """A delivery of ``task_id`` that did not run after all (refused by its record)."""
        self.running.pop(task_id, None)

    def finished(self, task_id: str, status: str) -> None:
        """A run of ``task_id`` ended with the final ``status``."""
        if task_id in self.running:
            del self.running[task_id]
            self.processed += 1
            if status == "failure":
                self.failed += 1


def cli_concurrency(argv: list[str] | None = None) -> int | None:
    """``--max-async-tasks`` of the ``taskiq worker`` command line this process runs under.

    ``None`` outside ``taskiq worker`` (the kit cannot tell).
    """
    args = sys.argv if argv is None else argv
    if "worker" not in args[:3]:
        return None
    for index, arg in enumerate(args):
        value: str | None = None
        if arg == "--max-async-tasks" and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith("--max-async-tasks="):
            value = arg.split("=", 1)[1]
        if value is not None:
            try:
                return int(value)
            except ValueError:
                return None
    return _TASKIQ_DEFAULT_CONCURRENCY


class Heartbeat:
    """Registers this worker process in ``registry`` and keeps it alive until stopped.

    Args:
        registry: the store keeping the workers.
        stats: the runs of this process.
        queues: gives the queues this worker consumes.
        interval: seconds between heartbeats (the worker is dropped ``MISSED_BEATS`` of them
            after its last).
        concurrency: tasks it runs at once at most (default: taskiq's ``--max-async-tasks``).

    """

    def __init__(
        self,
        registry: WorkerRegistry,
        stats: WorkerStats,
        queues: Callable[[], list[str]],
        *,
        interval: float = HEARTBEAT_INTERVAL,
        concurrency: int | None = None,
    ) -> None:
        self.registry = registry
        self.stats = stats
        self.queues = queues
        self.interval = interval
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started_at = time.time()
        self.concurrency = cli_concurrency() if concurrency is None else concurrency
        self.id = f"{self.host}:{self.pid}:{int(self.started_at * 1000):x}"
        self._task: asyncio.Task[None] | None = None

    def info(self) -> WorkerInfo:
        """This worker as its next heartbeat describes it."""
        stats = self.stats
        return WorkerInfo(
            id=self.id,
            host=self.host,
            pid=self.pid,
            queues=self.queues(),
            started_at=self.started_at,
            concurrency=self.concurrency,
            running=list(stats.running),
            processed=stats.processed,
            failed=stats.failed,
            last_heartbeat=time.time(),
        )

    async def beat(self) -> None:
        """Write one heartbeat."""
        await self.registry.beat(self.info(), ttl=self.interval * MISSED_BEATS)

    async def start(self) -> None:
        """Register now (a failure is logged, not raised), then beat every ``interval``."""
        with contextlib.suppress(Exception):
            await self.beat()
        self._task = asyncio.create_task(self._beat_forever(), name="taskiq-kit-heartbeat")

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except Exception as exc:  # noqa: BLE001 - a missed beat must not stop the worker
                logger.warning("Worker heartbeat failed (%s); trying again.", type(exc).__name__)

    async def stop(self) -> None:
        """Stop beating and remove this worker from the registry (a clean shutdown)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await self.registry.leave(self.id)
        except Exception as exc:  # noqa: BLE001 - shutting down anyway
            logger.warning("Could not unregister worker %s (%s).", self.id, type(exc).__name__)
