"""``TaskClient``: kick, inspect and abort tasks of one broker, from endpoints or anywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from taskiq.abc.broker import AsyncBroker
from taskiq.decor import AsyncTaskiqDecoratedTask
from taskiq.kicker import AsyncKicker
from taskiq.result import TaskiqResult
from taskiq.task import AsyncTaskiqTask

from taskiq_kit.abort import AbortOutcome, abort_task
from taskiq_kit.kicker import KitKicker
from taskiq_kit.labels import timing
from taskiq_kit.results.api import (
    check_task_id,
    get_progress,
    get_task_record,
    kit_backend,
    watch_progress,
)
from taskiq_kit.results.progress import ProgressReport
from taskiq_kit.results.record import TaskRecord, TaskStatus

#: What :meth:`TaskClient.kick` accepts as the task: the decorated function or its name.
TaskRef = AsyncTaskiqDecoratedTask[..., Any] | str


class TaskClient:
    """A small typed client over one kit broker.

    Get one per request with the :data:`~taskiq_kit.fastapi.TaskClientDep` dependency, or build
    it directly: ``TaskClient(broker)``. Every method takes plain task ids, so an API can hand
    ids to its clients and come back to them later.

    Args:
        broker: a broker built by :func:`taskiq_kit.make_broker` (started by the app's lifespan).
        abort_wait: default seconds :meth:`abort` waits for a running task to stop.

    """

    def __init__(self, broker: AsyncBroker, *, abort_wait: float = 5.0) -> None:
        self.broker = broker
        self.abort_wait = abort_wait

    def _kicker(self, task: TaskRef) -> AsyncKicker[..., Any]:
        if isinstance(task, str):
            registered = self.broker.find_task(task)
            if registered is None:
                # The API process need not import the task's code: kick by name.
                return KitKicker(task_name=task, broker=self.broker, labels={})
            task = registered
        return task.kicker().with_broker(self.broker)

    async def kick(
        self,
        task: TaskRef,
        /,
        *args: Any,
        delay: float | timedelta | None = None,
        eta: float | datetime | str | None = None,
        expires: float | timedelta | datetime | str | None = None,
        task_id: str | None = None,
        labels: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> AsyncTaskiqTask[Any]:
        """Send ``task(*args, **kwargs)`` to the workers.

        Task keyword arguments named like this method's options (``delay``, ``eta``,
        ``expires``, ``task_id``, ``labels``) must be sent with ``task.kicker()`` instead.

        Args:
            task: the decorated task, or its name (``"module:function"`` by default); a name
                not registered in this process is sent as is, for workers that know it.
            *args: positional arguments of the task.
            delay: seconds (or a ``timedelta``) before the task may run.
            eta: when the task may run: epoch seconds, ISO-8601 text with a time zone, or an
                aware ``datetime``.
            expires: drop the task unrun after this many seconds from now, or at this instant.
            task_id: the id to use instead of a random one.
            labels: more taskiq labels.
            **kwargs: keyword arguments of the task.

        Returns:
            taskiq's handle of the sent task (``.task_id``, ``await .wait_result()``).

        Raises:
            InvalidDelayError: (a ``ValueError``) when ``delay``, ``eta`` or ``expires`` is invalid.
            InvalidTaskIdError: when ``task_id`` is malformed.

        """
        kicker = self._kicker(task)
        kit_labels: dict[str, Any] = {**(labels or {})}
        kit_labels.update(timing(delay=delay, eta=eta, expires=expires))
        if kit_labels:
            kicker = kicker.with_labels(**kit_labels)
        if task_id is not None:
            kicker = kicker.with_task_id(check_task_id(task_id))
        return await kicker.kiq(*args, **kwargs)

    async def record(self, task_id: str) -> TaskRecord:
        """Everything known about ``task_id``: status, timestamps, attempt, worker, error.

        Raises:
            InvalidTaskIdError: when ``task_id`` is malformed.
            TaskNotFoundError: when no task with this id is known.

        """
        return await get_task_record(self.broker, task_id)

    async def status(self, task_id: str) -> TaskStatus:
        """The current status of ``task_id``.

        Raises:
            InvalidTaskIdError: when ``task_id`` is malformed.
            TaskNotFoundError: when no task with this id is known.

        """
        return (await self.record(task_id)).status

    async def progress(self, task_id: str) -> ProgressReport | None:
        """The latest progress ``task_id`` reported, or ``None`` when it reported none.

        Raises:
            InvalidTaskIdError: when ``task_id`` is malformed.

        """
        return await get_progress(self.broker, task_id)

    async def result(self, task_id: str) -> TaskiqResult[Any] | None:
        """The stored result of ``task_id``, or ``None`` when none is stored (yet).

        A failed task's ``error`` is a
        :class:`~taskiq_kit.exceptions.TaskFailedError` (type, message, traceback) with
        the default JSON serializer.

        Raises:
            InvalidTaskIdError: when ``task_id`` is malformed.
            ResultDecodeError: when the stored result cannot be decoded.

        """
        backend = kit_backend(self.broker)
        if not await backend.is_result_ready(check_task_id(task_id)):
            return None
        try:
            return await backend.get_result(task_id)
        except KeyError:  # expired between the two calls
            return None

    async def abort(self, task_id: str, *, wait: float | None = None) -> AbortOutcome:
        """Abort ``task_id`` (see :func:`taskiq_kit.abort_task`).

        Args:
            task_id: the task to abort.
            wait: seconds to wait for a running task to stop (default: ``abort_wait``).

        Raises:
            InvalidTaskIdError: when ``task_id`` is malformed.
            TaskNotFoundError: when no task with this id is known.

        """
        return await abort_task(
            self.broker, task_id, wait=self.abort_wait if wait is None else wait
        )

    def watch(self, task_id: str, *, poll_interval: float = 0.5) -> AsyncIterator[ProgressReport]:
        """Yield each new progress report of ``task_id`` until the task finishes.

        See :func:`taskiq_kit.results.api.watch_progress`; bound the wait with
        ``asyncio.timeout``.
        """
        return watch_progress(self.broker, task_id, poll_interval=poll_interval)
