"""One protocol per concern of the inspect API, implemented by each store and each transport.

Stores (the result backends: Redis, PostgreSQL, memory) implement :class:`TaskIndex` and
:class:`WorkerRegistry`: the records and the workers' heartbeats live where the task records
live. Each transport (the RabbitMQ, Redis and memory brokers) has an ``inspector`` attribute
implementing :class:`QueueInspector` and :class:`DeadLetterBox`. The functions of
:mod:`taskiq_kit.inspect` find them on a broker (or its store) and hold no transport-specific code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from taskiq_kit.inspect.models import (
    DeadLetterPage,
    QueueFigures,
    ReplayReport,
    TaskPage,
    TaskQuery,
    WorkerInfo,
)
from taskiq_kit.results.record import TaskStatus

#: Called with (done, total) as a long operation advances.
ProgressCallback = Callable[[int, int], None]


@runtime_checkable
class TaskIndex(Protocol):
    """Lists and counts task records (implemented by the result backends)."""

    async def list_tasks(self, query: TaskQuery, *, limit: int, cursor: str | None) -> TaskPage:
        """One page of the records matching ``query``, newest kick first.

        Raises:
            InvalidCursorError: for a cursor this index did not make.

        """

    async def count_tasks(self, query: TaskQuery) -> dict[TaskStatus, int]:
        """How many records match ``query``, per status (every status present, zeros included)."""


@runtime_checkable
class WorkerRegistry(Protocol):
    """Where worker processes register and beat (implemented by the result backends)."""

    async def beat(self, worker: WorkerInfo, *, ttl: float) -> None:
        """Write ``worker``'s heartbeat; it counts as dead ``ttl`` seconds after it."""

    async def leave(self, worker_id: str) -> None:
        """Remove ``worker_id`` (a clean shutdown)."""

    async def list_workers(self) -> list[WorkerInfo]:
        """The workers whose last heartbeat is younger than its ``ttl``, oldest start first."""


@runtime_checkable
class QueueInspector(Protocol):
    """Counts the messages of a broker's queues (implemented by the transports)."""

    async def queue_figures(self) -> list[QueueFigures]:
        """The figures of each queue of the broker."""


@runtime_checkable
class DeadLetterBox(Protocol):
    """Reads, replays and deletes a broker's dead letters (implemented by the transports)."""

    async def list_dead_letters(self, *, limit: int, cursor: str | None) -> DeadLetterPage:
        """One page of dead letters, oldest first.

        Raises:
            InvalidCursorError: for a cursor this box did not make.

        """

    async def replay_dead_letters(
        self,
        ids: Sequence[str] | None,
        *,
        progress: ProgressCallback | None = None,
    ) -> ReplayReport:
        """Send dead letters back to their queue as fresh deliveries (``None``: all of them).

        In batches, each moved atomically (sent and removed from the dead letters together, or
        neither): an interrupted replay loses nothing and sends nothing twice when it is run
        again. Each replayed task's record goes back to ``pending`` with its attempt count
        reset, once its message is sent.
        """

    async def delete_dead_letters(
        self,
        ids: Sequence[str] | None,
        *,
        progress: ProgressCallback | None = None,
    ) -> ReplayReport:
        """Delete dead letters (``None``: purge all of them)."""
