"""A worker module for subprocess tests: ``taskiq worker tests.rabbit.worker_app:broker``.

Configured from the environment; each run of ``record`` appends its number to a file.
"""

from __future__ import annotations

import asyncio
import os
import time

from taskiq_kit import make_broker

broker = make_broker(
    os.environ.get("KIT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    exchange=os.environ.get("KIT_TEST_EXCHANGE", "kit-test-worker"),
    queue_name=os.environ.get("KIT_TEST_QUEUE", "kit-test-worker"),
    delay_mode="ladder",
)


@broker.task(task_name="record")
async def record(n: int, seconds: float = 0.0) -> None:
    """Wait ``seconds``, then append ``n`` to the file named by ``KIT_TEST_OUT``."""
    if seconds:
        await asyncio.sleep(seconds)
    line = f"{n}\n".encode()
    fd = os.open(os.environ["KIT_TEST_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)  # one small O_APPEND write: atomic between processes
    finally:
        os.close(fd)


@broker.task(task_name="record_at")
async def record_at(n: int, due_at: float) -> None:
    """Append ``n`` and how late it ran (seconds after ``due_at``; negative: early)."""
    line = f"{n} {time.time() - due_at:.6f}\n".encode()
    fd = os.open(os.environ["KIT_TEST_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
