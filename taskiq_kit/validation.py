"""Checking a delivered message the way taskiq's Receiver will parse it, before it may run.

taskiq's Receiver parses the body (``formatter.loads``), then its labels (``parse_labels``), then
reads ``ack_type``; a failure there is logged with the whole body and the message is acknowledged
away, and an unknown ``ack_type`` raises after the task was marked started, leaving the message
unsettled for ever. The delivery gate runs the same parsing steps, with taskiq's own functions,
and dead-letters what fails. Reasons say what was wrong, never the text of a value: they are
written to logs and to dead-letter queues, and task arguments may carry personal data or secrets.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from taskiq.acks import AcknowledgeType, parse_acknowledge_type
from taskiq.labels import LabelType, parse_label

from taskiq_kit.results.api import TASK_ID_PATTERN

if TYPE_CHECKING:
    from collections.abc import Callable

    from taskiq.message import TaskiqMessage

#: Longest reason written to a log line or a dead-letter queue.
MAX_REASON = 200
#: Longest name (label, field, task) quoted in a reason.
MAX_NAME = 40
_TASK_ID = re.compile(TASK_ID_PATTERN)
_ACK_TYPES = ", ".join(kind.value for kind in AcknowledgeType)


def bounded(reason: str, limit: int = MAX_REASON) -> str:
    """``reason`` cut to ``limit`` characters."""
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def shown(name: object, limit: int = MAX_NAME) -> str:
    """A name a publisher chose (label, field, task), fit for a reason: printable, cut, quoted."""
    text = name if isinstance(name, str) else repr(name)
    cut = "".join(char if char.isprintable() else "?" for char in text[:limit])
    return repr(cut + "..." if len(text) > limit else cut)


def parse_failure(exc: BaseException) -> str:
    """Why a body could not be parsed, without quoting any of it."""
    if isinstance(exc, ValidationError):
        problems = []
        for error in exc.errors(include_url=False, include_input=False, include_context=False):
            where = (
                ".".join(
                    shown(part, 20) if isinstance(part, str) else str(part) for part in error["loc"]
                )
                or "message"
            )
            problems.append(f"{where}: {error['msg']}")
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        return "invalid message: " + "; ".join(problems[:3]) + more
    if isinstance(exc, UnicodeDecodeError):
        return f"unparseable message: not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, json.JSONDecodeError):
        return f"unparseable message: not JSON ({exc.msg} at position {exc.pos})"
    return f"unparseable message: {type(exc).__name__}"


def label_problem(message: TaskiqMessage) -> str | None:
    """What taskiq's label parsing and ``ack_type`` / ``timeout`` reading would fail on, if any.

    Parses copies: the message the Receiver gets keeps its wire labels (taskiq parses them again).
    """
    labels = message.labels
    parsed: dict[str, Any] = {}
    for name, label_type in (message.labels_types or {}).items():
        if name not in labels:
            continue
        try:
            parsed[name] = parse_label(labels[name], label_type)
        except Exception:  # noqa: BLE001 - whatever taskiq's parser raises, taskiq would fail
            try:
                kind = LabelType(label_type).name.lower()
            except ValueError:
                return f"labels: {shown(name)} has an unknown label type {label_type}"
            return f"labels: {shown(name)} is not a valid {kind}"
    ack_type = parsed.get("ack_type", labels.get("ack_type"))
    if ack_type is not None:
        try:
            parse_acknowledge_type(ack_type)
        except ValueError:
            return f"labels: 'ack_type' is not one of {_ACK_TYPES}"
    timeout = parsed.get("timeout", labels.get("timeout"))
    if timeout is not None:
        try:
            seconds = float(timeout)
        except (TypeError, ValueError):
            return "labels: 'timeout' is not a number of seconds"
        if math.isnan(seconds):
            return "labels: 'timeout' is not a number of seconds"
    return None


def usable_task_id(task_id: object) -> bool:
    """Whether ``task_id`` follows the kit's task-id rule (a record may be written under it)."""
    return isinstance(task_id, str) and _TASK_ID.match(task_id) is not None


def check_message(
    data: bytes,
    *,
    parse: Callable[[bytes], TaskiqMessage],
    find_task: Callable[[str], object | None],
) -> tuple[TaskiqMessage | None, str | None]:
    """Parse ``data`` as the Receiver will; return the message, or why it must not run.

    Args:
        data: the delivered body.
        parse: the broker's formatter's ``loads``.
        find_task: the broker's task registry (``None`` for an unknown task).

    Returns:
        ``(message, None)`` for a message taskiq can run; ``(message or None, reason)``
        otherwise (the message when the body parsed but something in it is wrong).

    """
    try:
        message = parse(data)
    except Exception as exc:  # noqa: BLE001 - any parse failure makes it a dead letter
        return None, bounded(parse_failure(exc))
    if not usable_task_id(message.task_id):
        return (
            message,
            "task_id: not a usable id (1-200 printable ASCII characters, no spaces or braces)",
        )
    problem = label_problem(message)
    if problem is not None:
        return message, bounded(problem)
    if find_task(message.task_name) is None:
        name = shown(message.task_name, 60)
        return message, bounded(f"unknown task {name}: is its module imported by the worker?")
    return message, None
