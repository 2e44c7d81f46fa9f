"""Reading task status from any kit broker."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from taskiq.abc.broker import AsyncBroker

from taskiq_kit.exceptions import InvalidTaskIdError, NotAKitBrokerError, TaskNotFoundError
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.progress import ProgressReport
from taskiq_kit.results.status import TaskRecord, TaskStatus

_TASK_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")


def check_task_id(task_id: object) -> str:
    """Return ``task_id`` if it is a usable task id.

    Raises:
        InvalidTaskIdError: when it is not a string of 1-200 letters, digits, ``_ . : -``.

    """
    if not isinstance(task_id, str):
        raise InvalidTaskIdError(task_id=task_id, reason="expected a string")
    if not _TASK_ID.fullmatch(task_id):
        raise InvalidTaskIdError(
            task_id=task_id, reason="use 1-200 letters, digits, '_', '.', ':' or '-'"
        )
    return task_id


def kit_backend(broker: AsyncBroker) -> KitResultBackend[Any]:
    """The status-keeping backend of ``broker``.

    Raises:
        NotAKitBrokerError: when the broker's result backend keeps no status (not a kit broker).

    """
    backend = broker.result_backend
    if not isinstance(backend, KitResultBackend):
        raise NotAKitBrokerError(broker=type(broker).__name__)
    return backend


async def get_task_record(broker: AsyncBroker, task_id: str) -> TaskRecord:
    """Everything known about ``task_id``: status, times, attempt, worker, error.

    Raises:
        InvalidTaskIdError: when ``task_id`` is malformed.
        TaskNotFoundError: when no record exists (never kicked, or expired).

    """
    record = await kit_backend(broker).get_record(check_task_id(task_id))
    if record is None:
        raise TaskNotFoundError(task_id=task_id)
    return record


async def get_status(broker: AsyncBroker, task_id: str) -> TaskStatus:
    """The current :class:`TaskStatus` of ``task_id``.

    Raises:
        InvalidTaskIdError: when ``task_id`` is malformed.
        TaskNotFoundError: when no record exists (never kicked, or expired).

    """
    return (await get_task_record(broker, task_id)).status


async def get_progress(broker: AsyncBroker, task_id: str) -> ProgressReport | None:
    """The latest progress ``task_id`` reported, or ``None`` when it reported none yet.

    Raises:
        InvalidTaskIdError: when ``task_id`` is malformed.

    """
    return await kit_backend(broker).read_progress(check_task_id(task_id))


async def watch_progress(
    broker: AsyncBroker, task_id: str, *, poll_interval: float = 0.5
) -> AsyncIterator[ProgressReport]:
    """Yield each new progress report of ``task_id`` until the task reaches a final status.

    Redis and memory backends push changes (pub/sub, events); others are polled every
    ``poll_interval`` seconds, which also bounds the delay of a missed notification.
    The latest report is yielded first, if there is one; the last report written before
    the task finished is always yielded. Wrap in ``asyncio.timeout`` to bound the wait.

    Raises:
        InvalidTaskIdError: when ``task_id`` is malformed.
        TaskNotFoundError: when no record of ``task_id`` exists (never kicked, or expired).
        ValueError: when ``poll_interval`` is not positive.

    """
    if not poll_interval > 0:
        raise ValueError(f"poll_interval must be positive seconds, got {poll_interval!r}")
    backend = kit_backend(broker)
    check_task_id(task_id)
    last: ProgressReport | None = None
    async with backend.watch_changes(task_id) as changes:
        while True:
            # Status first: progress written before a final status is then always seen.
            record = await backend.get_record(task_id)
            if record is None:
                raise TaskNotFoundError(task_id=task_id)
            report = await backend.read_progress(task_id)
            if report is not None and report != last:
                last = report
                yield report
            if record.status.is_final:
                return
            await changes.wait(poll_interval)
