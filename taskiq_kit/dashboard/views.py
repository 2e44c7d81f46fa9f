"""What the task pages show of a record: its timeline, arguments, and how to run it again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from taskiq.abc.broker import AsyncBroker
from taskiq.kicker import AsyncKicker

from taskiq_kit.kicker import KitKicker
from taskiq_kit.results.record import TaskRecord, TaskStatus

#: Statuses a task can still be aborted in.
ABORTABLE = frozenset(
    {TaskStatus.PENDING, TaskStatus.SCHEDULED, TaskStatus.STARTED, TaskStatus.RETRYING}
)


@dataclass(frozen=True)
class Step:
    """One entry of a task's status timeline."""

    status: str
    at: float
    note: str = ""


def _field(entry: object, name: str) -> Any:
    if isinstance(entry, Mapping):
        return entry.get(name)
    return getattr(entry, name, None)


def _recorded(timeline: Sequence[object]) -> list[Step]:
    steps = []
    for entry in timeline:
        if isinstance(entry, (tuple, list)) and len(entry) >= 2:
            status, at = entry[0], entry[1]
            note = entry[2] if len(entry) > 2 else ""
        else:
            status = _field(entry, "status")
            at = _field(entry, "at")
            if at is None:
                at = _field(entry, "time")
            note = _field(entry, "note") or _field(entry, "worker") or ""
        if isinstance(at, datetime):
            at = at.timestamp()
        if status is None or not isinstance(at, (int, float)):
            continue
        steps.append(Step(str(getattr(status, "value", status)), float(at), str(note or "")))
    return sorted(steps, key=lambda step: step.at)


def timeline(record: TaskRecord) -> list[Step]:
    """The record's status timeline: the store's own when it keeps one, else from its times."""
    kept = getattr(record, "timeline", None)
    if isinstance(kept, Sequence) and kept:
        steps = _recorded(kept)
        if steps:
            return steps
    steps = []
    if record.kicked_at is not None:
        steps.append(Step(TaskStatus.PENDING.value, record.kicked_at, "kicked"))
    if record.due_at is not None and (record.kicked_at is None or record.due_at > record.kicked_at):
        steps.append(Step(TaskStatus.SCHEDULED.value, record.due_at, "due"))
    if record.started_at is not None:
        note = f"attempt {record.attempt}" + (f" on {record.worker}" if record.worker else "")
        steps.append(Step(TaskStatus.STARTED.value, record.started_at, note))
    if record.abort_requested_at is not None:
        steps.append(Step("abort requested", record.abort_requested_at))
    if record.finished_at is not None:
        steps.append(Step(record.status.value, record.finished_at))
    elif not steps and record.updated_at is not None:
        steps.append(Step(record.status.value, record.updated_at))
    return sorted(steps, key=lambda step: step.at)


def arguments(record: TaskRecord) -> tuple[list[Any] | None, dict[str, Any] | None]:
    """The task's positional and keyword arguments, where the store kept them."""
    args = getattr(record, "args", None)
    kwargs = getattr(record, "kwargs", None)
    return (
        list(args) if isinstance(args, (list, tuple)) else None,
        dict(kwargs) if isinstance(kwargs, Mapping) else None,
    )


def can_rerun(record: TaskRecord) -> bool:
    """Whether the record holds what a new run needs: the task name and its arguments."""
    args, kwargs = arguments(record)
    return bool(record.task_name) and (args is not None or kwargs is not None)


async def rerun(broker: AsyncBroker, record: TaskRecord) -> str:
    """Send the task of ``record`` again with the same arguments; returns the new task id."""
    args, kwargs = arguments(record)
    name = record.task_name or ""
    registered = broker.find_task(name)
    kicker: AsyncKicker[Any, Any] = (
        registered.kicker()
        if registered is not None
        else KitKicker(task_name=name, broker=broker, labels={})
    )
    handle = await kicker.kiq(*(args or []), **(kwargs or {}))
    return handle.task_id


def parse_utc_input(text: str | None) -> float | None:
    """The value of an ``<input type="datetime-local">``, read as UTC (``None`` when empty).

    Raises:
        ValueError: when the text is not a date and time.

    """
    if not text:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()
