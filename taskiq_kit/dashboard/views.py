"""What the task pages show of a record: its timeline, arguments, and how to run it again."""

from __future__ import annotations

import json
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
            if record.abort_requested_at is not None:
                steps.append(Step("abort requested", record.abort_requested_at))
            return sorted(steps, key=lambda step: step.at)
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


def _stored(value: object) -> tuple[object, bool]:
    """An argument field of a record as data, and whether it was readable.

    Stores keep arguments as JSON text (cut to a size: then it is not JSON any more).
    """
    if value is None:
        return None, False
    if isinstance(value, str):
        try:
            return json.loads(value), True
        except ValueError:
            return value, False
    return value, True


def arguments(record: TaskRecord) -> tuple[str | None, str | None]:
    """The task's positional and keyword arguments as text to show (``None``: not kept)."""
    shown: list[str | None] = []
    for name in ("args", "kwargs"):
        value, readable = _stored(getattr(record, name, None))
        if value is None:
            shown.append(None)
        elif readable:
            shown.append(json.dumps(value, indent=2, ensure_ascii=False, default=repr))
        else:
            shown.append(str(value))
    return shown[0], shown[1]


def rerun_arguments(record: TaskRecord) -> tuple[list[Any], dict[str, Any]] | None:
    """The arguments to send the task again with, or ``None`` when the record lacks them whole."""
    if not record.task_name or getattr(record, "args_truncated", False):
        return None
    args, args_ok = _stored(getattr(record, "args", None))
    kwargs, kwargs_ok = _stored(getattr(record, "kwargs", None))
    if not (args_ok and kwargs_ok and isinstance(args, list) and isinstance(kwargs, dict)):
        return None
    return args, kwargs


def can_rerun(record: TaskRecord) -> bool:
    """Whether the record holds what a new run needs: the task name and its whole arguments."""
    return rerun_arguments(record) is not None


async def rerun(broker: AsyncBroker, record: TaskRecord) -> str:
    """Send the task of ``record`` again with the same arguments; returns the new task id."""
    found = rerun_arguments(record)
    if found is None:
        raise ValueError(f"task {record.task_id}: no whole arguments kept to run it again with")
    args, kwargs = found
    name = record.task_name or ""
    registered = broker.find_task(name)
    kicker: AsyncKicker[Any, Any] = (
        registered.kicker()
        if registered is not None
        else KitKicker(task_name=name, broker=broker, labels={})
    )
    handle = await kicker.kiq(*args, **kwargs)
    return handle.task_id


def parse_utc_input(text: str | None) -> float | None:
    """The value of an ``<input type="datetime-local">``, read as UTC (``None`` when empty).

    Raises:
        ValueError: when the text is not a date and time.

    """
    if not text:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()
