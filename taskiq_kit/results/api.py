"""Reading task status from any kit broker."""

from __future__ import annotations

import re
from typing import Any

from taskiq.abc.broker import AsyncBroker

from taskiq_kit.exceptions import InvalidTaskIdError, NotAKitBrokerError, TaskNotFoundError
from taskiq_kit.results.backend import KitResultBackend
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
