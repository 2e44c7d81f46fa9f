"""Reading task status from any kit broker."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from taskiq.abc.broker import AsyncBroker

from taskiq_kit.exceptions import (
    InvalidTaskIdError,
    NotAKitBrokerError,
    NotAKitResultBackendError,
    TaskNotFoundError,
)
from taskiq_kit.results.backend import KitResultBackend
from taskiq_kit.results.progress import ProgressReport
from taskiq_kit.results.record import TaskRecord, TaskStatus

#: The one rule for task ids, at kick and wherever an id is looked up (also the router's path
#: pattern): 1-200 printable ASCII characters other than ``{`` and ``}`` (Redis hash-tag
#: syntax), and not ``.`` or ``..`` (URL path segments clients rewrite). Anything else a URL
#: cannot carry as is (``/``, ``?``, ``#``, ``%``...) is percent-encoded in a path. Written
#: without look-ahead, for every regex engine that reads it (pydantic's, OpenAPI tools'): a
#: first character other than ``.``; or ``.`` then one other than ``.``; or ``..`` then more.
TASK_ID_PATTERN = r"^(?:[!-\-/-z|~][!-z|~]{0,199}|\.[!-\-/-z|~][!-z|~]{0,198}|\.\.[!-z|~]{1,198})$"
_TASK_ID = re.compile(TASK_ID_PATTERN)
_TASK_ID_RULE = "use 1-200 printable ASCII characters without spaces, '{' or '}' (not '.' or '..')"


def check_task_id(task_id: object) -> str:
    """Return ``task_id`` if it is a usable task id.

    Raises:
        InvalidTaskIdError: when it is not a string of 1-200 printable ASCII characters
            without spaces, ``{`` or ``}``, or when it is ``.`` or ``..``.

    """
    if not isinstance(task_id, str):
        raise InvalidTaskIdError(task_id=task_id, reason="expected a string")
    if _TASK_ID.fullmatch(task_id) is None:
        shown = task_id if len(task_id) <= 80 else f"{task_id[:80]}..."
        raise InvalidTaskIdError(task_id=shown, reason=_TASK_ID_RULE)
    return task_id


def kit_backend(broker: AsyncBroker) -> KitResultBackend[Any]:
    """The status-keeping backend of ``broker``.

    Raises:
        NotAKitResultBackendError: when a kit broker's result backend was replaced by one that
            keeps no status.
        NotAKitBrokerError: when the broker's result backend keeps no status (not a kit broker).

    """
    backend = broker.result_backend
    if not isinstance(backend, KitResultBackend):
        if _built_by_the_kit(broker):  # its backend replaced since
            raise NotAKitResultBackendError(backend=type(backend).__name__)
        raise NotAKitBrokerError(broker=type(broker).__name__)
    return backend


def _built_by_the_kit(broker: AsyncBroker) -> bool:
    """Whether ``broker`` is a kit broker (by its classes' names: ``base`` imports this module)."""
    return any(
        kind.__name__ == "KitBroker" and kind.__module__ == "taskiq_kit.base"
        for kind in type(broker).__mro__
    )


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
