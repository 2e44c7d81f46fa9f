"""Reading a RabbitMQ delivery: its tag, how many times it was delivered, and how to send it again."""

from __future__ import annotations

import json
from typing import Any

from aiormq.abc import DeliveredMessage

from taskiq_kit.rabbit.publisher import QUEUE_HEADER, TASK_HEADER, Outgoing
from taskiq_kit.rabbit.topology import QueueType


def delivery_tag(message: DeliveredMessage) -> int:
    """The delivery tag of a consumer delivery."""
    tag = message.delivery_tag
    if tag is None:  # only basic.get-empty has none, never a consumer delivery
        raise ValueError("a delivery without a delivery tag")
    return tag


def attempt_of(headers: dict[str, Any], queue_type: QueueType, *, redelivered: bool) -> int:
    """How many times RabbitMQ has delivered this message, this time included, as it counts.

    Only what the server set is read: a first delivery (``redelivered`` false) is the first,
    whatever its headers say (a publisher may set ``x-delivery-count``, or copy it from another
    message). Quorum queues count redeliveries in ``x-delivery-count``; classic queues count
    nothing, so a redelivery there is "at least the second". The delivery gate uses this only
    as a backstop; the task record counts the runs that matter.
    """
    if not redelivered:
        return 1
    if queue_type is QueueType.QUORUM:
        count = headers.get("x-delivery-count")
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            return count + 1
    return 2


def outgoing_of(message: DeliveredMessage, queue: str) -> Outgoing:
    """``message`` as it is sent again: re-delayed, recounted or dead-lettered.

    The headers RabbitMQ added (``x-delivery-count``, ``x-death``) are left out.
    """
    properties = message.header.properties
    headers = dict(properties.headers or {})
    headers.pop("x-delivery-count", None)
    headers.pop("x-death", None)
    return Outgoing(
        body=message.body,
        headers=headers,
        queue=str(headers.get(QUEUE_HEADER) or queue),
        task_name=str(headers.get(TASK_HEADER) or task_name_of(message.body)),
        task_id=properties.message_id,
        priority=properties.priority,
    )


def task_name_of(body: bytes) -> str:
    """The task name in a taskiq JSON body, for the dead-letter queue's readers; ``?`` if none."""
    try:
        name = json.loads(body).get("task_name")
    except (ValueError, AttributeError):
        return "?"
    return name if isinstance(name, str) and name else "?"
