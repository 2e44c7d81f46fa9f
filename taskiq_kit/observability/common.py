"""What metrics and traces both need: the queue of a message, the worker's number."""

from __future__ import annotations

import multiprocessing
import re
from collections.abc import Mapping
from typing import Any

from taskiq.abc.broker import AsyncBroker

_WORKER_NAME = re.compile(r"^worker-(\d+)$")


def worker_index() -> int:
    """This process's number under ``taskiq worker --workers N`` (0 outside a worker group).

    taskiq names its worker processes ``worker-0`` ... ``worker-<N-1>``; a restarted worker keeps
    its name.
    """
    match = _WORKER_NAME.match(multiprocessing.current_process().name)
    return int(match.group(1)) if match else 0


def queue_of(broker: AsyncBroker, labels: Mapping[str, Any]) -> str:
    """The queue a message goes to: its ``queue`` label, else the broker's default queue."""
    named = labels.get("queue")
    if isinstance(named, str) and named:
        return named
    names = getattr(broker, "names", None)  # RabbitMQ: RabbitNames
    if names is not None:
        return str(names.default_queue)
    keys = getattr(broker, "keys", None)  # Redis: RedisKeys
    if keys is not None:
        return str(keys.queue)
    return "default"
