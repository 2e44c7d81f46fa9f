"""The inspect API: list and count tasks, queue figures, dead letters, live workers.

Each function finds the protocol it needs (:mod:`taskiq_kit.inspect.protocols`) on the broker
(queues, dead letters) or on its result store (tasks, workers); none holds transport code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from taskiq.abc.broker import AsyncBroker

from taskiq_kit.exceptions import (
    DeadLetterNotFoundError,
    InspectNotSupportedError,
    InvalidQueryError,
    UnknownQueueError,
)
from taskiq_kit.inspect.models import (
    DeadLetterPage,
    QueueFigures,
    ReplayReport,
    TaskPage,
    TaskQuery,
    WorkerInfo,
)
from taskiq_kit.inspect.protocols import (
    DeadLetterBox,
    ProgressCallback,
    QueueInspector,
    TaskIndex,
    WorkerRegistry,
)
from taskiq_kit.results.api import kit_backend
from taskiq_kit.results.record import TaskStatus

#: The largest page any listing returns.
MAX_LIMIT = 1000

_P = TypeVar("_P")


def _store(broker: AsyncBroker, protocol: type[_P], feature: str) -> _P:
    backend = kit_backend(broker)
    if not isinstance(backend, protocol):
        raise InspectNotSupportedError(target=type(backend).__name__, feature=feature)
    return backend


def _transport(broker: AsyncBroker, protocol: type[_P], feature: str) -> _P:
    """The broker's ``inspector`` (each transport's), when it offers ``protocol``."""
    inspector = getattr(broker, "inspector", None)
    if not isinstance(inspector, protocol):
        kit_backend(broker)  # not a kit broker at all: say so
        raise InspectNotSupportedError(target=type(broker).__name__, feature=feature)
    return inspector


def _statuses(
    status: TaskStatus | str | Iterable[TaskStatus | str] | None,
) -> frozenset[TaskStatus]:
    if status is None:
        return frozenset()
    items: Iterable[Any] = [status] if isinstance(status, (str, bytes, TaskStatus)) else status
    found: set[TaskStatus] = set()
    for item in items:
        try:
            found.add(TaskStatus(item))
        except ValueError:
            valid = ", ".join(member.value for member in TaskStatus)
            raise InvalidQueryError(
                parameter="status", value=item, reason=f"not a status; valid: {valid}"
            ) from None
    return frozenset(found)


def _instant(name: str, value: float | datetime | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidQueryError(
                parameter=name, value=value, reason="a datetime needs a timezone"
            )
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidQueryError(
            parameter=name, value=value, reason="expected unix seconds or an aware datetime"
        )
    return float(value)


def _text(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 200:
        raise InvalidQueryError(parameter=name, value=value, reason="expected 1-200 characters")
    return value


def make_query(
    *,
    status: TaskStatus | str | Iterable[TaskStatus | str] | None = None,
    task_name: str | None = None,
    queue: str | None = None,
    since: float | datetime | None = None,
    until: float | datetime | None = None,
    search: str | None = None,
) -> TaskQuery:
    """A checked :class:`TaskQuery` (see :func:`list_tasks` for the filters).

    Raises:
        InvalidQueryError: for an unknown status, a naive datetime, ``since`` after ``until``,
            or an empty or over-long text filter.

    """
    start, end = _instant("since", since), _instant("until", until)
    if start is not None and end is not None and start > end:
        raise InvalidQueryError(parameter="since", value=since, reason="it is after until")
    return TaskQuery(
        statuses=_statuses(status),
        task_name=_text("task_name", task_name),
        queue=_text("queue", queue),
        since=start,
        until=end,
        search=_text("search", search),
    )


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidQueryError(
            parameter="limit", value=limit, reason=f"expected an integer from 1 to {MAX_LIMIT}"
        )
    return limit


async def list_tasks(
    broker: AsyncBroker,
    *,
    status: TaskStatus | str | Iterable[TaskStatus | str] | None = None,
    task_name: str | None = None,
    queue: str | None = None,
    since: float | datetime | None = None,
    until: float | datetime | None = None,
    search: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> TaskPage:
    """One page of task records, newest kick first.

    Args:
        broker: a kit broker.
        status: one status, or several (any of them).
        task_name: the task's registered name.
        queue: the queue it was sent to.
        since: kicked at or after (unix seconds or an aware datetime).
        until: kicked before.
        search: a piece of the task id or of the task name.
        limit: records per page (1 to 1,000).
        cursor: the ``next_cursor`` of the page before (same filters).

    Raises:
        InvalidQueryError: for a filter or limit that cannot be used.
        InvalidCursorError: for a cursor not made by this listing with these filters.

    """
    query = make_query(
        status=status, task_name=task_name, queue=queue, since=since, until=until, search=search
    )
    index = _store(broker, TaskIndex, "listing tasks")  # type: ignore[type-abstract]
    return await index.list_tasks(query, limit=_limit(limit), cursor=cursor)


async def count_tasks(
    broker: AsyncBroker,
    *,
    task_name: str | None = None,
    queue: str | None = None,
    since: float | datetime | None = None,
    until: float | datetime | None = None,
    search: str | None = None,
) -> dict[TaskStatus, int]:
    """How many task records there are per status (every status, zeros included).

    Takes the filters of :func:`list_tasks` but ``status``.
    """
    query = make_query(task_name=task_name, queue=queue, since=since, until=until, search=search)
    index = _store(broker, TaskIndex, "counting tasks")  # type: ignore[type-abstract]
    return await index.count_tasks(query)


async def queue_figures(broker: AsyncBroker) -> list[QueueFigures]:
    """Ready, in-flight, delayed and dead-lettered counts, and consumers, of each queue."""
    inspector = _transport(broker, QueueInspector, "queue figures")  # type: ignore[type-abstract]
    return await inspector.queue_figures()


async def get_queue(broker: AsyncBroker, name: str) -> QueueFigures:
    """The figures of the queue ``name``.

    Raises:
        UnknownQueueError: when the broker has no such queue.

    """
    figures = await queue_figures(broker)
    for queue in figures:
        if queue.name == name:
            return queue
    raise UnknownQueueError(queue=name, known=", ".join(q.name for q in figures) or "none")


def _box(broker: AsyncBroker) -> DeadLetterBox:
    return _transport(broker, DeadLetterBox, "dead letters")  # type: ignore[type-abstract]


async def list_dead_letters(
    broker: AsyncBroker, *, limit: int = 50, cursor: str | None = None
) -> DeadLetterPage:
    """One page of dead letters, oldest first, with the reason and a preview of each.

    Raises:
        InvalidQueryError: for a limit out of 1 to 1,000.
        InvalidCursorError: for a cursor not made by this listing.

    """
    return await _box(broker).list_dead_letters(limit=_limit(limit), cursor=cursor)


def _ids(ids: Sequence[str]) -> list[str]:
    items = None if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable) else list(ids)
    if items is None or not all(isinstance(item, str) and item for item in items):
        raise InvalidQueryError(
            parameter="ids", value=ids, reason="expected a list of dead-letter ids"
        )
    if not items:
        raise InvalidQueryError(parameter="ids", value=ids, reason="no dead-letter id given")
    return list(dict.fromkeys(items))


def _complete(report: ReplayReport) -> ReplayReport:
    if report.missing:
        shown = ", ".join(report.missing[:10]) + (" ..." if len(report.missing) > 10 else "")
        raise DeadLetterNotFoundError(count=len(report.missing), ids=shown, done=report.replayed)
    return report


async def replay_dead_letters(
    broker: AsyncBroker, ids: Sequence[str], *, progress: ProgressCallback | None = None
) -> ReplayReport:
    """Send the dead letters ``ids`` back to their queue as fresh deliveries.

    Their task records go back to ``pending``, attempt counts reset.

    Raises:
        DeadLetterNotFoundError: when some were no longer there (the others are replayed).

    """
    return _complete(await _box(broker).replay_dead_letters(_ids(ids), progress=progress))


async def replay_all_dead_letters(
    broker: AsyncBroker, *, progress: ProgressCallback | None = None
) -> ReplayReport:
    """Send every dead letter back to its queue (in batches; safe to interrupt and run again)."""
    return await _box(broker).replay_dead_letters(None, progress=progress)


async def delete_dead_letters(
    broker: AsyncBroker, ids: Sequence[str], *, progress: ProgressCallback | None = None
) -> ReplayReport:
    """Delete the dead letters ``ids``.

    Raises:
        DeadLetterNotFoundError: when some were no longer there (the others are deleted).

    """
    return _complete(await _box(broker).delete_dead_letters(_ids(ids), progress=progress))


async def purge_dead_letters(
    broker: AsyncBroker, *, progress: ProgressCallback | None = None
) -> int:
    """Delete every dead letter; returns how many were deleted."""
    return (await _box(broker).delete_dead_letters(None, progress=progress)).replayed


async def list_workers(broker: AsyncBroker) -> list[WorkerInfo]:
    """The live worker processes of the broker's store, oldest start first.

    A worker is dropped a few heartbeats after it stops beating (killed, or its host lost).
    """
    registry = _store(broker, WorkerRegistry, "listing workers")  # type: ignore[type-abstract]
    return await registry.list_workers()
