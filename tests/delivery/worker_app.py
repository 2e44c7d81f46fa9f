"""``taskiq worker tests.delivery.worker_app:broker`` for the fault tests, on either transport.

Configured from the environment: ``KIT_FAULT_BROKER_URL`` (``amqp://`` or ``redis://``),
``KIT_FAULT_RESULT_URL`` (the Redis that keeps results and records), ``KIT_FAULT_NAME`` (the
exchange, queue and result key prefix). Tasks return the pid of the process that ran them.
"""

from __future__ import annotations

import asyncio
import os

from tests.delivery.apps import build_broker

broker = build_broker(
    os.environ["KIT_FAULT_BROKER_URL"],
    os.environ["KIT_FAULT_RESULT_URL"],
    os.environ["KIT_FAULT_NAME"],
)


@broker.task(task_name="pid")
async def pid(number: int, sleep: float = 0.0) -> int:
    """Wait ``sleep`` seconds, then return this worker's pid."""
    if sleep:
        await asyncio.sleep(sleep)
    return os.getpid()


@broker.task(task_name="kill")
async def kill() -> None:
    """Kill this worker process at once, as a segfault or the OOM killer would."""
    os._exit(17)
