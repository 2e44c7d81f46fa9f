"""Reading a RabbitMQ delivery: its tag, how many times it was delivered, and how to send it again."""

from __future__ import annotations

import json
from typing import Any

from aiormq.abc import DeliveredMessage

from taskiq_kit.rabbit.publisher import ATTEMPT_HEADER, QUEUE_HEADER, TASK_HEADER, Outgoing
from taskiq_kit.rabbit.topology import QueueType


def delivery_tag(message: DeliveredMessage) -> int:
    """The delivery tag of a consumer delivery."""
    tag = message.delivery_tag
    if tag is None:  # only basic.get-empty has none, never a consumer delivery
        raise ValueError("a delivery without a delivery tag")
    return tag


def attempt_of(headers: dict[str, Any], queue_type: QueueType) -> int:
    """How many times this message has been delivered, this time included.

    Quorum queues count in ``x-delivery-count``; classic queues count nothing, so the consumer
    re-publishes a redelivered message with the kit's attempt header raised.
    """
    if queue_type is QueueType.QUORUM:
        count = headers.get("x-delivery-count")
        return int(count) + 1 if isinstance(count, int) else 1
    return classic_attempt(headers)


def classic_attempt(headers: dict[str, Any]) -> int:
    """The attempt a message from a classic queue carries in the kit's header (1 without)."""
    attempt = headers.get(ATTEMPT_HEADER)
    return attempt if isinstance(attempt, int) and attempt > 0 else 1


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
