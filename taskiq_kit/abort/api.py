"""``abort_task``: stop a queued, delayed or running task."""

from __future__ import annotations

import asyncio
import enum
import time
from typing import Any

from taskiq.abc.broker import AsyncBroker

from taskiq_kit.abort.middleware import AbortMiddleware
from taskiq_kit.exceptions import NotAKitBrokerError, TaskNotFoundError
from taskiq_kit.results.api import check_task_id, kit_backend
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.record import TaskStatus


class AbortOutcome(str, enum.Enum):
    """What :func:`abort_task` did."""

    #: The task had not started; it never will.
    ABORTED_BEFORE_START = "aborted_before_start"
    #: The task was running and has been stopped.
    ABORTED_WHILE_RUNNING = "aborted_while_running"
    #: The task is running and was told to stop, but had not stopped when ``abort_task`` returned
    #: (a sync task that does not check its ``AbortToken``, or ``wait=0``).
    ABORT_REQUESTED = "abort_requested"
    #: The task had already finished (success, failure or expired); nothing was changed.
    ALREADY_FINISHED = "already_finished"
    #: The task had already been aborted; nothing was changed.
    ALREADY_ABORTED = "already_aborted"

    def __str__(self) -> str:
        return self.value


def abort_middleware(broker: AsyncBroker) -> AbortMiddleware:
    """The broker's :class:`AbortMiddleware`.

    Raises:
        NotAKitBrokerError: when the broker was not built by the kit.
    """
    aborts = getattr(broker, "aborts", None)  # a KitBroker's, inside its KitMiddleware
    if isinstance(aborts, AbortMiddleware):
        return aborts
    for middleware in broker.middlewares:
        if isinstance(middleware, AbortMiddleware):
            return middleware
    raise NotAKitBrokerError(broker=type(broker).__name__)


async def abort_task(broker: AsyncBroker, task_id: str, *, wait: float = 5.0) -> AbortOutcome:
    """Abort ``task_id``: queued and delayed tasks never start, a running one is stopped.

    A durable tombstone is written to the task's status record before anything else (one write,
    which also tells whether the task is known, finished or running), so a worker that receives
    the message later (even one restarted after this call) does not run it. A running task is
    reached by a push to every worker process; only the one running it acts. An aborted task gets
    a stored result (:class:`~taskiq_kit.exceptions.TaskAbortedError`), so ``wait_result()``
    returns at once. Aborting twice is harmless.

    Args:
        broker: a broker built by :func:`taskiq_kit.make_broker`.
        task_id: the task to abort.
        wait: seconds to wait for a running task to confirm it stopped.

    Returns:
        What happened.

    Raises:
        InvalidTaskIdError: when ``task_id`` is malformed.
        TaskNotFoundError: when no task with this id is known.
        ProcessLocalStoreError: when the broker's store lives only in its workers' memory.
    """
    check_task_id(task_id)
    backend = kit_backend(broker)
    backend.check_readable()
    lifecycle = backend.lifecycle
    marked = await lifecycle.abort_requested(task_id)
    if marked.status is None:
        raise TaskNotFoundError(task_id=task_id)
    if not marked.applied:  # the record is final already
        if marked.status == TaskStatus.ABORTED.value:
            return AbortOutcome.ALREADY_ABORTED
        return AbortOutcome.ALREADY_FINISHED
    middleware = abort_middleware(broker)
    if middleware.signal is not None:
        await middleware.signal.publish(task_id)
    if marked.status != TaskStatus.STARTED.value:
        closed = await lifecycle.aborted(task_id)
        if closed.applied or closed.status == TaskStatus.ABORTED.value:
            return AbortOutcome.ABORTED_BEFORE_START
        return AbortOutcome.ALREADY_FINISHED
    return await _wait_stopped(backend, task_id, wait)


async def _wait_stopped(backend: KitResultBackend[Any], task_id: str, wait: float) -> AbortOutcome:
    """Wait up to ``wait`` seconds for the running task to record that it stopped."""
    deadline = time.monotonic() + wait
    while True:
        current = await backend.get_record(task_id)
        if current is not None and current.status is TaskStatus.ABORTED:
            return AbortOutcome.ABORTED_WHILE_RUNNING
        if current is not None and current.status.is_final:
            return AbortOutcome.ALREADY_FINISHED
        if time.monotonic() >= deadline:
            return AbortOutcome.ABORT_REQUESTED
        await asyncio.sleep(0.01)
